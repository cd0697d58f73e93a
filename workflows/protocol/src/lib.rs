//! crm-rules-protocol: the effects a rule's script returns — what `crm-rules-sandbox` emits
//! and `crm-workflows`' executor carries out — as one serde enum both sides share. On the
//! wire (and in run logs, approvals and scheduled jobs) an effect is a JSON object tagged by
//! `action`: `{"action": "set_field", "key": "level", "value": "A"}`.
//!
//! Serde only: the sandbox is a Cargo workspace of its own and links nothing but rhai and
//! serde (DESIGN.md §6).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One declarative effect of a rule run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Effect {
    /// Sets a field of the rule's record.
    SetField { key: String, value: Value },
    /// Assigns the record to a user, a team (round-robin or least-loaded) or the owner.
    AssignTo { target: String },
    /// A follow-up task for the record, due after `due_in`.
    CreateTask {
        title: String,
        /// As written (`"2d"`).
        due_in: String,
        due_in_seconds: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assignee: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notes: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<String>,
    },
    /// A ticket comment, or a note activity on other records.
    AddComment {
        text: String,
        #[serde(default)]
        public: bool,
    },
    /// A templated mail to an address or a user reference.
    SendEmail { template: String, to: String },
    /// A multi-step approval of the record, with follow-up effects on each outcome.
    RequestApproval {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        steps: Vec<ApprovalStep>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        on_approve: Vec<Effect>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        on_reject: Vec<Effect>,
    },
    /// Another effect, after a delay.
    Schedule {
        /// As written (`"3d"`).
        delay: String,
        delay_seconds: i64,
        then: Box<Effect>,
    },
    /// A POST of `payload` to an allowed host.
    Webhook { url: String, payload: Value },
    /// An in-app notification.
    Notify { user: String, text: String },
    /// A new record of any object, built-in or custom: `fields` as the API takes them (a
    /// built-in object's custom fields inside `custom`, a custom object's at the top level).
    CreateRecord { object: String, fields: Value },
    /// Hands `payload` to the tenant's enabled installs of plugin `plugin` (its name, or an
    /// install id): each one's `on-event` runs later, as a job, with event kind `rule.call`.
    CallPlugin { plugin: String, payload: Value },
}

/// A record a script asked for with `get_record(object, id)`. The sandbox does no I/O: an
/// evaluation that reads a record the server has not given it stops and names the record
/// (`needs`); the server reads it as the rule may and evaluates again with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    pub object: String,
    pub id: String,
}

impl RecordRef {
    /// The key of the record in the `records` map of an evaluation request:
    /// `<object>:<id>`, its value the record or `null` (missing or hidden).
    pub fn key(&self) -> String {
        format!("{}:{}", self.object, self.id)
    }
}

/// How a step of an approval decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StepMode {
    /// One approver decides.
    #[default]
    Any,
    /// Every approver must approve.
    All,
    /// `quorum` approvers must approve.
    Quorum,
}

impl StepMode {
    /// Every mode.
    pub const ALL: &'static [StepMode] = &[StepMode::Any, StepMode::All, StepMode::Quorum];

    pub fn as_str(self) -> &'static str {
        match self {
            StepMode::Any => "any",
            StepMode::All => "all",
            StepMode::Quorum => "quorum",
        }
    }
}

/// One step of an approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalStep {
    /// User ids, `owner`, `manager`, `role:<name>` or `team:<id>`.
    pub approvers: Vec<String>,
    #[serde(default)]
    pub mode: StepMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_seconds: Option<i64>,
}

impl Effect {
    /// The `action` tag.
    pub fn action(&self) -> &'static str {
        match self {
            Effect::SetField { .. } => "set_field",
            Effect::AssignTo { .. } => "assign_to",
            Effect::CreateTask { .. } => "create_task",
            Effect::AddComment { .. } => "add_comment",
            Effect::SendEmail { .. } => "send_email",
            Effect::RequestApproval { .. } => "request_approval",
            Effect::Schedule { .. } => "schedule",
            Effect::Webhook { .. } => "webhook",
            Effect::Notify { .. } => "notify",
            Effect::CreateRecord { .. } => "create_record",
            Effect::CallPlugin { .. } => "call_plugin",
        }
    }

    /// Whether carrying it out writes records (else it only adds notifications, mail, webhook
    /// calls or timers).
    pub fn writes_records(&self) -> bool {
        !matches!(
            self,
            Effect::Notify { .. }
                | Effect::SendEmail { .. }
                | Effect::Webhook { .. }
                | Effect::Schedule { .. }
                | Effect::CallPlugin { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn effects_round_trip_as_tagged_json() {
        let raw = json!([
            {"action": "set_field", "key": "level", "value": "A"},
            {"action": "create_task", "title": "回访", "due_in": "7d", "due_in_seconds": 604800},
            {"action": "request_approval", "steps": [{"approvers": ["role:finance"], "mode": "quorum", "quorum": 2}],
             "on_approve": [{"action": "notify", "user": "owner", "text": "批准"}]},
            {"action": "schedule", "delay": "1h", "delay_seconds": 3600,
             "then": {"action": "add_comment", "text": "跟进", "public": false}},
            {"action": "create_record", "object": "claims", "fields": {"name": "C-1", "amount": 10}},
        ]);
        let effects: Vec<Effect> = serde_json::from_value(raw.clone()).expect("parses");
        assert_eq!(effects[1].action(), "create_task");
        assert!(!effects[3].writes_records());
        assert!(effects[4].writes_records());
        assert_eq!(effects[4].action(), "create_record");
        assert_eq!(serde_json::to_value(&effects).expect("serializes"), raw);
    }

    #[test]
    fn unknown_actions_and_missing_fields_are_refused() {
        for bad in [
            json!({"action": "drop_table"}),
            json!({"action": "set_field", "value": 1}),
            json!({"key": "level", "value": "A"}),
        ] {
            assert!(serde_json::from_value::<Effect>(bad).is_err());
        }
    }
}
