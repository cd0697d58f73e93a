//! Runs a rule version against one record: evaluates condition and script in the sandbox,
//! then carries out the effects the script returned through the core services, under the
//! rule's own principal (actor kind `rule`) and the permissions of its `run_as_role`, in the
//! caller's transaction. Effects either all happen or none do (a savepoint), and every run is
//! logged once per idempotency key, so a job delivered twice runs once in effect.

use crate::approvals::{self, NewApproval, StepInput};
use crate::memo::{RecordKey, WorkflowMemo};
use crate::payloads::{FollowUp, WebhookCall};
use crate::rules::{self, RuleRun, RuleVersion, RUN_COLUMNS};
use crate::sandbox::{EvalRequest, SandboxError, SandboxPool};
use chrono::{Duration, Utc};
use crm_core::audit::Actor;
use crm_core::authz::{Grants, Permission};
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, NewJob};
use crm_core::keys;
use crm_core::{Error, Result};
use crm_desk as desk;
use crm_records::engine::{self, Access, Visibility};
use crm_records::meta::{ObjectKey, RecordAction};
use crm_records::schema::ObjectSchema;
use crm_records::scope::RecordScope;
use crm_records::service::{self, CreateOptions};
use crm_rules_protocol::Effect;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Job kind of follow-up actions: `schedule(delay, action)` and approval outcomes.
pub const ACTION_JOB: &str = "rule.action";
/// Job kind of an outgoing webhook call.
pub const WEBHOOK_JOB: &str = "webhook.send";

/// What runs rules: the sandbox pool and the key that opens encrypted fields.
#[derive(Clone)]
pub struct RuleEngine {
    pub pool: Arc<SandboxPool>,
    pub master: Option<Arc<MasterKey>>,
}

/// One run to make.
pub struct RunRequest<'a> {
    pub version: &'a RuleVersion,
    pub record_id: Option<Uuid>,
    /// For updates: `{field: {before, after}}`.
    pub changes: Option<Value>,
    /// What started it, for the log (`{"kind": "event", "event": …, "outbox_id": …}`).
    pub trigger: Value,
    /// One run in effect per key.
    pub key: String,
    /// Rules deep (0 for a person's change).
    pub depth: u8,
    /// The caller has checked, in this transaction, that no run has `key` yet.
    pub fresh: bool,
}

/// What a rule version acts as: the grants of its run-as role, for the user who saved the
/// version (whose records `own` means, and whose teams `team` means).
pub(crate) struct RunAs {
    role: String,
    grants: Grants,
    saver: Option<Uuid>,
}

impl RunAs {
    /// Reads the version's run-as role once per transaction.
    pub(crate) async fn of(tx: &mut TenantTx, version: &RuleVersion) -> Result<Arc<RunAs>> {
        let role = &version.run_as_role;
        let saver = version.created_by;
        let key = (role.clone(), saver);
        if let Some(held) = tx.memo::<WorkflowMemo>().run_as.get(&key) {
            return Ok(held.clone());
        }
        let grants = Grants::of_roles(tx, std::slice::from_ref(role)).await?;
        let run_as = Arc::new(RunAs {
            role: role.clone(),
            grants,
            saver,
        });
        tx.memo::<WorkflowMemo>().run_as.insert(key, run_as.clone());
        Ok(run_as)
    }

    /// How the rule reads and writes `object`: within its role's scope, as no user, masked
    /// unless its role unmasks.
    pub(crate) fn access<'a>(
        &'a self,
        actor: &'a Actor,
        object: ObjectKey,
        data_key: Option<&'a DataKey>,
    ) -> Access<'a> {
        Access::of_grants(&self.grants, self.saver, actor, object, data_key)
    }
}

/// An object's fields, read once per transaction (rule effects never change fields).
async fn schema_of(tx: &mut TenantTx, object: ObjectKey) -> Result<Arc<ObjectSchema>> {
    if let Some(schema) = tx.memo::<WorkflowMemo>().schemas.get(&object) {
        return Ok(schema.clone());
    }
    let schema = Arc::new(ObjectSchema::load(tx, object).await?);
    tx.memo::<WorkflowMemo>()
        .schemas
        .insert(object, schema.clone());
    Ok(schema)
}

/// The tenant's data key when the object has encrypted fields (else, or without a master
/// key, none: encrypted values then read as absent).
async fn data_key_for(
    engine: &RuleEngine,
    tx: &mut TenantTx,
    schema: &ObjectSchema,
) -> Option<DataKey> {
    if !schema.has_encrypted() {
        return None;
    }
    keys::data_key(tx, engine.master.as_deref(), false)
        .await
        .ok()
        .flatten()
}

