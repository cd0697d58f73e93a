//! `/imports`: CSV and Excel imports into any object — preview, start (with a mapping, or
//! pending until the suggested one is confirmed), progress, error report, original file and
//! undo. The upload is streamed to a temporary file (never held in memory); `crm_imports`
//! checks the caller and does the work.

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::Created;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::Error;
use crm_imports::service::{self, Upload};
use crm_imports::store::{Import, ImportOptions};
use crm_imports::{report, source};
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::multipart::Upload as FilePart;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi, Tags};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

#[derive(Tags)]
enum ImportTag {
    /// CSV and Excel imports, their error reports and undo.
    Imports,
}

pub struct ImportsApi(pub AppState);

/// A multipart/form-data import: the file and its options.
#[derive(Multipart)]
pub struct ImportForm {
    /// A CSV (UTF-8, UTF-8 with BOM, GBK/GB18030; `,` `;` or tab) or an Excel file (.xlsx,
    /// .xls; its first sheet).
    file: Option<FilePart>,
    /// JSON: `{"object": "customers", "mapping": {"客户名称": "name"}, "mode": "create",
    /// "match_key": "phone", "dedupe": "skip", "owner_id": null, "tags": [], "dry_run": false,
    /// "time_zone": "Asia/Shanghai"}`; for a preview only `object` matters.
    options: Option<String>,
}

