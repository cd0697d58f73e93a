//! Record events to installs: [`PluginListener`] hears every outbox event in the writing
//! transaction and enqueues one durable `plugin.event` job per enabled install that asked for
//! it (never for the install whose own write it was); [`EventJob`] runs `on-event` (retried
//! with backoff, dead after 5 attempts) and carries out the returned actions through the
//! rule executor with the install's grants. [`CallJob`] does the same for a rule's
//! `call_plugin` (event kind `rule.call`, the rule's payload in the data).

use crate::installs;
use crate::manifest::Manifest;
use crate::runtime::{CallError, EventIn};
use crate::service::{error_json, settle, PluginHost};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::audit::{Actor, ActorKind};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob, Payload};
use crm_core::Result;
use crm_records::engine::{self, Visibility};
use crm_records::hooks::{Event, RecordListener};
use crm_records::{Access, ObjectKey, ObjectSchema};
use crm_rules_protocol::Effect;
use crm_workflows::payloads::PluginCall;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

/// Job kind of an event delivered to an install.
pub const EVENT_JOB: &str = "plugin.event";

/// Attempts of one delivery before it is dead.
const ATTEMPTS: i32 = 5;

/// One event for one install.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginEvent {
    pub install_id: Uuid,
    pub outbox_id: i64,
    pub event: String,
    pub object: String,
    pub record_id: Uuid,
    #[serde(default)]
    pub changed: Vec<String>,
    pub occurred_at: DateTime<Utc>,
}

impl Payload for PluginEvent {
    const KIND: &'static str = EVENT_JOB;
}

/// The enabled installs and their event patterns, read once per transaction.
#[derive(Default)]
struct Subscribers(Option<Vec<(Uuid, Vec<String>)>>);

/// Enqueues events for the installs that asked for them.
pub struct PluginListener;

#[async_trait]
impl RecordListener for PluginListener {
    async fn on_event(&self, tx: &mut TenantTx, event: &Event<'_>) -> Result<()> {
        if tx.memo::<Subscribers>().0.is_none() {
            let rows: Vec<(Uuid, Vec<String>)> = if installs::tables_ready(tx).await? {
                sqlx::query_as("SELECT id, events FROM plugin_installs WHERE enabled")
                    .fetch_all(tx.conn())
                    .await?
            } else {
                Vec::new()
            };
            tx.memo::<Subscribers>().0 = Some(rows);
        }
        let own = (event.actor.kind == ActorKind::Plugin)
            .then_some(event.actor.id)
            .flatten();
        // Plugins name events by the object's API name: `customers.updated`, `policies.created`.
        let action = event
            .name
            .rsplit_once('.')
            .map_or(event.name, |(_, action)| action);
        let kind = format!("{}.{action}", event.object.as_str());
        let targets: Vec<Uuid> = tx
            .memo::<Subscribers>()
            .0
            .iter()
            .flatten()
            .filter(|(id, patterns)| Some(*id) != own && Manifest::wants(patterns, &kind))
            .map(|(id, _)| *id)
            .collect();
        for install_id in targets {
            let payload = PluginEvent {
                install_id,
                outbox_id: event.id,
                event: kind.clone(),
                object: event.object.as_str().to_owned(),
                record_id: event.record_id,
                changed: event.changed.to_vec(),
                occurred_at: Utc::now(),
            };
            let mut job = NewJob::of(&payload)?.dedupe(format!("plugin:{install_id}:{}", event.id));
            job.subject_id = Some(event.record_id);
            job.max_attempts = ATTEMPTS;
            jobs::enqueue(tx, job).await?;
        }
        Ok(())
    }
}

/// Runs `plugin.event` jobs.
pub struct EventJob {
    pub host: PluginHost,
}

/// The record as the install may see it (`null` without read permission or once deleted).
async fn record_for(
    tx: &mut TenantTx,
    access: &Access<'_>,
    schema: &ObjectSchema,
    id: Uuid,
) -> Value {
    engine::fetch(tx, schema, access, id, Visibility::Live, false)
        .await
        .unwrap_or(Value::Null)
}

/// Whether a failed call is worth another attempt.
fn retryable(e: &CallError) -> bool {
    matches!(
        e,
        CallError::Plugin { .. } | CallError::Deadline | CallError::Busy
    )
}

#[async_trait]
impl JobHandler for EventJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let p: PluginEvent = job.payload_as()?;
        let host = &self.host;
        let Some(run) = installs::runnable(host, tx, p.install_id).await? else {
            return Ok(()); // uninstalled since
        };
        if !run.install.enabled {
            return Ok(());
        }
        let Some(object) = ObjectKey::named(&p.object) else {
            return Ok(()); // the object was deleted since
        };
        let delivery = Delivery {
            object: Some(object),
            record_id: Some(p.record_id),
            kind: p.event.clone(),
            id: p.outbox_id.to_string(),
            extra: json!({ "changed": p.changed }),
            occurred_at: p.occurred_at,
            trigger: json!({
                "kind": "event",
                "event": p.event,
                "record_id": p.record_id,
                "outbox_id": p.outbox_id,
                "attempt": job.attempts,
            }),
            key: format!("plugin:{}:{}", p.install_id, p.outbox_id),
        };
        deliver(host, tx, &run, delivery).await
    }
}

/// Runs `plugin.call` jobs: a rule's `call_plugin`, to every enabled install of the plugin.
pub struct CallJob {
    pub host: PluginHost,
}