/// The outcome of a run whose record lies outside its run-as role's scope: the rule does not
/// apply to records its role cannot see.
fn out_of_scope(run_as: &RunAs) -> Outcome {
    Outcome {
        outcome: "not_matched",
        effects: Vec::new(),
        error: Some(json!({
            "code": "rule.out_of_scope",
            "message": format!(
                "the record is outside the record scope of role '{}', which the rule runs as",
                run_as.role
            ),
        })),
    }
}

/// A run's result before it is logged.
struct Outcome {
    outcome: &'static str,
    effects: Vec<Value>,
    error: Option<Value>,
}

fn script_error(e: SandboxError) -> std::result::Result<Value, Error> {
    match e {
        SandboxError::Script {
            code,
            message,
            part,
            line,
            column,
        } => Ok(
            json!({ "code": code, "message": message, "part": part, "line": line, "column": column }),
        ),
        SandboxError::Killed { reason } => Ok(json!({
            "code": "limit.time",
            "message": format!("the rule was stopped: {reason}"),
        })),
        SandboxError::Unavailable(m) => Err(Error::Unavailable(format!("rule sandbox: {m}"))),
    }
}

/// Everything an effect needs.
struct EffectCtx<'a> {
    version: &'a RuleVersion,
    object: ObjectKey,
    record_id: Option<Uuid>,
    /// The record as the effects left it so far (refreshed after each change to it).
    record: Value,
    actor: Actor,
    run_as: Arc<RunAs>,
    data_key: Option<DataKey>,
    key: &'a str,
}

impl EffectCtx<'_> {
    fn access(&self, object: ObjectKey) -> Access<'_> {
        self.run_as
            .access(&self.actor, object, self.data_key.as_ref())
    }

    fn require(&self, permission: Permission) -> Result<()> {
        if self.run_as.grants.holds(permission) {
            Ok(())
        } else {
            Err(Error::forbidden(
                "rule.forbidden",
                format!(
                    "the rule runs as role '{}', which lacks {}; give the role that permission or run the rule as another role",
                    self.run_as.role,
                    permission.as_str()
                ),
            ))
        }
    }

    fn record_id(&self) -> Result<Uuid> {
        self.record_id
            .ok_or_else(|| effect_error("this action needs a record; the run has none"))
    }

    fn field_uuid(&self, key: &str) -> Option<Uuid> {
        self.record[key]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
    }
}

fn effect_error(message: impl Into<String>) -> Error {
    Error::invalid_field("effects", "effect_failed", message)
}

/// Memo key of a record read ahead for the runs of a job group.
fn record_memo(object: ObjectKey, run_as: &RunAs, id: Uuid) -> RecordKey {
    (object, run_as.role.clone(), run_as.saver, id)
}

/// Reads ahead, in one statement per object, the records a group of runs is about, so each
/// run of the group finds its record in the transaction's memo. Runs after an effect that
/// wrote records read theirs again.
pub async fn prefetch(
    engine: &RuleEngine,
    tx: &mut TenantTx,
    runs: &[(Arc<RuleVersion>, Uuid)],
) -> Result<()> {
    // (object, run-as role, saver) -> (one of its versions, record ids)
    type Group = (
        (ObjectKey, String, Option<Uuid>),
        Arc<RuleVersion>,
        Vec<Uuid>,
    );
    let mut wanted: Vec<Group> = Vec::new();
    for (version, id) in runs {
        let key = (
            version.object_key()?,
            version.run_as_role.clone(),
            version.created_by,
        );
        match wanted.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, ids)) => ids.push(*id),
            None => wanted.push((key, version.clone(), vec![*id])),
        }
    }
    for ((object, _, _), version, ids) in wanted {
        let run_as = RunAs::of(tx, &version).await?;
        let schema = schema_of(tx, object).await?;
        let data_key = data_key_for(engine, tx, &schema).await;
        let actor = Actor::system();
        let access = run_as.access(&actor, object, data_key.as_ref());
        // Records outside the role's scope are not found here; their runs look them up alone.
        let found = engine::fetch_many(tx, &schema, &access, &ids, Visibility::Any).await?;
        for (id, record) in found {
            tx.memo::<WorkflowMemo>()
                .records
                .insert(record_memo(object, &run_as, id), Arc::new(record));
        }
    }
    Ok(())
}