#[derive(Object)]
pub struct Counts {
    pub total: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

#[derive(Object)]
pub struct ImportOut {
    pub id: Uuid,
    /// `pending` (waiting for its mapping), `queued`, `running`, `done`, `failed`,
    /// `undoing`, `undone`.
    pub status: String,
    pub object: String,
    pub file_name: String,
    /// `csv`, `xlsx`, `xls`.
    pub format: String,
    /// What the file was read as: `UTF-8`, `UTF-8 with BOM`, `GB18030`, `UTF-16LE`.
    pub encoding: String,
    #[oai(skip_serializing_if_is_none)]
    pub separator: Option<String>,
    pub headers: Vec<String>,
    /// The import's options, with the mapping in use (or suggested, while pending).
    pub options: Value,
    pub counts: Counts,
    pub rows_per_second: f64,
    #[oai(skip_serializing_if_is_none)]
    pub eta_seconds: Option<i64>,
    pub errors_url: String,
    /// Why it failed.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// Undo's progress: `{mode, deleted, restored, left}`.
    #[oai(skip_serializing_if_is_none)]
    pub undo: Option<Value>,
    pub dry_run: bool,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when the original file and the error report's cells are kept.
    pub files_expire_at: DateTime<Utc>,
}

impl From<Import> for ImportOut {
    fn from(i: Import) -> Self {
        let processed = i.created + i.updated + i.skipped + i.failed;
        let rate = if i.busy_ms > 0 {
            processed as f64 * 1000.0 / i.busy_ms as f64
        } else {
            0.0
        };
        let left = (i.total - processed).max(0);
        let running = matches!(i.status.as_str(), "queued" | "running");
        ImportOut {
            errors_url: format!("/api/v1/imports/{}/errors", i.id),
            eta_seconds: (running && rate > 0.0).then(|| (left as f64 / rate).ceil() as i64),
            rows_per_second: (rate * 10.0).round() / 10.0,
            counts: Counts {
                total: i.total,
                created: i.created,
                updated: i.updated,
                skipped: i.skipped,
                failed: i.failed,
            },
            dry_run: i.options.0.dry_run,
            options: serde_json::to_value(&i.options.0).unwrap_or(Value::Null),
            id: i.id,
            status: i.status,
            object: i.object,
            file_name: i.file_name,
            format: i.format,
            encoding: i.encoding,
            separator: i.separator,
            headers: i.headers,
            error: i.error,
            undo: i.undo,
            created_by: i.created_by,
            created_at: i.created_at,
            started_at: i.started_at,
            finished_at: i.finished_at,
            files_expire_at: i.files_expire_at,
        }
    }
}

#[derive(Object)]
pub struct ImportPage {
    pub items: Vec<ImportOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct PreviewOut {
    pub file_name: String,
    pub format: String,
    pub encoding: String,
    #[oai(skip_serializing_if_is_none)]
    pub separator: Option<String>,
    pub headers: Vec<String>,
    /// Non-blank data rows.
    pub rows: u64,
    /// The first rows, cell by cell.
    pub sample: Vec<Vec<String>>,
    /// Header → suggested field path (null: none found).
    pub suggested_mapping: BTreeMap<String, Option<String>>,
    /// Every field path a column may be mapped to.
    pub fields: Vec<String>,
}

#[derive(Object)]
pub struct StartRequest {
    /// `{"column header": "field path" | null}`; leave it out to take the suggested one.
    pub mapping: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Object)]
pub struct UndoRequest {
    /// `recycle` (default: created records go to the recycle bin) or `purge`.
    pub mode: Option<String>,
}

/// 202: accepted, running as a job.
#[derive(ApiResponse)]
pub enum Accepted {
    #[oai(status = 202)]
    Accepted(Json<ImportOut>),
}

/// A file download.
#[derive(ApiResponse)]
pub enum Download {
    #[oai(status = 200)]
    Ok(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

fn required_file() -> ApiError {
    Error::invalid_field(
        "file",
        "required",
        "send the CSV or Excel file as a multipart/form-data part named 'file'",
    )
    .into()
}

fn parse_options(raw: Option<&str>) -> ApiResult<ImportOptions> {
    let raw = raw.ok_or_else(|| {
        ApiError::from(Error::invalid_field(
            "options",
            "required",
            "send the options as a multipart part named 'options' holding JSON such as {\"object\": \"customers\"}",
        ))
    })?;
    serde_json::from_str(raw).map_err(|e| {
        Error::invalid_field(
            "options",
            "invalid_json",
            format!("the options are not valid: {e}"),
        )
        .into()
    })
}

/// Streams the upload into a temporary file, then reads and normalises it.
async fn receive(part: FilePart, max: u64) -> ApiResult<Upload> {
    let name = part.file_name().unwrap_or("import").to_owned();
    let temp = tempfile::NamedTempFile::new()
        .map_err(|e| Error::internal(format!("cannot create a temporary file: {e}")))?
        .into_temp_path();
    let mut out = tokio::fs::File::create(&temp)
        .await
        .map_err(|e| Error::internal(format!("cannot write the upload: {e}")))?;
    let mut input = part.into_async_read();
    let copied = tokio::io::copy(&mut input, &mut out)
        .await
        .map_err(|e| Error::bad_request("request.invalid", format!("the upload broke off: {e}")))?;
    out.flush()
        .await
        .map_err(|e| Error::internal(format!("cannot write the upload: {e}")))?;
    if copied > max {
        return Err(Error::bad_request(
            "import.too_large",
            format!("the file is larger than the limit of {max} bytes; split it"),
        )
        .into());
    }
    service::ensure_nonempty(&temp)?;
    Ok(service::read_upload(temp, &name).await?)
}

/// The report's language: `?lang=`, else the user's, else the browser's.
async fn wants_chinese(
    state: &AppState,
    auth: &Auth,
    req: &Request,
    lang: Option<&str>,
) -> ApiResult<bool> {
    if let Some(l) = lang {
        return Ok(l.to_ascii_lowercase().starts_with("zh"));
    }
    let (mut tx, caller, _) = state.begin(auth).await?;
    let locale = match caller.user_id {
        Some(id) => crm_core::users::get(&mut tx, id).await?.locale,
        None => None,
    };
    tx.commit().await?;
    Ok(match locale {
        Some(l) => l.starts_with("zh"),
        None => req
            .header("accept-language")
            .is_some_and(|h| h.to_ascii_lowercase().starts_with("zh")),
    })
}

#[OpenApi(tag = "ImportTag::Imports")]
impl ImportsApi {
    /// Read a file without importing it: the detected format, encoding and separator, its
    /// headers and first rows, and a suggested mapping of its columns to the object's
    /// fields (multipart: `file`, and `options` with at least `object`). Needs the object's
    /// create or update permission.
    #[oai(path = "/imports/preview", method = "post")]
    async fn preview(&self, auth: Auth, form: ImportForm) -> ApiResult<Json<PreviewOut>> {
        let options = parse_options(form.options.as_deref())?;
        let part = form.file.ok_or_else(required_file)?;
        let upload = receive(part, self.0.config.imports.max_bytes).await?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = service::preview(&mut tx, &caller, &options.object, &upload).await?;
        tx.commit().await?;
        Ok(Json(PreviewOut {
            file_name: p.file_name,
            format: p.format.to_owned(),
            encoding: p.encoding,
            separator: p.separator,
            headers: p.headers,
            rows: p.rows,
            sample: p.sample,
            suggested_mapping: p.suggested_mapping,
            fields: p.fields,
        }))
    }

    /// Import a CSV or Excel file into an object (multipart: `file` and `options`). With a
    /// `mapping` the import is queued at once and runs as a job; without one it stays
    /// `pending` with the suggested mapping in `options.mapping`, to be confirmed with POST
    /// /imports/{id}/start. `mode`: `create` (default), `update` or `upsert` (both need
    /// `match_key`: `id`, `phone`, `email` or a unique field); `dedupe` (create mode, a row
    /// matching a record): `skip` (default), `update` or `create_anyway`; `dry_run` validates
    /// every row and writes nothing. 422 `import.invalid_mapping` names each bad column; 400
    /// `import.unreadable` a file that is neither CSV nor Excel.
    #[oai(path = "/imports", method = "post")]
    async fn start(&self, auth: Auth, form: ImportForm) -> ApiResult<Created<ImportOut>> {
        let options = parse_options(form.options.as_deref())?;
        let part = form.file.ok_or_else(required_file)?;
        let upload = receive(part, self.0.config.imports.max_bytes).await?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let import = service::start(
            &self.0.imports,
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            options,
            upload,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(import.into())))
    }

    /// Your imports (every user's for tenant admins), newest first.
    #[oai(path = "/imports", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<ImportPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = service::list(
            &mut tx,
            &caller,
            cursor.0.as_deref(),
            limit.0.unwrap_or(50).clamp(1, 200),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(ImportPage {
            items: page.items.into_iter().map(ImportOut::from).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// An import's status, counts, speed and estimated time left.
    #[oai(path = "/imports/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<ImportOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let import = service::get(&mut tx, &caller, id.0, false).await?;
        tx.commit().await?;
        Ok(Json(import.into()))
    }

    /// Confirm a pending import's mapping (left out: the suggested one) and queue it.
    #[oai(path = "/imports/:id/start", method = "post")]
    async fn confirm(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<StartRequest>,
    ) -> ApiResult<Accepted> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let mapping: Option<Map<String, Value>> = body.0.mapping.map(|m| {
            m.into_iter()
                .map(|(h, p)| (h, p.map_or(Value::Null, Value::String)))
                .collect()
        });
        let import = service::confirm(&mut tx, &caller, id.0, mapping).await?;
        tx.commit().await?;
        Ok(Accepted::Accepted(Json(import.into())))
    }

    /// Undo a finished import: records it created go to the recycle bin (`mode: purge`:
    /// deleted for good), records it updated get their values from before the import back,
    /// field by field — except what someone changed since, which is left as it is and listed
    /// in the error report (`kind` undo). Runs as a job; 409 `import.not_finished` while the
    /// import runs.
    #[oai(path = "/imports/:id/undo", method = "post")]
    async fn undo(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<UndoRequest>,
    ) -> ApiResult<Accepted> {
        let purge = match body.0.mode.as_deref() {
            None | Some("recycle") => false,
            Some("purge") => true,
            Some(other) => {
                return Err(Error::invalid_field(
                    "mode",
                    "invalid_option",
                    format!("'{other}' is not an undo mode; use recycle or purge"),
                )
                .into())
            }
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let import = service::undo(&mut tx, &caller, &Actor::of(&ctx), id.0, purge).await?;
        tx.commit().await?;
        Ok(Accepted::Accepted(Json(import.into())))
    }

    /// The error report: one line per refused or skipped row (and per field undo left
    /// alone) with the row number, column, value, code, message and the row's cells, as
    /// `format=csv` (default; UTF-8 with a BOM) or `xlsx`, headed in `lang` (`zh-CN`, `en`;
    /// default: your language).
    #[oai(path = "/imports/:id/errors", method = "get")]
    async fn errors(
        &self,
        auth: Auth,
        req: &Request,
        id: Path<Uuid>,
        format: Query<Option<String>>,
        lang: Query<Option<String>>,
    ) -> ApiResult<Download> {
        let zh = wants_chinese(&self.0, &auth, req, lang.0.as_deref()).await?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (import, lines) = service::error_lines(&mut tx, &caller, id.0, 1_000_000).await?;
        tx.commit().await?;
        let stem = format!("import-{}-errors", import.id);
        let (bytes, ctype, name) = match format.0.as_deref().unwrap_or("csv") {
            "csv" => (
                report::csv_report(&import.headers, &lines, zh)?,
                "text/csv; charset=utf-8",
                format!("{stem}.csv"),
            ),
            "xlsx" => (
                report::xlsx_report(&import.headers, &lines, zh)?,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                format!("{stem}.xlsx"),
            ),
            other => {
                return Err(Error::invalid_field(
                    "format",
                    "invalid_option",
                    format!("'{other}' is not a report format; use csv or xlsx"),
                )
                .into())
            }
        };
        Ok(Download::Ok(
            Binary(bytes),
            ctype.to_owned(),
            format!("attachment; filename=\"{name}\""),
            "private, no-store".to_owned(),
        ))
    }

    /// The file as it was uploaded, while it is kept (`files_expire_at`).
    #[oai(path = "/imports/:id/file", method = "get")]
    async fn file(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Download> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let import = service::get(&mut tx, &caller, id.0, false).await?;
        tx.commit().await?;
        let key = service::original_of(&import)?;
        let bytes = self.0.imports.files.get(&key).await?;
        let ctype = match source::Format::sniff(&bytes) {
            source::Format::Xlsx => {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            }
            source::Format::Xls => "application/vnd.ms-excel",
            source::Format::Csv => "text/csv",
        };
        Ok(Download::Ok(
            Binary(bytes),
            ctype.to_owned(),
            super::attachments::content_disposition(&import.file_name),
            "private, no-store".to_owned(),
        ))
    }
}
