//! Undoing an import, as the `import.undo` job: last row first, in chunks that each commit
//! with the undo's position. A record the import created goes to the recycle bin (or is
//! purged, if asked) unless someone changed it since; a record it updated gets back each
//! field's value from before the import, field by field, except a field someone changed
//! since (its current value is no longer what the import wrote). Whatever undo leaves alone
//! is reported per row (`kind = undo` in the error report) and counted in the summary.

use crate::run::{acting, object_of};
use crate::store::{self, Import, RowError, Written};
use crate::{Deps, UndoJob};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::jobs::{self, NewJob};
use crm_records::bulk;
use crm_records::engine::Access;
use crm_records::service;
use crm_records::ObjectSchema;
use serde_json::json;
use std::time::Instant;
use uuid::Uuid;

/// Written rows undone per transaction.
const CHUNK: i64 = 500;

/// The summary kept on the import.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// `recycle` or `purge`.
    pub mode: String,
    /// Who asked for the undo (it acts as them).
    pub by: Option<Uuid>,
    pub deleted: i64,
    pub restored: i64,
    pub left: i64,
}

/// Runs the undo for up to a slice; enqueues its continuation in `job_tx` when rows remain.
pub async fn run(deps: &Deps, job_tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut tx = deps.db.tenant_tx(job_tx.tenant()).await?;
        let import = store::get(&mut tx, id, true).await?;
        if import.status != "undoing" {
            return Ok(());
        }
        let more = chunk(deps, &mut tx, &import).await?;
        tx.commit().await?;
        let Some(next) = more else {
            return Ok(());
        };
        if started.elapsed() >= crate::run::SLICE {
            jobs::enqueue(
                job_tx,
                NewJob::of(&UndoJob { import_id: id })?
                    .dedupe(format!("import-undo:{id}:{next}"))
                    .about(id),
            )
            .await?;
            return Ok(());
        }
    }
}

async fn chunk(deps: &Deps, tx: &mut TenantTx, import: &Import) -> Result<Option<i64>> {
    let object = object_of(import)?;
    let schema = ObjectSchema::load(tx, object).await?;
    let mut summary: Summary = import
        .undo
        .clone()
        .and_then(|u| serde_json::from_value(u).ok())
        .unwrap_or_default();
    let (caller, actor) = acting(tx, summary.by, import.id).await?;
    let key = schema.data_key(tx, deps.master.as_deref()).await?;
    let access = Access::of_caller(&caller, &actor, object, key.as_ref());
    let purge = summary.mode == "purge";
    let rows = store::written_before(tx, import.id, import.undo_next_row, CHUNK).await?;
    let mut report: Vec<RowError> = Vec::new();
    for w in &rows {
        let left = match w.action.as_str() {
            "created" => undo_create(tx, &schema, &access, w, purge, &mut summary).await?,
            _ => undo_update(tx, &schema, &access, w, &mut summary).await?,
        };
        for (seq, (field, code, message)) in left.into_iter().enumerate() {
            if seq == 0 {
                summary.left += 1;
            }
            report.push(RowError {
                row_no: w.row_no,
                seq: seq as i32,
                kind: "undo".into(),
                column_name: None,
                field,
                value: Some(w.record_id.to_string()),
                code: code.to_owned(),
                message,
                cells: None,
            });
        }
    }
    store::insert_errors(tx, import.id, &report).await?;
    let next = rows.last().map(|w| w.row_no);
    let finished = (rows.len() as i64) < CHUNK;
    let status = if finished { "undone" } else { "undoing" };
    store::save_undo(tx, import.id, next, &json!(summary), status).await?;
    if finished {
        crm_core::audit::record(
            tx,
            &actor,
            "import.undone",
            Some(("import", import.id.to_string())),
            json!(summary),
        )
        .await?;
    }
    Ok((!finished).then_some(next.unwrap_or_default()))
}

/// What undo left alone for one row: (field, code, message) each.
type Left = Vec<(Option<String>, &'static str, String)>;

async fn undo_create(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    w: &Written,
    purge: bool,
    summary: &mut Summary,
) -> Result<Left> {
    let Some((version, deleted)) = bulk::current_version(tx, schema, w.record_id).await? else {
        return Ok(Vec::new()); // purged since: nothing left to undo
    };
    if version != w.version {
        return Ok(vec![(
            None,
            "import.changed_since",
            format!(
                "{} {} was changed after the import (version {version}, the import left {}); it stays",
                schema.noun(),
                w.record_id,
                w.version
            ),
        )]);
    }
    if deleted && !purge {
        return Ok(Vec::new());
    }
    savepoint(tx, "SAVEPOINT import_undo").await?;
    let done = if purge {
        if !deleted {
            // Purge needs a record in the bin first, as a user's purge does.
            match service::soft_delete(tx, schema, access, w.record_id).await {
                Ok(()) => service::purge(tx, schema, access, w.record_id).await,
                Err(e) => Err(e),
            }
        } else {
            service::purge(tx, schema, access, w.record_id).await
        }
    } else {
        service::soft_delete(tx, schema, access, w.record_id).await
    };
    match done {
        Ok(()) => {
            savepoint(tx, "RELEASE SAVEPOINT import_undo").await?;
            summary.deleted += 1;
            Ok(Vec::new())
        }
        Err(e) => {
            savepoint(tx, "ROLLBACK TO SAVEPOINT import_undo").await?;
            Ok(vec![(None, e.code(), e.to_string())])
        }
    }
}

async fn undo_update(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    w: &Written,
    summary: &mut Summary,
) -> Result<Left> {
    let changes = w.changes.clone().unwrap_or_else(|| json!({}));
    let reverted = bulk::revert(tx, schema, access, w.record_id, &changes).await?;
    if reverted.restored {
        summary.restored += 1;
    }
    Ok(reverted.left)
}

async fn savepoint(tx: &mut TenantTx, sql: &str) -> Result<()> {
    sqlx::query(sql).execute(tx.conn()).await?;
    Ok(())
}