/// Runs a rule once for `req.key`: a second call with the same key returns the first run.
pub async fn run(engine: &RuleEngine, tx: &mut TenantTx, req: RunRequest<'_>) -> Result<RuleRun> {
    if !req.fresh {
        if let Some(done) = find_run(tx, &req.key).await? {
            return Ok(done);
        }
    }
    let started = Instant::now();
    let object = req.version.object_key()?;
    let run_as = RunAs::of(tx, req.version).await?;
    let schema = schema_of(tx, object).await?;
    let data_key = data_key_for(engine, tx, &schema).await;
    let actor = rules::actor(req.version, &req.key, req.depth.saturating_add(1));
    let prefetched = req.record_id.and_then(|id| {
        let memo = tx.memo::<WorkflowMemo>();
        let fresh = !memo.records_written;
        fresh
            .then(|| memo.records.get(&record_memo(object, &run_as, id)).cloned())
            .flatten()
    });
    let record = match (req.record_id, prefetched) {
        (Some(_), Some(record)) => (*record).clone(),
        (Some(id), None) => {
            let access = run_as.access(&actor, object, data_key.as_ref());
            match engine::fetch(tx, &schema, &access, id, Visibility::Any, false).await {
                Ok(r) => r,
                Err(Error::NotFound { .. }) => {
                    let exists =
                        engine::ensure_visible(tx, object, RecordScope::All, id, Visibility::Any)
                            .await
                            .is_ok();
                    if exists {
                        let outcome = out_of_scope(&run_as);
                        return log_run(tx, &req, outcome, started).await;
                    }
                    json!({ "id": id, "purged": true })
                }
                Err(e) => return Err(e),
            }
        }
        (None, _) => Value::Null,
    };
    let context = context(
        json!({ "id": req.version.rule_id, "name": req.version.name, "version": req.version.version }),
        object,
        req.trigger.clone(),
        tx.tenant().slug.as_str(),
    );
    let eval = engine
        .pool
        .evaluate(&EvalRequest {
            condition: req.version.condition.clone(),
            script: req.version.script.clone(),
            record: record.clone(),
            changes: req.changes.clone(),
            context,
        })
        .await;
    let outcome = match eval {
        Err(e) => Outcome {
            outcome: "failed",
            effects: Vec::new(),
            error: Some(script_error(e)?),
        },
        Ok(out) if !out.matched => Outcome {
            outcome: "not_matched",
            effects: Vec::new(),
            error: None,
        },
        Ok(out) => {
            let ctx = EffectCtx {
                version: req.version,
                object,
                record_id: req.record_id,
                record,
                actor,
                run_as,
                data_key,
                key: &req.key,
            };
            apply_all(tx, ctx, out.effects).await?
        }
    };
    log_run(tx, &req, outcome, started).await
}

/// What a script sees as `context`: the rule, the object, the trigger, the tenant, `now`, and
/// `ago` — the instants 1h, 1d, 3d, 7d, 14d, 30d and 90d before now — all as RFC 3339 UTC
/// strings like the record's timestamps, so `record.last_activity_at < context.ago["7d"]`
/// compares instants.
pub fn context(rule: Value, object: ObjectKey, trigger: Value, tenant: &str) -> Value {
    let now = Utc::now();
    let stamp = |t: chrono::DateTime<Utc>| t.to_rfc3339();
    let mut ago = Map::new();
    for (key, hours) in [
        ("1h", 1),
        ("1d", 24),
        ("3d", 72),
        ("7d", 168),
        ("14d", 336),
        ("30d", 720),
        ("90d", 2160),
    ] {
        ago.insert(key.into(), json!(stamp(now - Duration::hours(hours))));
    }
    json!({
        "rule": rule,
        "object": object.as_str(),
        "trigger": trigger,
        "tenant": tenant,
        "now": stamp(now),
        "ago": ago,
    })
}

