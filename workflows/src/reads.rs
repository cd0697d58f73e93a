//! Records a script reads with `get_record(object, id)`. The sandbox does no I/O, so an
//! evaluation that asks for a record it was not given stops and names it
//! (`EvalOutcome::needs`); the server reads it through the record engine as the reader may —
//! the rule's run-as role in a run, the caller in a dry run: read permission, record scope,
//! masking — and evaluates again with every record read so far. Scripts are pure functions of
//! their input, so the evaluation that completes is the one a single pass with all the records
//! would have made. A record that is missing, deleted, hidden from the reader or of an object
//! the tenant does not have reads as `()`. At most [`MAX_READS`] records per evaluation.

use crate::executor::{data_key_for, schema_of, RuleEngine, RunAs};
use crate::sandbox::{EvalOutcome, EvalRequest, SandboxError, SandboxPool};
use async_trait::async_trait;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::{Error, Result};
use crm_records::engine::{self, Access, Visibility};
use crm_records::{ObjectKey, ObjectSchema};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Most records one evaluation may read with `get_record`.
pub const MAX_READS: usize = 20;

/// Reads one record for a script.
#[async_trait]
pub(crate) trait RecordReader: Send {
    /// The record as the reader may see it; `None` when it may not, or there is none.
    async fn read(&mut self, object: ObjectKey, id: Uuid) -> Result<Option<Value>>;
}

/// Evaluates `req`, reading the records the script asks for with `reader` between passes.
/// The outer error is ours (the database); the inner one the rule's, as from
/// [`SandboxPool::evaluate`].
pub(crate) async fn evaluate(
    pool: &SandboxPool,
    req: &EvalRequest,
    reader: &mut dyn RecordReader,
) -> Result<std::result::Result<EvalOutcome, SandboxError>> {
    let mut records = Map::new();
    loop {
        let given = Value::Object(records);
        let outcome = match pool.evaluate_with(req, Some(&given)).await {
            Ok(outcome) => outcome,
            Err(e) => return Ok(Err(e)),
        };
        let Value::Object(read) = given else {
            return Err(Error::internal("the records given to a rule are a map"));
        };
        records = read;
        let Some(wanted) = outcome.needs.clone() else {
            return Ok(Ok(outcome));
        };
        if records.contains_key(&wanted.key()) {
            return Err(Error::internal(
                "the rule sandbox asked again for a record it was given",
            ));
        }
        if records.len() >= MAX_READS {
            return Ok(Err(SandboxError::Script {
                code: "limit.reads".into(),
                message: format!(
                    "the rule read more than {MAX_READS} records with get_record in one run"
                ),
                part: Some("script".into()),
                line: None,
                column: None,
            }));
        }
        let record = match (
            ObjectKey::named(&wanted.object),
            Uuid::parse_str(&wanted.id),
        ) {
            (Some(object), Ok(id)) => reader.read(object, id).await?,
            _ => None,
        };
        records.insert(wanted.key(), record.unwrap_or(Value::Null));
    }
}

/// A record out of reach of the reader reads as absent, not as an error.
fn hidden_as_none(read: Result<Value>) -> Result<Option<Value>> {
    match read {
        Ok(record) => Ok(Some(record)),
        Err(Error::NotFound { .. } | Error::Forbidden { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A rule run's reads: as its run-as role, in the run's transaction.
pub(crate) struct RuleReader<'a> {
    pub(crate) tx: &'a mut TenantTx,
    pub(crate) engine: &'a RuleEngine,
    pub(crate) run_as: &'a RunAs,
    pub(crate) actor: &'a Actor,
}

#[async_trait]
impl RecordReader for RuleReader<'_> {
    async fn read(&mut self, object: ObjectKey, id: Uuid) -> Result<Option<Value>> {
        let schema = match schema_of(self.tx, object).await {
            Ok(schema) => schema,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data_key = data_key_for(self.engine, self.tx, &schema).await;
        let access = self.run_as.access(self.actor, object, data_key.as_ref());
        let read = engine::fetch(self.tx, &schema, &access, id, Visibility::Live, false).await;
        hidden_as_none(read)
    }
}

/// A dry run's reads: as the caller, each in a short transaction of its own (a dry run holds
/// no connection while the sandbox evaluates).
pub(crate) struct CallerReader<'a> {
    pub(crate) db: &'a Db,
    pub(crate) tenant: TenantCtx,
    pub(crate) caller: &'a Caller,
    pub(crate) actor: &'a Actor,
    pub(crate) master: Option<&'a MasterKey>,
}

#[async_trait]
impl RecordReader for CallerReader<'_> {
    async fn read(&mut self, object: ObjectKey, id: Uuid) -> Result<Option<Value>> {
        let mut tx = self.db.tenant_tx(&self.tenant).await?;
        let schema = match ObjectSchema::load(&mut tx, object).await {
            Ok(schema) => schema,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data_key = schema.data_key(&mut tx, self.master).await?;
        let access = Access::of_caller(self.caller, self.actor, object, data_key.as_ref());
        let read = engine::fetch(&mut tx, &schema, &access, id, Visibility::Live, false).await;
        tx.commit().await?;
        hidden_as_none(read)
    }
}
