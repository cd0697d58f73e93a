//! Dry run: evaluates a rule (a draft or a saved one) against a record (given inline or a
//! stored one) and reports whether the condition held and the effects the script WOULD
//! produce, writing nothing. A stored record is read as the caller may read it: the object's
//! read permission, the caller's record scope and masking, encrypted fields decrypted; so are
//! the records the script reads with `get_record`.

use crate::executor::{self, RuleEngine};
use crate::reads::{self, CallerReader};
use crate::rules;
use crate::sandbox::{EvalOutcome, EvalRequest, SandboxError};
use crm_core::audit::Actor;
use crm_core::authz::{Caller, Permission};
use crm_core::db::{Db, TenantTx};
use crm_core::{Error, Result};
use crm_records::engine::{self, Access, Visibility};
use crm_records::{ObjectKey, ObjectSchema, RecordAction};
use serde_json::{json, Value};
use uuid::Uuid;

/// Which rule to try.
pub enum RuleToTry {
    /// A rule not saved yet.
    Draft {
        name: String,
        object: String,
        condition: Option<String>,
        script: String,
    },
    Saved(Uuid),
}

impl RuleToTry {
    /// Exactly one of a draft (`rule`) and a saved rule (`rule_id`), or 422 naming `rule`.
    pub fn either(draft: Option<RuleToTry>, saved: Option<Uuid>) -> Result<RuleToTry> {
        match (draft, saved) {
            (Some(draft), None) => Ok(draft),
            (None, Some(id)) => Ok(RuleToTry::Saved(id)),
            _ => Err(Error::invalid_field(
                "rule",
                "rule_or_rule_id",
                "give either `rule` (a rule to try) or `rule_id` (a saved rule)",
            )),
        }
    }
}

/// Which record to try it on.
pub enum RecordToTry {
    /// The record as the script would see it.
    Given(Value),
    /// A stored record of the rule's object.
    Stored(Uuid),
}

impl RecordToTry {
    /// Exactly one of an inline `record` and a stored `record_id`, or 422 naming `record`.
    pub fn either(given: Option<Value>, stored: Option<Uuid>) -> Result<RecordToTry> {
        match (given, stored) {
            (Some(record), None) => Ok(RecordToTry::Given(record)),
            (None, Some(id)) => Ok(RecordToTry::Stored(id)),
            _ => Err(Error::invalid_field(
                "record",
                "record_or_record_id",
                "give either `record` (a JSON object) or `record_id` (a stored record)",
            )),
        }
    }
}

/// Evaluates `rule` against `record` (with `changes` for update triggers). The transaction
/// is committed before the sandbox runs, so no connection waits on the script.
#[allow(clippy::too_many_arguments)]
pub async fn dry_run(
    engine: &RuleEngine,
    db: &Db,
    mut tx: TenantTx,
    caller: &Caller,
    actor: &Actor,
    rule: RuleToTry,
    record: RecordToTry,
    changes: Option<Value>,
) -> Result<std::result::Result<EvalOutcome, SandboxError>> {
    caller.require(Permission::WorkflowsManage)?;
    let (object, condition, script, name, version) = match rule {
        RuleToTry::Draft {
            name,
            object,
            condition,
            script,
        } => {
            let object = crate::objects::require(&mut tx, &object, "rule.object").await?;
            (object, condition, script, name, 0)
        }
        RuleToTry::Saved(id) => {
            let rule = rules::get(&mut tx, id).await?;
            let object = crate::objects::require(&mut tx, &rule.object, "rule_id").await?;
            (object, rule.condition, rule.script, rule.name, rule.version)
        }
    };
    let record = match record {
        RecordToTry::Given(record @ Value::Object(_)) => record,
        RecordToTry::Given(_) => {
            return Err(Error::invalid_field(
                "record",
                "record_or_record_id",
                "give either `record` (a JSON object) or `record_id` (a stored record)",
            ))
        }
        RecordToTry::Stored(id) => read_record(engine, &mut tx, caller, actor, object, id).await?,
    };
    let tenant = tx.tenant().clone();
    tx.commit().await?;
    let req = EvalRequest {
        condition: condition.filter(|c| !c.trim().is_empty()),
        script,
        record,
        changes,
        context: executor::context(
            json!({ "name": name, "version": version }),
            object,
            json!({ "kind": "dry_run" }),
            tenant.slug.as_str(),
        ),
        tenant: Some(tenant.id),
    };
    let mut reader = CallerReader {
        db,
        tenant,
        caller,
        actor,
        master: engine.master.as_deref(),
    };
    match reads::evaluate(&engine.pool, &req, &mut reader).await? {
        Err(SandboxError::Unavailable(m)) => Err(Error::Unavailable(format!("rule sandbox: {m}"))),
        Err(SandboxError::Busy { waited_ms }) => Err(crate::sandbox::busy(waited_ms)),
        other => Ok(other),
    }
}

/// Reads a stored record as the caller may: read permission, record scope, masking; the
/// tenant's data key is opened when the object has encrypted fields.
async fn read_record(
    engine: &RuleEngine,
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    object: ObjectKey,
    id: Uuid,
) -> Result<Value> {
    caller.require(object.permission(RecordAction::Read))?;
    let schema = ObjectSchema::load(tx, object).await?;
    let data_key = schema.data_key(tx, engine.master.as_deref()).await?;
    let access = Access::of_caller(caller, actor, object, data_key.as_ref());
    engine::fetch(tx, &schema, &access, id, Visibility::Any, false).await
}
