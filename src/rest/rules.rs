//! `/rules`: the company's workflow rules (rhai), their versions and run log, manual runs and
//! the dry run; `/settings/workflows`: the webhook allow-list and the failure limit. Rules are
//! compiled in the sandbox on save (a compile error is a 422 with line and column).

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::page_size;
use crm_core::Error;
use crm_workflows::dry_run::{self, RecordToTry, RuleToTry};
use crm_workflows::manage;
use crm_workflows::rules::{Rule, RuleInput, RuleRun, RuleVersion};
use crm_workflows::{EvalOutcome, SandboxError};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

pub struct RulesApi(pub AppState);

/// A rule as written.
#[derive(Object)]
pub struct RuleRequest {
    /// What the rule is for, e.g. "A 级客户 7 天未联系提醒".
    pub name: String,
    /// The object whose records the rule acts on: customers, contacts, opportunities,
    /// activities, tasks, tickets, or one of the company's own objects (`policies`); its
    /// events are `<key>.created` and so on.
    pub object: String,
    /// `{"event": "customer.updated", "fields": ["level"]}`,
    /// `{"schedule": "0 9 * * 1-5", "timezone": "Asia/Shanghai"}`, `{"manual": true}` or
    /// `{"approval": "decided"}`.
    pub trigger: Value,
    /// A rhai expression over `record` (and `changes` for updates); absent: always.
    pub condition: Option<String>,
    /// The rhai script: calls to the host API (`set_field`, `create_task`, …).
    pub script: String,
    /// Default true.
    pub enabled: Option<bool>,
    /// The role whose permissions the rule's effects need; default `admin`.
    pub run_as_role: Option<String>,
}

impl From<RuleRequest> for RuleInput {
    fn from(r: RuleRequest) -> Self {
        RuleInput {
            name: r.name,
            object: r.object,
            trigger: r.trigger,
            condition: r.condition,
            script: r.script,
            enabled: r.enabled.unwrap_or(true),
            run_as_role: r.run_as_role,
        }
    }
}