/// Carries out follow-up actions (a `schedule`d action, an approval's `on_approve`) of a rule
/// version, logged as a run with trigger kind `action`.
pub async fn run_actions(
    engine: &RuleEngine,
    tx: &mut TenantTx,
    version: &RuleVersion,
    record_id: Option<Uuid>,
    actions: Vec<Effect>,
    origin: &str,
) -> Result<RuleRun> {
    let key = format!("action:{origin}");
    if let Some(done) = find_run(tx, &key).await? {
        return Ok(done);
    }
    let started = Instant::now();
    let object = version.object_key()?;
    let run_as = RunAs::of(tx, version).await?;
    let schema = schema_of(tx, object).await?;
    let data_key = data_key_for(engine, tx, &schema).await;
    let actor = rules::actor(version, &key, 1);
    let record = match record_id {
        Some(id) => {
            let access = run_as.access(&actor, object, data_key.as_ref());
            match engine::fetch(tx, &schema, &access, id, Visibility::Live, false).await {
                Ok(r) => r,
                Err(Error::NotFound { .. }) => Value::Null,
                Err(e) => return Err(e),
            }
        }
        None => Value::Null,
    };
    let req = RunRequest {
        version,
        record_id,
        changes: None,
        trigger: json!({ "kind": "action", "origin": origin }),
        key,
        depth: 0,
        fresh: true,
    };
    let outcome = if record_id.is_some() && record.is_null() {
        Outcome {
            outcome: "failed",
            effects: actions.iter().map(logged).collect(),
            error: Some(json!({
                "code": "rule.record_gone",
                "message": "the record was deleted before the action was due",
            })),
        }
    } else {
        let ctx = EffectCtx {
            version,
            object,
            record_id,
            record,
            actor,
            run_as,
            data_key,
            key: &req.key,
        };
        apply_all(tx, ctx, actions).await?
    };
    log_run(tx, &req, outcome, started).await
}

async fn find_run(tx: &mut TenantTx, key: &str) -> Result<Option<RuleRun>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM rule_runs WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(tx.conn())
    .await?)
}

async fn log_run(
    tx: &mut TenantTx,
    req: &RunRequest<'_>,
    outcome: Outcome,
    started: Instant,
) -> Result<RuleRun> {
    let failed = outcome.outcome == "failed";
    let message = outcome
        .error
        .as_ref()
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    // A run that did not fail also ends the rule's streak of failures (same statement).
    let run: RuleRun = sqlx::query_as(&format!(
        "WITH streak AS (UPDATE rules SET consecutive_failures = 0 \
           WHERE id = $1 AND consecutive_failures <> 0 AND NOT $11) \
         INSERT INTO rule_runs (rule_id, rule_version_id, version, trigger, record_id, idempotency_key, \
           outcome, effects, error, duration_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         RETURNING {RUN_COLUMNS}"
    ))
    .bind(req.version.rule_id)
    .bind(req.version.id)
    .bind(req.version.version)
    .bind(&req.trigger)
    .bind(req.record_id)
    .bind(&req.key)
    .bind(outcome.outcome)
    .bind(Value::Array(outcome.effects))
    .bind(&outcome.error)
    .bind(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX))
    .bind(failed)
    .fetch_one(tx.conn())
    .await?;
    if failed {
        rules::count_failure(tx, req.version.rule_id, &message).await?;
    }
    Ok(run)
}

