//! The payloads of the workflows' durable jobs, one type per job kind.

use crate::executor::{ACTION_JOB, WEBHOOK_JOB};
use crate::jobs::RUN_JOB;
use crate::rules::CRON_JOB;
use chrono::{DateTime, Utc};
use crm_core::jobs::Payload;
use crm_rules_protocol::Effect;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// `rule.run`: one rule version on one outbox event. Enqueued by the workflows' record
/// listener in one `INSERT … SELECT` (its SQL builds this shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRule {
    pub rule_id: Uuid,
    pub version_id: i64,
    pub outbox_id: i64,
    #[serde(default)]
    pub event: Option<String>,
    /// Rules deep (0 for a person's change).
    #[serde(default)]
    pub depth: u8,
}

impl Payload for RunRule {
    const KIND: &'static str = RUN_JOB;
}

/// `rule.cron`: one batch of one firing of a schedule rule's version — the records after
/// `after` (by id; from the first when `None`); `visited` records were done by earlier batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CronFiring {
    pub rule_id: Uuid,
    pub version_id: i64,
    pub fire_at: DateTime<Utc>,
    #[serde(default)]
    pub after: Option<Uuid>,
    #[serde(default)]
    pub visited: i64,
}

impl Payload for CronFiring {
    const KIND: &'static str = CRON_JOB;
}

/// `rule.action`: follow-up effects of a rule version (a `schedule`d effect, an approval's
/// `on_approve` / `on_reject`), run once per `origin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowUp {
    pub rule_id: Uuid,
    pub rule_version_id: Option<i64>,
    #[serde(default)]
    pub object: Option<String>,
    pub record_id: Option<Uuid>,
    pub actions: Vec<Effect>,
    pub origin: String,
}

impl Payload for FollowUp {
    const KIND: &'static str = ACTION_JOB;
}

/// `webhook.send`: one POST, with the idempotency key the receiver sees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookCall {
    pub url: String,
    pub body: Value,
    pub key: String,
}

impl Payload for WebhookCall {
    const KIND: &'static str = WEBHOOK_JOB;
}

/// `plugin.call`: a rule's `call_plugin`, for the plugin host to deliver to the installs of
/// `plugin` (run by `crm_plugins::events::CallJob`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginCall {
    /// A plugin's name, or an install id.
    pub plugin: String,
    pub object: String,
    pub record_id: Option<Uuid>,
    pub payload: Value,
    pub rule_id: Uuid,
    pub rule_name: String,
    /// Unique per effect of a run: the plugin sees it as the event id.
    pub key: String,
}

impl Payload for PluginCall {
    const KIND: &'static str = "plugin.call";
}

/// `approval.escalate`: the escalation timer of one step of an approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Escalation {
    pub approval_id: Uuid,
    pub step: i64,
}

impl Payload for Escalation {
    const KIND: &'static str = crate::approvals::ESCALATE_JOB;
}