#[derive(Object)]
pub struct RuleOut {
    pub id: Uuid,
    pub name: String,
    pub object: String,
    pub trigger: Value,
    #[oai(skip_serializing_if_is_none)]
    pub condition: Option<String>,
    pub script: String,
    pub enabled: bool,
    pub run_as_role: String,
    /// The current version (each save adds one).
    pub version: i32,
    /// Failed runs in a row; at the company's limit the rule is turned off.
    pub consecutive_failures: i32,
    /// Why the server turned the rule off.
    #[oai(skip_serializing_if_is_none)]
    pub disabled_reason: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Rule> for RuleOut {
    fn from(r: Rule) -> Self {
        RuleOut {
            id: r.id,
            name: r.name,
            object: r.object,
            trigger: r.trigger,
            condition: r.condition,
            script: r.script,
            enabled: r.enabled,
            run_as_role: r.run_as_role,
            version: r.version,
            consecutive_failures: r.consecutive_failures,
            disabled_reason: r.disabled_reason,
            created_by: r.created_by,
            updated_by: r.updated_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Object)]
pub struct RulePage {
    pub items: Vec<RuleOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct RuleVersionOut {
    pub version: i32,
    pub name: String,
    pub object: String,
    pub trigger: Value,
    #[oai(skip_serializing_if_is_none)]
    pub condition: Option<String>,
    pub script: String,
    pub enabled: bool,
    pub run_as_role: String,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<RuleVersion> for RuleVersionOut {
    fn from(v: RuleVersion) -> Self {
        RuleVersionOut {
            version: v.version,
            name: v.name,
            object: v.object,
            trigger: v.trigger,
            condition: v.condition,
            script: v.script,
            enabled: v.enabled,
            run_as_role: v.run_as_role,
            created_by: v.created_by,
            created_at: v.created_at,
        }
    }
}

#[derive(Object)]
pub struct RuleVersions {
    pub items: Vec<RuleVersionOut>,
}

/// One run: when, what started it, which version ran, what it did or why it failed.
#[derive(Object)]
pub struct RuleRunOut {
    pub id: i64,
    pub rule_id: Uuid,
    pub version: i32,
    /// `{"kind": "event", "event": "customer.created", "outbox_id": …}`, `{"kind":
    /// "schedule", "fire_at": …}`, `{"kind": "manual", "user_id": …}` or `{"kind": "action",
    /// "origin": …}`.
    pub trigger: Value,
    #[oai(skip_serializing_if_is_none)]
    pub record_id: Option<Uuid>,
    /// `succeeded`, `not_matched` or `failed`.
    pub outcome: String,
    /// The effects carried out, each with its `result` (ids of what it made).
    pub effects: Value,
    /// `{code, message, …}` when failed.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<Value>,
    pub duration_us: i64,
    pub created_at: DateTime<Utc>,
}

impl From<RuleRun> for RuleRunOut {
    fn from(r: RuleRun) -> Self {
        RuleRunOut {
            id: r.id,
            rule_id: r.rule_id,
            version: r.version,
            trigger: r.trigger,
            record_id: r.record_id,
            outcome: r.outcome,
            effects: r.effects,
            error: r.error,
            duration_us: r.duration_us,
            created_at: r.created_at,
        }
    }
}

#[derive(Object)]
pub struct RuleRunPage {
    pub items: Vec<RuleRunOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct RunRuleRequest {
    /// The record of the rule's object to run on.
    pub record_id: Uuid,
}

#[derive(Object)]
pub struct DryRunRequest {
    /// A rule not saved yet (as for POST /rules) …
    pub rule: Option<RuleRequest>,
    /// … or a saved one.
    pub rule_id: Option<Uuid>,
    /// The record as the script would see it (JSON object) …
    pub record: Option<Value>,
    /// … or a stored record of the rule's object.
    pub record_id: Option<Uuid>,
    /// For update triggers: `{field: {"before": …, "after": …}}`.
    pub changes: Option<Value>,
}

#[derive(Object)]
pub struct DryRunError {
    pub code: String,
    pub message: String,
    #[oai(skip_serializing_if_is_none)]
    pub part: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub line: Option<u32>,
    #[oai(skip_serializing_if_is_none)]
    pub column: Option<u32>,
}

#[derive(Object)]
pub struct DryRunResult {
    /// Whether the condition held.
    pub matched: bool,
    /// The effects the script WOULD produce (nothing is written).
    pub effects: Vec<Value>,
    /// rhai operations used.
    pub operations: u64,
    /// A compile error, run-time error or limit violation, as a real run would report it.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<DryRunError>,
}

/// The webhook signing secret, shown once.
#[derive(Object)]
pub struct WebhookSecret {
    /// `whsec_` + base64 of the key; receivers verify with the base64 part, decoded.
    pub secret: String,
}

#[derive(Object)]
pub struct WorkflowSettings {
    /// Hosts rules may call with `webhook(url, payload)`: `hooks.example.com`, or
    /// `*.example.com` for its subdomains.
    pub webhook_hosts: Vec<String>,
    /// Failed runs in a row after which a rule is turned off (1–1000, default 5).
    pub failure_limit: i32,
}

/// The answer to a dry run: a sandbox error is part of the answer (the rule would fail so);
/// an unavailable sandbox is 503.
fn result_of(eval: Result<EvalOutcome, SandboxError>) -> ApiResult<Json<DryRunResult>> {
    Ok(Json(match eval {
        Ok(out) => DryRunResult {
            matched: out.matched,
            effects: out
                .effects
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect(),
            operations: out.operations,
            error: None,
        },
        Err(SandboxError::Script {
            code,
            message,
            part,
            line,
            column,
        }) => DryRunResult {
            matched: false,
            effects: Vec::new(),
            operations: 0,
            error: Some(DryRunError {
                code,
                message,
                part,
                line,
                column,
            }),
        },
        Err(SandboxError::Killed { reason }) => DryRunResult {
            matched: false,
            effects: Vec::new(),
            operations: 0,
            error: Some(DryRunError {
                code: "limit.time".into(),
                message: format!("the rule was stopped: {reason}"),
                part: None,
                line: None,
                column: None,
            }),
        },
        Err(SandboxError::Unavailable(m)) => {
            return Err(Error::Unavailable(format!("rule sandbox: {m}")).into())
        }
        Err(SandboxError::Busy { waited_ms }) => {
            return Err(crm_workflows::sandbox::busy(waited_ms).into())
        }
    }))
}

#[OpenApi(tag = "Tag::Account")]
impl RulesApi {
    /// Rules, oldest first.
    #[oai(path = "/rules", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<RulePage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (cursor, limit) = (cursor.0.as_deref(), page_size(limit.0));
        let page = manage::list(&mut tx, &caller, cursor, limit).await?;
        tx.commit().await?;
        Ok(Json(RulePage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Creates a rule (version 1). Condition and script are compiled first: 422 `compile.*`
    /// with `part`, `line` and `column` when they do not.
    #[oai(path = "/rules", method = "post")]
    async fn create(&self, auth: Auth, body: Json<RuleRequest>) -> ApiResult<Created<RuleOut>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let rule = manage::create(&mut tx, &self.0.rules, &caller, &actor, body.0.into()).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(rule.into())))
    }

    /// Evaluates a rule against a record without writing anything: whether the condition
    /// holds and the effects the script would produce, or the error a real run would report.
    #[oai(path = "/rules/dry-run", method = "post")]
    async fn dry_run(
        &self,
        auth: Auth,
        body: Json<DryRunRequest>,
    ) -> ApiResult<Json<DryRunResult>> {
        let body = body.0;
        let draft = body.rule.map(|rule| RuleToTry::Draft {
            name: rule.name,
            object: rule.object,
            condition: rule.condition,
            script: rule.script,
        });
        let rule = RuleToTry::either(draft, body.rule_id)?;
        let record = RecordToTry::either(body.record, body.record_id)?;
        let (tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let engine = &self.0.rules;
        let db = &self.0.db;
        let changes = body.changes;
        let eval = dry_run::dry_run(engine, db, tx, &caller, &actor, rule, record, changes).await?;
        result_of(eval)
    }

    /// One rule.
    #[oai(path = "/rules/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<RuleOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let rule = manage::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(rule.into()))
    }

    /// Replaces a rule: a new version. Runs of events that happened before keep the version
    /// that was current then.
    #[oai(path = "/rules/:id", method = "put")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<RuleRequest>,
    ) -> ApiResult<Json<RuleOut>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let input = body.0.into();
        let rule = manage::update(&mut tx, &self.0.rules, &caller, &actor, id.0, input).await?;
        tx.commit().await?;
        Ok(Json(rule.into()))
    }

    /// Deletes a rule: it stops firing; versions and runs stay readable in the audit log.
    #[oai(path = "/rules/:id", method = "delete")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        manage::delete(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The rule's versions, newest first.
    #[oai(path = "/rules/:id/versions", method = "get")]
    async fn versions(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<RuleVersions>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let items = manage::versions(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(RuleVersions {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// The run log, newest first.
    #[oai(path = "/rules/:id/runs", method = "get")]
    async fn runs(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<RuleRunPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (cursor, limit) = (cursor.0.as_deref(), page_size(limit.0));
        let page = manage::runs(&mut tx, &caller, id.0, cursor, limit).await?;
        tx.commit().await?;
        Ok(Json(RuleRunPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Runs a rule on one record now, whatever its trigger (its condition still applies), and
    /// returns the run. A disabled rule is refused (409 `rule.disabled`).
    #[oai(path = "/rules/:id/run", method = "post")]
    async fn run(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<RunRuleRequest>,
    ) -> ApiResult<Json<RuleRunOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let rules = &self.0.rules;
        let run = manage::run_now(&mut tx, rules, &caller, id.0, body.0.record_id).await?;
        tx.commit().await?;
        Ok(Json(run.into()))
    }

    /// The workflow settings: webhook allow-list and failure limit.
    #[oai(path = "/settings/workflows", method = "get")]
    async fn settings(&self, auth: Auth) -> ApiResult<Json<WorkflowSettings>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (webhook_hosts, failure_limit) = manage::settings(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(WorkflowSettings {
            webhook_hosts,
            failure_limit,
        }))
    }

    /// Replaces the workflow settings (tenant admins: `tenant:manage`).
    #[oai(path = "/settings/workflows", method = "put")]
    async fn put_settings(
        &self,
        auth: Auth,
        body: Json<WorkflowSettings>,
    ) -> ApiResult<Json<WorkflowSettings>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let (hosts, limit) = (&body.0.webhook_hosts, body.0.failure_limit);
        let hosts = manage::set_settings(&mut tx, &caller, &actor, hosts, limit).await?;
        tx.commit().await?;
        Ok(Json(WorkflowSettings {
            webhook_hosts: hosts,
            failure_limit: body.0.failure_limit,
        }))
    }

    /// Creates or replaces the secret rule webhooks are signed with (Standard Webhooks:
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` = `v1,<base64 HMAC-SHA256>`),
    /// and shows it — this once; the old secret stops at once. Needs `tenant:manage`.
    #[oai(path = "/settings/workflows/webhook-secret", method = "post")]
    async fn rotate_webhook_secret(&self, auth: Auth) -> ApiResult<Json<WebhookSecret>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (actor, master) = (Actor::of(&ctx), self.0.master_key.as_deref());
        let secret = manage::rotate_webhook_secret(&mut tx, &caller, &actor, master).await?;
        tx.commit().await?;
        Ok(Json(WebhookSecret { secret }))
    }
}