/// Applies every effect or none: on the first failure the savepoint is rolled back and the
/// run is `failed` with that error.
async fn apply_all(
    tx: &mut TenantTx,
    mut ctx: EffectCtx<'_>,
    effects: Vec<Effect>,
) -> Result<Outcome> {
    // In a transaction shared by several jobs, a failed effect fails the job instead: the
    // worker then runs it again alone, where the savepoint lets the run be logged as failed.
    // That saves two round trips per run in the common case, where every effect succeeds.
    let guarded = !tx.is_shared();
    if guarded {
        sqlx::query("SAVEPOINT rule_effects")
            .execute(tx.conn())
            .await?;
    }
    // Approvals lock their record: request them after the other effects on it.
    let mut ordered: Vec<(usize, Effect)> = effects.into_iter().enumerate().collect();
    ordered.sort_by_key(|(i, e)| (matches!(e, Effect::RequestApproval { .. }), *i));
    let mut done = vec![Value::Null; ordered.len()];
    for (i, effect) in ordered {
        match apply(tx, &mut ctx, i, &effect).await {
            Ok(result) => {
                if effect.writes_records() {
                    tx.memo::<WorkflowMemo>().records_written = true;
                }
                // The run log keeps each effect as JSON with what it made.
                let mut logged = logged(&effect);
                if let (Value::Object(map), false) = (&mut logged, result.is_null()) {
                    map.insert("result".into(), result);
                }
                done[i] = logged;
            }
            Err(e) => {
                if !guarded {
                    return Err(e);
                }
                sqlx::query("ROLLBACK TO SAVEPOINT rule_effects")
                    .execute(tx.conn())
                    .await?;
                if matches!(
                    e,
                    Error::Database(_) | Error::Internal(_) | Error::Unavailable(_)
                ) {
                    // Not the rule's fault: let the job retry.
                    return Err(e);
                }
                let mut effects: Vec<Value> = done.into_iter().filter(|e| !e.is_null()).collect();
                effects.push(logged(&effect));
                let message = match &e {
                    Error::Invalid { fields, .. } if !fields.is_empty() => fields
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                return Ok(Outcome {
                    outcome: "failed",
                    effects,
                    error: Some(json!({
                        "code": e.code(),
                        "message": format!("{} (effect {}): {message}", effect.action(), i + 1),
                        "effect": i,
                    })),
                });
            }
        }
    }
    if guarded {
        sqlx::query("RELEASE SAVEPOINT rule_effects")
            .execute(tx.conn())
            .await?;
    }
    Ok(Outcome {
        outcome: "succeeded",
        effects: done,
        error: None,
    })
}

/// An effect as the run log and the API show it.
fn logged(effect: &Effect) -> Value {
    serde_json::to_value(effect).unwrap_or_else(|_| json!({ "action": effect.action() }))
}

/// Carries out one effect; returns what it made (ids) for the run log.
async fn apply(
    tx: &mut TenantTx,
    ctx: &mut EffectCtx<'_>,
    index: usize,
    effect: &Effect,
) -> Result<Value> {
    match effect {
        Effect::SetField { key, value } => {
            ctx.require(ctx.object.permission(RecordAction::Update))?;
            let id = ctx.record_id()?;
            let schema = schema_of(tx, ctx.object).await?;
            let mut body = Map::new();
            body.insert(key.clone(), value.clone());
            ctx.record = service::update(
                tx,
                &schema,
                &ctx.access(ctx.object),
                id,
                None,
                &Value::Object(body),
            )
            .await?;
            Ok(Value::Null)
        }
        Effect::AssignTo { target } => assign(tx, ctx, target).await,
        Effect::CreateTask {
            title,
            due_in_seconds,
            assignee,
            notes,
            priority,
            ..
        } => {
            ctx.require(ObjectKey::Tasks.permission(RecordAction::Create))?;
            let due = Utc::now() + Duration::seconds(*due_in_seconds);
            let assignee = match assignee.as_deref() {
                Some(who) => resolve_user(tx, ctx, who).await?,
                None => owner_of(ctx).ok_or_else(|| {
                    effect_error("the record has no owner; give the task an assignee")
                })?,
            };
            let mut body = json!({
                "title": title,
                "due_at": due,
                "remind_at": due,
                "assignee_id": assignee,
            });
            if let Some(notes) = notes {
                body["notes"] = json!(notes);
            }
            if let Some(priority) = priority {
                body["priority"] = json!(priority);
            }
            for (key, value) in related(ctx) {
                body[key] = json!(value);
            }
            let schema = schema_of(tx, ObjectKey::Tasks).await?;
            let task = service::create(
                tx,
                &schema,
                &ctx.access(ObjectKey::Tasks),
                &body,
                CreateOptions::default(),
            )
            .await?;
            Ok(json!({ "task_id": task["id"] }))
        }
        Effect::AddComment { text: body, public } => {
            let public = *public;
            let id = ctx.record_id()?;
            if ctx.object == ObjectKey::Tickets {
                ctx.require(Permission::TicketsUpdate)?;
                let c = desk::comments::add(
                    tx,
                    id,
                    desk::comments::Author::Staff(None),
                    body,
                    public,
                    &ctx.actor,
                )
                .await?;
                Ok(json!({ "comment_id": c.id }))
            } else {
                // Other records keep notes as activities on their timeline.
                ctx.require(ObjectKey::Activities.permission(RecordAction::Create))?;
                let mut note = json!({
                    "kind": "note",
                    "subject": body.chars().take(120).collect::<String>(),
                    "body": body,
                });
                for (key, value) in related(ctx) {
                    note[key] = json!(value);
                }
                let schema = schema_of(tx, ObjectKey::Activities).await?;
                let a = service::create(
                    tx,
                    &schema,
                    &ctx.access(ObjectKey::Activities),
                    &note,
                    CreateOptions::default(),
                )
                .await?;
                Ok(json!({ "activity_id": a["id"] }))
            }
        }
        Effect::SendEmail { template, to } => send_email(tx, ctx, index, template, to).await,
        Effect::RequestApproval {
            title,
            steps,
            on_approve,
            on_reject,
        } => {
            ctx.require(ctx.object.permission(RecordAction::Update))?;
            let id = ctx.record_id()?;
            let steps = steps
                .iter()
                .map(|s| StepInput {
                    approvers: s.approvers.clone(),
                    mode: s.mode.as_str().to_owned(),
                    quorum: s.quorum,
                    escalate_after_seconds: s.escalate_after_seconds,
                })
                .collect();
            let approval = approvals::request(
                tx,
                &ctx.actor,
                NewApproval {
                    object: ctx.object,
                    record_id: id,
                    title: title.clone().or_else(|| Some(ctx.version.name.clone())),
                    steps,
                    requested_by: None,
                    rule_id: Some(ctx.version.rule_id),
                    rule_version_id: Some(ctx.version.id),
                    on_approve: on_approve.clone(),
                    on_reject: on_reject.clone(),
                },
            )
            .await?;
            Ok(json!({ "approval_id": approval.id }))
        }
        Effect::Schedule {
            delay_seconds,
            then,
            ..
        } => {
            let delay = *delay_seconds;
            let origin = format!("{}:fx{index}", ctx.key);
            let mut job = NewJob::of(&FollowUp {
                rule_id: ctx.version.rule_id,
                rule_version_id: Some(ctx.version.id),
                object: Some(ctx.object.as_str().to_owned()),
                record_id: ctx.record_id,
                actions: vec![(**then).clone()],
                origin: origin.clone(),
            })?
            .dedupe(origin.clone())
            .at(Utc::now() + Duration::seconds(delay));
            job.subject_id = ctx.record_id;
            let job_id = jobs::enqueue(tx, job).await?;
            Ok(json!({ "job_id": job_id, "run_at": Utc::now() + Duration::seconds(delay) }))
        }
        Effect::Webhook { url, payload } => {
            check_webhook_host(tx, url).await?;
            let key = format!("{}:fx{index}", ctx.key);
            let body = json!({
                "rule": { "id": ctx.version.rule_id, "name": ctx.version.name, "version": ctx.version.version },
                "object": ctx.object.as_str(),
                "record_id": ctx.record_id,
                "payload": payload,
                "idempotency_key": key,
            });
            let job_id = jobs::enqueue(
                tx,
                NewJob::of(&WebhookCall {
                    url: url.clone(),
                    body,
                    key: key.clone(),
                })?
                .dedupe(format!("webhook:{key}")),
            )
            .await?;
            Ok(json!({ "job_id": job_id }))
        }
        Effect::Notify { user, text: body } => {
            let user = resolve_user(tx, ctx, user).await?;
            let title: String = body.chars().take(200).collect();
            let id = crm_core::notifications::create(
                tx,
                crm_core::notifications::NewNotification {
                    user_id: user,
                    kind: "rule",
                    title: &title,
                    body: Some(body),
                    record: ctx.record_id.map(|r| (ctx.object.as_str(), r)),
                    job_id: None,
                },
            )
            .await?;
            Ok(json!({ "notification_id": id, "user_id": user }))
        }
    }
}

/// The customer, contact and opportunity a record hangs off, for the tasks and notes a rule
/// creates about it.
fn related(ctx: &EffectCtx<'_>) -> Vec<(&'static str, Uuid)> {
    let mut out = Vec::new();
    let own = ctx.record_id;
    let field = |k: &str| ctx.field_uuid(k);
    match ctx.object {
        ObjectKey::Customers => out.extend(own.map(|id| ("customer_id", id))),
        ObjectKey::Contacts => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            if field("customer_id").is_some() {
                out.extend(own.map(|id| ("contact_id", id)));
            }
        }
        ObjectKey::Opportunities => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            out.extend(field("contact_id").map(|c| ("contact_id", c)));
            out.extend(own.map(|id| ("opportunity_id", id)));
        }
        ObjectKey::Tickets => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            out.extend(field("contact_id").map(|c| ("contact_id", c)));
        }
        ObjectKey::Activities | ObjectKey::Tasks => {
            for k in ["customer_id", "contact_id", "opportunity_id"] {
                out.extend(field(k).map(|c| (k, c)));
            }
        }
    }
    out
}