#[async_trait]
impl JobHandler for CallJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let p: PluginCall = job.payload_as()?;
        let host = &self.host;
        let ids = installs::enabled_of(tx, &p.plugin).await?;
        if ids.is_empty() {
            return Err(JobFailure::Permanent(format!(
                "call_plugin: no enabled install of plugin '{}'; install it or fix the rule",
                p.plugin
            )));
        }
        let mut failure = None;
        for install in ids {
            let Some(run) = installs::runnable(host, tx, install).await? else {
                continue;
            };
            let delivery = Delivery {
                object: ObjectKey::named(&p.object),
                record_id: p.record_id,
                kind: "rule.call".into(),
                id: p.key.clone(),
                extra: json!({
                    "payload": p.payload,
                    "rule": { "id": p.rule_id, "name": p.rule_name },
                }),
                occurred_at: Utc::now(),
                trigger: json!({
                    "kind": "rule",
                    "rule_id": p.rule_id,
                    "rule": p.rule_name,
                    "record_id": p.record_id,
                    "attempt": job.attempts,
                }),
                key: format!("plugin-call:{install}:{}", p.key),
            };
            // Every install gets its call. If one fails, the job's transaction (the others'
            // actions too) rolls back and a retry calls them all again: plugins see the same
            // event id each time, to stay idempotent.
            if let Err(f) = deliver(host, tx, &run, delivery).await {
                failure = Some(f);
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// One delivery of an event to an install.
struct Delivery {
    object: Option<ObjectKey>,
    record_id: Option<Uuid>,
    kind: String,
    /// The event id the plugin sees (idempotency across retries).
    id: String,
    /// Merged into the event's data beside `record`.
    extra: Value,
    occurred_at: DateTime<Utc>,
    trigger: Value,
    /// Key of the actions' effects (stable across retries).
    key: String,
}

/// Calls the install's `on-event`, carries out its actions in `tx`, logs the run.
async fn deliver(
    host: &PluginHost,
    tx: &mut TenantTx,
    run: &installs::Runnable,
    d: Delivery,
) -> std::result::Result<(), JobFailure> {
    let _slot = host
        .slot(run.install.id, std::time::Duration::from_secs(2))
        .await?;
    let loaded = host.loaded(tx, &run.package).await?;
    let request_id = format!("plugin-{}-{}", run.install.id.simple(), d.id);
    let actor = Actor::plugin(run.install.id, &run.install.name, request_id.clone());
    let record = match (d.object, d.record_id) {
        (Some(object), Some(id)) => match ObjectSchema::load(tx, object).await {
            Ok(schema) => {
                let access = Access::of_grants(&run.ctx.grants, None, &actor, object, None);
                record_for(tx, &access, &schema, id).await
            }
            Err(_) => Value::Null,
        },
        _ => Value::Null,
    };
    let mut data = d.extra;
    data["record"] = record;
    let event = EventIn {
        id: d.id.clone(),
        kind: d.kind.clone(),
        object: d.object.map(|o| o.as_str().to_owned()).unwrap_or_default(),
        record_id: d.record_id.map(|r| r.to_string()).unwrap_or_default(),
        occurred_at: d.occurred_at.to_rfc3339(),
        data: data.to_string(),
    };
    let tenant = tx.tenant().clone();
    let env = host.env(&tenant, run.ctx.clone(), request_id);
    let started_at = Utc::now();
    let (result, stats) = host.runtime.on_event(&loaded, host.state(env), event).await;
    let (error, actions, failure) = match result {
        Err(e) => {
            let text = format!("{}: {}", e.code(), e.message());
            let failure = if retryable(&e) {
                JobFailure::Retry(text)
            } else {
                JobFailure::Permanent(text)
            };
            (Some(error_json(&e)), json!([]), Some(failure))
        }
        Ok(texts) => {
            let parsed: std::result::Result<Vec<Effect>, _> = texts
                .iter()
                .map(|t| serde_json::from_str::<Effect>(t))
                .collect();
            match (parsed, d.object) {
                (Err(e), _) => (
                    Some(
                        json!({ "code": "plugin.invalid_action", "message": format!("an action is not a valid rule effect: {e}") }),
                    ),
                    json!(texts),
                    Some(JobFailure::Permanent("plugin.invalid_action".into())),
                ),
                (Ok(effects), _) if effects.is_empty() => (None, json!([]), None),
                (Ok(_), None) => (
                    Some(
                        json!({ "code": "plugin.invalid_action", "message": "actions need the event's object, which no longer exists" }),
                    ),
                    json!(texts),
                    Some(JobFailure::Permanent("plugin.invalid_action".into())),
                ),
                (Ok(effects), Some(object)) => {
                    let out = crm_workflows::executor::run_plugin_actions(
                        &host.rules,
                        tx,
                        actor,
                        &run.install.name,
                        run.ctx.grants.clone(),
                        object,
                        d.record_id,
                        &d.key,
                        effects,
                    )
                    .await?;
                    if out.succeeded {
                        (None, Value::Array(out.effects), None)
                    } else {
                        let message = out
                            .error
                            .as_ref()
                            .and_then(|e| e["message"].as_str())
                            .unwrap_or("an action failed")
                            .to_owned();
                        (
                            out.error,
                            Value::Array(out.effects),
                            Some(JobFailure::Permanent(message)),
                        )
                    }
                }
            }
        }
    };
    settle(
        host, &tenant, run, d.trigger, started_at, &stats, error, actions,
    )
    .await?;
    failure.map_or(Ok(()), Err)
}
