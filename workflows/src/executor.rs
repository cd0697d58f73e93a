//! Runs a rule version against one record: evaluates condition and script in the sandbox,
//! then carries out the effects the script returned through the core services, under the
//! rule's own principal (actor kind `rule`) and the permissions of its `run_as_role`, in the
//! caller's transaction. Effects either all happen or none do (a savepoint), and every run is
//! logged once per idempotency key, so a job delivered twice runs once in effect.

pub use crate::effects::check_webhook_host;
use crate::effects::{apply_all, logged, EffectCtx};
use crate::memo::{RecordKey, WorkflowMemo};
use crate::reads::{self, RuleReader};
pub use crate::rule_mail::render_email;
use crate::rules::{self, RuleRun, RuleVersion, RUN_COLUMNS};
use crate::sandbox::{EvalRequest, SandboxError, SandboxPool};
use chrono::{Duration, Utc};
use crm_core::audit::Actor;
use crm_core::authz::Grants;
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::keys;
use crm_core::{Error, Result};
use crm_records::engine::{self, Access, Visibility};
use crm_records::meta::ObjectKey;
use crm_records::schema::ObjectSchema;
use crm_records::scope::RecordScope;
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
    pub(crate) role: String,
    pub(crate) grants: Grants,
    pub(crate) saver: Option<Uuid>,
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
pub(crate) async fn schema_of(tx: &mut TenantTx, object: ObjectKey) -> Result<Arc<ObjectSchema>> {
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
pub(crate) async fn data_key_for(
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
pub(crate) struct Outcome {
    pub(crate) outcome: &'static str,
    pub(crate) effects: Vec<Value>,
    pub(crate) error: Option<Value>,
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
        // The job fails for now and is tried again later; the rule is not at fault.
        SandboxError::Busy { waited_ms } => Err(crate::sandbox::busy(waited_ms)),
    }
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
    let eval_req = EvalRequest {
        condition: req.version.condition.clone(),
        script: req.version.script.clone(),
        record: record.clone(),
        changes: req.changes.clone(),
        context,
        tenant: Some(tx.tenant().id),
    };
    let mut reader = RuleReader {
        tx,
        engine,
        run_as: &run_as,
        actor: &actor,
    };
    let eval = reads::evaluate(&engine.pool, &eval_req, &mut reader).await?;
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
                version: Some(req.version),
                object,
                record_id: req.record_id,
                record,
                actor,
                run_as,
                data_key,
                master: engine.master.as_deref(),
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
            version: Some(version),
            object,
            record_id,
            record,
            actor,
            run_as,
            data_key,
            master: engine.master.as_deref(),
            key: &req.key,
        };
        apply_all(tx, ctx, actions).await?
    };
    log_run(tx, &req, outcome, started).await
}

/// What a plugin's actions did: `succeeded` (every one) or `failed` (none: the savepoint was
/// rolled back), each action as logged, and the error.
#[derive(Debug, Clone)]
pub struct ActionsOutcome {
    pub succeeded: bool,
    pub effects: Vec<Value>,
    pub error: Option<Value>,
}

/// Carries out a plugin's actions through the rule executor: on `record_id` of `object`,
/// with the install's `grants` (scope from its grants, no user), all or none. `key` makes
/// the ids of what they create stable (one per event and install).
#[allow(clippy::too_many_arguments)]
pub async fn run_plugin_actions(
    engine: &RuleEngine,
    tx: &mut TenantTx,
    actor: Actor,
    name: &str,
    grants: Grants,
    object: ObjectKey,
    record_id: Option<Uuid>,
    key: &str,
    actions: Vec<Effect>,
) -> Result<ActionsOutcome> {
    let run_as = Arc::new(RunAs {
        role: format!("plugin {name}"),
        grants,
        saver: None,
    });
    let schema = schema_of(tx, object).await?;
    let data_key = data_key_for(engine, tx, &schema).await;
    let record = match record_id {
        Some(id) => {
            let access = run_as.access(&actor, object, data_key.as_ref());
            match engine::fetch(tx, &schema, &access, id, Visibility::Live, false).await {
                Ok(r) => r,
                Err(Error::NotFound { .. } | Error::Forbidden { .. }) => Value::Null,
                Err(e) => return Err(e),
            }
        }
        None => Value::Null,
    };
    let ctx = EffectCtx {
        version: None,
        object,
        record_id,
        record,
        actor,
        run_as,
        data_key,
        master: engine.master.as_deref(),
        key,
    };
    let outcome = apply_all(tx, ctx, actions).await?;
    Ok(ActionsOutcome {
        succeeded: outcome.outcome == "succeeded",
        effects: outcome.effects,
        error: outcome.error,
    })
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