fn owner_of(ctx: &EffectCtx<'_>) -> Option<Uuid> {
    ctx.field_uuid(ctx.object.owner_column())
        .or_else(|| ctx.field_uuid("owner_id"))
}

/// A user named in a script: a user id, `user:<id or e-mail>`, an e-mail, or a role of the
/// record — `owner`, `assignee`, `creator`, `manager` (the owner's manager).
async fn resolve_user(tx: &mut TenantTx, ctx: &EffectCtx<'_>, who: &str) -> Result<Uuid> {
    let who = who.trim();
    let who = who.strip_prefix("user:").unwrap_or(who);
    let found: Option<Uuid> = match who {
        "owner" => owner_of(ctx),
        "assignee" => ctx.field_uuid("assignee_id"),
        "creator" => ctx.field_uuid("created_by"),
        "manager" => match owner_of(ctx) {
            Some(owner) => {
                sqlx::query_scalar::<_, Option<Uuid>>("SELECT manager_id FROM users WHERE id = $1")
                    .bind(owner)
                    .fetch_optional(tx.conn())
                    .await?
                    .flatten()
            }
            None => None,
        },
        _ => {
            let id = Uuid::parse_str(who).ok();
            sqlx::query_scalar(
                "SELECT id FROM users WHERE status = 'active' AND (id = $1 OR lower(email) = lower($2))",
            )
            .bind(id)
            .bind(who)
            .fetch_optional(tx.conn())
            .await?
        }
    };
    let Some(user) = found else {
        return Err(effect_error(format!(
            "'{who}' names no active user (use a user id, an e-mail, or owner / assignee / creator / manager)"
        )));
    };
    // Rule effects never change users, so within one transaction the answer holds.
    let known = tx.memo::<WorkflowMemo>().active_users.get(&user).copied();
    let active = match known {
        Some(active) => active,
        None => {
            let active = sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM users WHERE id = $1 AND status = 'active'",
            )
            .bind(user)
            .fetch_optional(tx.conn())
            .await?
            .is_some();
            tx.memo::<WorkflowMemo>().active_users.insert(user, active);
            active
        }
    };
    if active {
        Ok(user)
    } else {
        Err(effect_error(format!("'{who}' is not an active user")))
    }
}

