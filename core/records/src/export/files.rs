//! Exports made by a job: an XLSX export above [`super::ExportSettings::async_rows`] rows is
//! queued as an `exports` row and an `export.file` job. The job acts for whoever asked, read
//! again when it runs ([`crm_core::identity::principal_of`]: a deactivated user or a revoked
//! key gets nothing; permissions, scope and masking as they are then), writes the file to the
//! file store, audits the export and schedules its deletion (`export.expire`) after the
//! retention period. Only the principal that asked sees the export's status or downloads it.

use super::{admit, audit, xlsx, Columns, ExportSettings, Exporter, Format, HeaderStyle};
use crate::meta::ObjectKey;
use crate::query::ListQuery;
use crate::schema::ObjectSchema;
use chrono::{DateTime, Duration, Utc};
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::context::RequestMeta;
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::files::{FileStore, StoredKey};
use crm_core::identity::{principal_of, PrincipalKind};
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob, Payload};
use crm_core::mail::Lang;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// The job writing an export's file.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportFile {
    pub export_id: Uuid,
}

impl Payload for ExportFile {
    const KIND: &'static str = "export.file";
}

/// The job deleting an export's file when its retention period ends.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpireExport {
    pub export_id: Uuid,
}

impl Payload for ExpireExport {
    const KIND: &'static str = "export.expire";
}

/// What the job reads again: the request as it was parsed (`exports.request`).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    query: ListQuery,
    fields: Option<String>,
    headers: HeaderStyle,
    /// `zh-CN` or `en`.
    lang: String,
    request_id: String,
}

/// An export as its requester sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportView {
    pub id: Uuid,
    pub object: String,
    pub format: String,
    /// `queued`, `running`, `done`, `failed` or `expired`.
    pub status: String,
    /// Rows in the file, once done.
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    /// Why it failed, in words for the requester.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the file is deleted.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    object: String,
    format: String,
    requested_by_kind: String,
    requested_by: Uuid,
    request: serde_json::Value,
    status: String,
    job_id: Option<i64>,
    row_count: Option<i64>,
    file_key: Option<String>,
    file_bytes: Option<i64>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, object, format, requested_by_kind, requested_by, request, status, \
    job_id, row_count, file_key, file_bytes, error, created_at, finished_at, expires_at";

