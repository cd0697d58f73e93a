//! `/exports/{id}`: the status and the file of an export a job writes (a large XLSX), for
//! whoever asked for it and nobody else.

use super::auth::Auth;
use super::error::ApiResult;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_records::export::files::{self, ExportView};
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;

#[derive(Tags)]
enum ExportTag {
    /// Exports written by a job.
    Exports,
}

/// An export a job writes.
#[derive(Object)]
pub struct ExportOut {
    pub id: Uuid,
    /// The object exported (`customers`, `policies`).
    pub object: String,
    /// `xlsx`.
    pub format: String,
    /// `queued`, `running`, `done`, `failed` or `expired`.
    pub status: String,
    /// Rows in the file, once done.
    pub rows: Option<i64>,
    /// Size of the file, once done.
    pub bytes: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the file is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where to poll.
    pub status_url: String,
    /// Where to download the file, once done.
    pub download_url: Option<String>,
}

impl From<ExportView> for ExportOut {
    fn from(v: ExportView) -> Self {
        let base = format!("/api/v1/exports/{}", v.id);
        ExportOut {
            download_url: (v.status == "done").then(|| format!("{base}/download")),
            status_url: base,
            id: v.id,
            object: v.object,
            format: v.format,
            status: v.status,
            rows: v.rows,
            bytes: v.bytes,
            error: v.error,
            created_at: v.created_at,
            finished_at: v.finished_at,
            expires_at: v.expires_at,
        }
    }
}

/// An export's file.
#[derive(ApiResponse)]
pub enum ExportFileResponse {
    #[oai(
        status = 200,
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )]
    Ok(
        Binary<Vec<u8>>,
        /// `attachment; filename="customers-<id>.xlsx"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

pub struct ExportsApi(pub AppState);

#[OpenApi(tag = "ExportTag::Exports")]
impl ExportsApi {
    /// The status of an export you asked for (404 `export.not_found` for anyone else's):
    /// `queued`, `running`, `done` (with `rows` and `download_url`), `failed` (with `error`)
    /// or `expired` (its file was deleted after `[export] retention_hours`).
    #[oai(path = "/exports/:id", method = "get")]
    async fn status(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<ExportOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let view = files::status(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(view.into()))
    }

    /// Download the file of a finished export you asked for: 409 `export.not_ready` before,
    /// 404 `export.expired` after its retention period.
    #[oai(path = "/exports/:id/download", method = "get")]
    async fn download(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<ExportFileResponse> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let (view, bytes) = files::download(&mut tx, &caller, self.0.files.as_ref(), id.0).await?;
        tx.commit().await?;
        Ok(ExportFileResponse::Ok(
            Binary(bytes),
            format!("attachment; filename=\"{}-{}.xlsx\"", view.object, view.id),
        ))
    }
}