async fn team_id(tx: &mut TenantTx, raw: &str) -> Result<Uuid> {
    let id = Uuid::parse_str(raw).ok();
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM teams WHERE id = $1 OR name = $2")
        .bind(id)
        .bind(raw)
        .fetch_optional(tx.conn())
        .await?;
    found.ok_or_else(|| effect_error(format!("no team '{raw}'")))
}

/// `assign_to`: a user (see [`resolve_user`]); `team:<id or name>` (tickets: the team, which
/// assigns by its own mode); `round_robin` / `least_loaded` (tickets: within the ticket's
/// team), or `round_robin:<team>` / `least_loaded:<team>` for any record.
async fn assign(tx: &mut TenantTx, ctx: &mut EffectCtx<'_>, target: &str) -> Result<Value> {
    ctx.require(ctx.object.permission(RecordAction::Update))?;
    let id = ctx.record_id()?;
    let owner_col = ctx.object.owner_column();
    let (strategy, team) = match target.split_once(':') {
        Some(("round_robin", t)) => (Some("round_robin"), Some(t)),
        Some(("least_loaded", t)) => (Some("least_open"), Some(t)),
        _ if target == "round_robin" => (Some("round_robin"), None),
        _ if target == "least_loaded" => (Some("least_open"), None),
        _ => (None, None),
    };
    let body = if let Some(team_ref) = target.strip_prefix("team:") {
        if ctx.object != ObjectKey::Tickets {
            return Err(effect_error(
                "only tickets belong to teams; for other records use round_robin:<team> or a user",
            ));
        }
        let team = team_id(tx, team_ref).await?;
        json!({ "team_id": team })
    } else if let Some(strategy) = strategy {
        let team = match team {
            Some(t) => team_id(tx, t).await?,
            None if ctx.object == ObjectKey::Tickets => ctx.field_uuid("team_id").ok_or_else(|| {
                effect_error("the ticket has no team; assign it to a team first or name one: round_robin:<team>")
            })?,
            None => {
                return Err(effect_error(format!(
                    "name the team to pick from: {target}:<team id or name>"
                )))
            }
        };
        let Some(user) = desk::assignment::pick_with(tx, team, Some(strategy)).await? else {
            return Err(effect_error("nobody in the team is active and available"));
        };
        json!({ owner_col: user })
    } else {
        let user = resolve_user(tx, ctx, target).await?;
        json!({ owner_col: user })
    };
    let schema = schema_of(tx, ctx.object).await?;
    ctx.record = service::update(tx, &schema, &ctx.access(ctx.object), id, None, &body).await?;
    Ok(body)
}

/// Whether the company's admin allowed webhooks to the URL's host (`settings.webhook_hosts`:
/// `hooks.example.com`, or `*.example.com` for its subdomains).
pub async fn check_webhook_host(tx: &mut TenantTx, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| effect_error(format!("'{url}' is not a URL")))?;
    let host = parsed
        .host_str()
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| effect_error(format!("'{url}' has no host")))?;
    let allowed: Vec<String> = sqlx::query_scalar("SELECT webhook_hosts FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => a == host,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(Error::forbidden(
            "rule.webhook_host_not_allowed",
            format!("webhooks to '{host}' are not allowed; an admin can add the host under PUT /api/v1/settings/workflows"),
        ))
    }
}