/// Queues the export of what `lq` selects as a job; returns its status (`queued`).
pub(crate) async fn queue(
    tx: &mut TenantTx,
    ex: &Exporter,
    lq: &ListQuery,
    format: Format,
    _settings: &ExportSettings,
) -> Result<ExportView> {
    let principal = &ex.caller.principal;
    if principal.kind == PrincipalKind::Plugin {
        return Err(Error::bad_request(
            "export.too_large",
            "a plugin cannot wait for an export; narrow the filters",
        ));
    }
    let id = Uuid::now_v7();
    let stored = Stored {
        query: ListQuery {
            cursor: None,
            ..lq.clone()
        },
        fields: Some(
            ex.columns
                .items
                .iter()
                .map(|c| c.path.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        headers: ex.columns.headers,
        lang: super::lang_key(ex.lang).to_owned(),
        request_id: ex.actor.meta.request_id.clone(),
    };
    let request = serde_json::to_value(&stored)
        .map_err(|e| Error::internal(format!("cannot store an export request: {e}")))?;
    sqlx::query(
        "INSERT INTO exports (id, object, format, requested_by_kind, requested_by, request) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(ex.schema.object.as_str())
    .bind(format.as_str())
    .bind(principal.kind.as_str())
    .bind(principal.id)
    .bind(request)
    .execute(tx.conn())
    .await?;
    let job = jobs::enqueue(tx, NewJob::of(&ExportFile { export_id: id })?.about(id)).await?;
    sqlx::query("UPDATE exports SET job_id = $2 WHERE id = $1")
        .bind(id)
        .bind(job)
        .execute(tx.conn())
        .await?;
    let row = fetch(tx, id).await?;
    view(tx, row).await
}

/// The status of export `id`; 404 `export.not_found` unless `caller` asked for it.
pub async fn status(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<ExportView> {
    let row = mine(tx, caller, id).await?;
    view(tx, row).await
}

/// The file of export `id` with its status: 409 `export.not_ready` before it is done, 404
/// `export.expired` after its retention period, 404 `export.not_found` unless `caller`
/// asked for it.
pub async fn download(
    tx: &mut TenantTx,
    caller: &Caller,
    store: &dyn FileStore,
    id: Uuid,
) -> Result<(ExportView, Vec<u8>)> {
    let row = mine(tx, caller, id).await?;
    let key = row.file_key.as_deref().and_then(StoredKey::parse);
    let view = view(tx, row).await?;
    match (view.status.as_str(), key) {
        ("done", Some(key)) if key.belongs_to(tx.tenant().id) => {
            let bytes = store.get(&key).await?;
            Ok((view, bytes))
        }
        ("expired", _) => Err(Error::not_found(
            "export.expired",
            "this export's file was deleted when its retention period ended; export again",
        )),
        ("failed", _) => Err(Error::conflict(
            "export.failed",
            format!(
                "this export failed ({}); export again",
                view.error.as_deref().unwrap_or("no file was written")
            ),
        )),
        _ => Err(Error::conflict(
            "export.not_ready",
            "this export is not finished yet; poll GET /api/v1/exports/{id} until its status is done",
        )),
    }
}

async fn fetch(tx: &mut TenantTx, id: Uuid) -> Result<Row> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM exports WHERE id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(not_found)
}

/// The row of export `id` if `caller` is the principal that asked for it.
async fn mine(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Row> {
    let row = fetch(tx, id).await?;
    let me = &caller.principal;
    if row.requested_by != me.id || row.requested_by_kind != me.kind.as_str() {
        return Err(not_found());
    }
    Ok(row)
}

fn not_found() -> Error {
    Error::not_found(
        "export.not_found",
        "no such export of yours; an export is visible only to whoever asked for it",
    )
}

/// The row in the requester's terms; a queued export shows its job's progress.
async fn view(tx: &mut TenantTx, row: Row) -> Result<ExportView> {
    let (status, error) = match (row.status.as_str(), row.job_id) {
        ("queued", Some(job)) => match jobs::status_of(tx, job).await?.as_ref() {
            Some((s, _)) if s == "running" => ("running".to_owned(), None),
            Some((s, _)) if s == "dead" || s == "cancelled" => (
                "failed".to_owned(),
                Some("the export could not be written; export again or narrow the filters".into()),
            ),
            _ => ("queued".to_owned(), None),
        },
        _ => (row.status.clone(), row.error.clone()),
    };
    Ok(ExportView {
        id: row.id,
        object: row.object,
        format: row.format,
        status,
        rows: row.row_count,
        bytes: row.file_bytes,
        error,
        created_at: row.created_at,
        finished_at: row.finished_at,
        expires_at: row.expires_at,
    })
}

/// Runs `export.file` jobs.
pub struct ExportFileJob {
    pub store: Arc<dyn FileStore>,
    pub master_key: Option<Arc<MasterKey>>,
    pub settings: ExportSettings,
}

#[async_trait::async_trait]
impl JobHandler for ExportFileJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let payload: ExportFile = job.payload_as()?;
        let row = match fetch(tx, payload.export_id).await {
            Ok(row) if row.status == "queued" => row,
            // Deleted, or finished by an earlier run: nothing left to do.
            Ok(_) | Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match self.write(tx, &row).await {
            Ok(()) => Ok(()),
            // What the requester must fix (their permission, their account, the filters)
            // ends the export with that message; anything else is tried again.
            Err(
                e @ (Error::Forbidden { .. }
                | Error::Invalid { .. }
                | Error::BadRequest { .. }
                | Error::NotFound { .. }),
            ) => {
                finish_failed(tx, row.id, &e.to_string()).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl ExportFileJob {
    async fn write(&self, tx: &mut TenantTx, row: &Row) -> Result<()> {
        let stored: Stored = serde_json::from_value(row.request.clone())
            .map_err(|e| Error::internal(format!("unreadable export request: {e}")))?;
        let kind = PrincipalKind::parse(&row.requested_by_kind)
            .ok_or_else(|| Error::internal("unknown principal kind of an export"))?;
        let principal = principal_of(tx, kind, row.requested_by).await?;
        let caller = Caller::load(tx, &principal).await?;
        let object = ObjectKey::parse(&row.object).ok_or_else(|| {
            Error::not_found(
                "object.not_found",
                format!("there is no object '{}' any more", row.object),
            )
        })?;
        let schema = Arc::new(ObjectSchema::load(tx, object).await?);
        let key = schema.data_key(tx, self.master_key.as_deref()).await?;
        let lang = Lang::of(Some(&stored.lang));
        let columns = Columns::resolve(&schema, stored.fields.as_deref(), lang, stored.headers)?;
        let actor = Actor {
            kind: principal.kind.into(),
            id: Some(principal.id),
            name: Some(principal.name.clone()),
            meta: RequestMeta {
                request_id: stored.request_id.clone(),
                ..RequestMeta::default()
            },
        };
        let ex = Exporter {
            schema,
            caller,
            actor,
            key,
            columns,
            lang,
        };
        ex.check()?;
        let (bytes, ids) = xlsx::write(tx, &ex, stored.query).await?;
        if !admit(tx, &ex, &ids).await? {
            // The freeze commits with this job; the export ends refused.
            return Err(crm_core::read_limit::frozen_error());
        }
        let file = StoredKey::generate(tx.tenant().id);
        let size = bytes.len() as i64;
        self.store.put(&file, xlsx::CONTENT_TYPE, bytes).await?;
        let expires_at = Utc::now() + Duration::hours(i64::from(self.settings.retention_hours));
        sqlx::query(
            "UPDATE exports SET status = 'done', row_count = $2, file_key = $3, file_bytes = $4, \
               finished_at = now(), expires_at = $5 WHERE id = $1",
        )
        .bind(row.id)
        .bind(ids.len() as i64)
        .bind(file.as_str())
        .bind(size)
        .bind(expires_at)
        .execute(tx.conn())
        .await?;
        audit(tx, &ex, Format::Xlsx, ids.len() as u64, Some(row.id)).await?;
        jobs::enqueue(
            tx,
            NewJob::of(&ExpireExport { export_id: row.id })?
                .about(row.id)
                .at(expires_at),
        )
        .await?;
        Ok(())
    }
}

/// Ends an export as failed, with a message for its requester.
async fn finish_failed(tx: &mut TenantTx, id: Uuid, message: &str) -> Result<()> {
    sqlx::query(
        "UPDATE exports SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(message)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Runs `export.expire` jobs: deletes the file, keeps the row (as `expired`) for the record.
pub struct ExpireExportJob {
    pub store: Arc<dyn FileStore>,
}

#[async_trait::async_trait]
impl JobHandler for ExpireExportJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let payload: ExpireExport = job.payload_as()?;
        let row = match fetch(tx, payload.export_id).await {
            Ok(row) => row,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(key) = row.file_key.as_deref().and_then(StoredKey::parse) {
            if key.belongs_to(tx.tenant().id) {
                self.store.delete(&key).await?;
            }
        }
        sqlx::query("UPDATE exports SET status = 'expired', file_key = NULL WHERE id = $1")
            .bind(row.id)
            .execute(tx.conn())
            .await?;
        Ok(())
    }
}