/// `send_email(template, to)`: `to` is `contact` or `customer` (the record's), a user
/// reference (`owner`, `assignee`, `manager`, a user id) or an e-mail address; `template` is
/// `follow_up` or the message itself — first line the subject, the rest the body — with
/// `{{field}}` placeholders filled from the record.
async fn send_email(
    tx: &mut TenantTx,
    ctx: &EffectCtx<'_>,
    index: usize,
    template: &str,
    to: &str,
) -> Result<Value> {
    let (address, lang) = match to {
        "contact" | "customer" => {
            let (table, id) = match (to, ctx.object) {
                ("contact", ObjectKey::Contacts) => ("contacts", ctx.record_id),
                ("contact", _) => ("contacts", ctx.field_uuid("contact_id")),
                ("customer", ObjectKey::Customers) => ("customers", ctx.record_id),
                _ => ("customers", ctx.field_uuid("customer_id")),
            };
            let email: Option<Option<String>> = match id {
                Some(id) => {
                    sqlx::query_scalar(&format!("SELECT email FROM {table} WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(tx.conn())
                        .await?
                }
                None => None,
            };
            let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
                .fetch_one(tx.conn())
                .await?;
            let email = email
                .flatten()
                .filter(|e| e.contains('@'))
                .ok_or_else(|| effect_error(format!("the record's {to} has no e-mail address")))?;
            (email, locale)
        }
        addr if addr.contains('@') && !addr.starts_with("user:") => {
            let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
                .fetch_one(tx.conn())
                .await?;
            (addr.to_owned(), locale)
        }
        who => {
            let user = resolve_user(tx, ctx, who).await?;
            let row: (String, String) = sqlx::query_as(
                "SELECT u.email, COALESCE(u.locale, s.locale) FROM users u CROSS JOIN settings s WHERE u.id = $1",
            )
            .bind(user)
            .fetch_one(tx.conn())
            .await?;
            row
        }
    };
    let (subject, text) = render_email(template, &ctx.record, &lang);
    let mail = crm_core::mail::OutgoingMail {
        to: vec![address.clone()],
        subject,
        text,
        purpose: "rule.email".into(),
    };
    let job = crm_core::mail::enqueue(
        tx,
        &mail,
        format!("mail:{}:fx{index}", ctx.key),
        ctx.record_id,
    )
    .await?;
    Ok(json!({ "to": address, "job_id": job }))
}

/// Fills `{{field}}` from the record (unknown fields become empty).
fn fill(text: &str, record: &Value) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim().trim_start_matches("record.");
                match &record[key] {
                    Value::String(s) => out.push_str(s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Subject and body of a rule's mail.
pub fn render_email(template: &str, record: &Value, locale: &str) -> (String, String) {
    let zh = locale == "zh-CN";
    let (subject, body) = match template {
        "follow_up" if zh => (
            "跟进提醒：{{name}}".to_owned(),
            "您好：\n\n请及时跟进「{{name}}」。\n\n—— TC CRM".to_owned(),
        ),
        "follow_up" => (
            "Follow-up: {{name}}".to_owned(),
            "Hello,\n\nPlease follow up on \"{{name}}\".\n\n-- TC CRM".to_owned(),
        ),
        literal => match literal.split_once('\n') {
            Some((s, b)) => (s.trim().to_owned(), b.trim_start_matches('\n').to_owned()),
            None => (literal.trim().to_owned(), literal.trim().to_owned()),
        },
    };
    (fill(&subject, record), fill(&body, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_from_the_record() {
        let record = json!({"name": "艾克米贸易", "level": "A", "amount": 1200});
        let (s, b) = render_email("follow_up", &record, "zh-CN");
        assert_eq!(s, "跟进提醒：艾克米贸易");
        assert!(b.contains("「艾克米贸易」"));
        let (s, b) = render_email(
            "Level {{level}} customer {{ record.name }}\n\nAmount {{amount}}, {{missing}}.",
            &record,
            "en",
        );
        assert_eq!(s, "Level A customer 艾克米贸易");
        assert_eq!(b, "Amount 1200, .");
        assert_eq!(
            fill("open {{ never closed", &record),
            "open {{ never closed"
        );
    }
}
