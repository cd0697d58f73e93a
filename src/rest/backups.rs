//! `/backups`: the company's backups — take one now, list, read, download the archive,
//! restore one over the company's current data (two steps: a confirmation token, then the
//! restore), and the backup schedule. Everything needs `backups:manage` (administrators).

use super::auth::Auth;
use super::error::ApiResult;
use crate::server::AppState;
use chrono::{DateTime, NaiveTime, Utc};
use crm_core::audit::Actor;
use crm_core::Error;
use crm_tenants::backup::ledger::{self, Backup};
use crm_tenants::backup::restore::{self, Restored};
use crm_tenants::backup::schedule::{self, Schedule, ScheduleChange};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;

#[derive(Tags)]
enum BackupTag {
    /// Per-company backups and restores.
    Backups,
}

pub struct BackupsApi(pub AppState);

#[derive(Object)]
pub struct BackupOut {
    pub id: Uuid,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// `manual` or `scheduled`.
    pub trigger: String,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Size of the archive in bytes.
    #[oai(skip_serializing_if_is_none)]
    pub size_bytes: Option<i64>,
    /// SHA-256 of the archive (lower-case hex), as the download's `X-Checksum-SHA256`.
    #[oai(skip_serializing_if_is_none)]
    pub sha256: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub schema_version: Option<i32>,
    /// Row counts per table, files, format version.
    pub summary: serde_json::Value,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub download_url: Option<String>,
}

impl From<Backup> for BackupOut {
    fn from(b: Backup) -> Self {
        BackupOut {
            download_url: (b.status == "done")
                .then(|| format!("/api/v1/backups/{}/download", b.id)),
            id: b.id,
            status: b.status,
            trigger: b.trigger,
            created_at: b.created_at,
            finished_at: b.finished_at,
            size_bytes: b.size_bytes,
            sha256: b.sha256,
            schema_version: b.schema_version,
            summary: b.summary,
            error: b.error,
            created_by: b.created_by,
        }
    }
}

#[derive(Object)]
pub struct BackupList {
    pub items: Vec<BackupOut>,
}

/// 202: the backup is queued; poll `GET /backups/{id}`.
#[derive(ApiResponse)]
pub enum BackupQueued {
    #[oai(status = 202)]
    Accepted(Json<BackupOut>),
}

/// The archive.
#[derive(ApiResponse)]
pub enum ArchiveResponse {
    #[oai(status = 200)]
    Ok(
        Binary<poem::Body>,
        /// `application/zstd`: a zstd-compressed tar with `manifest.json` first.
        #[oai(header = "Content-Type")]
        String,
        #[oai(header = "Content-Disposition")] String,
        /// The archive's SHA-256, as listed.
        #[oai(header = "X-Checksum-SHA256")]
        String,
        #[oai(header = "Cache-Control")] String,
    ),
}

#[derive(Object)]
pub struct RestoreRequest {
    /// The token the first step returned; without it, the first step happens.
    pub confirmation_token: Option<String>,
}

#[derive(Object)]
pub struct RestoreConfirmation {
    /// Send it back in `confirmation_token` within ten minutes to restore.
    pub confirmation_token: String,
    pub expires_at: DateTime<Utc>,
    pub message: String,
}

#[derive(Object)]
pub struct RestoreOut {
    pub tenant_id: Uuid,
    pub backup_created_at: DateTime<Utc>,
    /// The archive's schema version, and the company's after the upgrade.
    pub from_schema_version: i32,
    pub schema_version: i32,
    pub tables: u64,
    pub rows: u64,
    pub files: u64,
}

impl From<Restored> for RestoreOut {
    fn from(r: Restored) -> Self {
        RestoreOut {
            tenant_id: r.tenant_id,
            backup_created_at: r.backup_created_at,
            from_schema_version: r.from_schema_version,
            schema_version: r.schema_version,
            tables: r.tables as u64,
            rows: r.rows,
            files: r.files as u64,
        }
    }
}

/// 202 with a confirmation token (nothing restored yet), or 200 once restored.
#[derive(ApiResponse)]
pub enum RestoreResponse {
    #[oai(status = 202)]
    ConfirmationRequired(Json<RestoreConfirmation>),
    #[oai(status = 200)]
    Restored(Json<RestoreOut>),
}

#[derive(Object)]
pub struct ScheduleOut {
    pub enabled: bool,
    /// `HH:MM` in `timezone`.
    pub time_of_day: String,
    pub timezone: String,
    /// The newest backup of each of this many most recent days is kept.
    pub keep_daily: i32,
    /// The newest backup of each of this many most recent weeks is kept.
    pub keep_weekly: i32,
}

impl From<Schedule> for ScheduleOut {
    fn from(s: Schedule) -> Self {
        ScheduleOut {
            enabled: s.enabled,
            time_of_day: s.time_of_day.format("%H:%M").to_string(),
            timezone: s.timezone,
            keep_daily: s.keep_daily,
            keep_weekly: s.keep_weekly,
        }
    }
}

#[derive(Object)]
pub struct ScheduleUpdate {
    pub enabled: Option<bool>,
    /// `HH:MM`.
    pub time_of_day: Option<String>,
    /// An IANA time zone (`UTC`, `Asia/Shanghai`).
    pub timezone: Option<String>,
    pub keep_daily: Option<i32>,
    pub keep_weekly: Option<i32>,
}

#[OpenApi(tag = "BackupTag::Backups")]
impl BackupsApi {
    /// Take a backup now. It runs in the background: poll `GET /backups/{id}` until `done`.
    #[oai(path = "/backups", method = "post")]
    async fn create(&self, auth: Auth) -> ApiResult<BackupQueued> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let backup = ledger::request(&mut tx, &caller, &Actor::of(&ctx)).await?;
        tx.commit().await?;
        Ok(BackupQueued::Accepted(Json(backup.into())))
    }

    /// The company's backups, newest first.
    #[oai(path = "/backups", method = "get")]
    async fn list(&self, auth: Auth, limit: Query<Option<i64>>) -> ApiResult<Json<BackupList>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let items = ledger::list(&mut tx, &caller, limit.0.unwrap_or(100)).await?;
        tx.commit().await?;
        Ok(Json(BackupList {
            items: items.into_iter().map(Into::into).collect(),
        }))
    }

    /// The backup schedule.
    #[oai(path = "/backups/schedule", method = "get")]
    async fn get_schedule(&self, auth: Auth) -> ApiResult<Json<ScheduleOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let current = schedule::get(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(current.into()))
    }

    /// Change the backup schedule; settings left out stay as they are.
    #[oai(path = "/backups/schedule", method = "put")]
    async fn set_schedule(
        &self,
        auth: Auth,
        body: Json<ScheduleUpdate>,
    ) -> ApiResult<Json<ScheduleOut>> {
        let body = body.0;
        let time_of_day = match body.time_of_day.as_deref() {
            None => None,
            Some(raw) => Some(NaiveTime::parse_from_str(raw, "%H:%M").map_err(|_| {
                Error::invalid_field(
                    "time_of_day",
                    "invalid_time",
                    format!("'{raw}' is not a time of day as HH:MM"),
                )
            })?),
        };
        let change = ScheduleChange {
            enabled: body.enabled,
            time_of_day,
            timezone: body.timezone,
            keep_daily: body.keep_daily,
            keep_weekly: body.keep_weekly,
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let updated = schedule::set(&mut tx, &caller, &Actor::of(&ctx), change).await?;
        tx.commit().await?;
        Ok(Json(updated.into()))
    }

    /// One backup.
    #[oai(path = "/backups/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<BackupOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let backup = ledger::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(backup.into()))
    }

    /// Download a finished backup's archive (audited).
    #[oai(path = "/backups/:id/download", method = "get")]
    async fn download(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<ArchiveResponse> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (backup, key) = ledger::download(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        let (file, _) = self.0.backups.open_archive(&key).await?;
        let name = format!(
            "{}-{}.tar.zst",
            ctx.tenant.slug,
            backup.created_at.format("%Y%m%dT%H%M%SZ")
        );
        Ok(ArchiveResponse::Ok(
            Binary(poem::Body::from_async_read(file)),
            crm_tenants::backup::archive::CONTENT_TYPE.to_owned(),
            format!("attachment; filename=\"{name}\""),
            backup.sha256.unwrap_or_default(),
            "private, no-store".to_owned(),
        ))
    }

    /// Restore a backup over the company's current data. First call without a token: the
    /// answer (202) holds a confirmation token. Call again within ten minutes with it: the
    /// company's data is replaced by the backup's (the backup list and the audit log stay;
    /// everyone signs in again). Audited as `backup.restored`.
    #[oai(path = "/backups/:id/restore", method = "post")]
    async fn restore(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<RestoreRequest>,
    ) -> ApiResult<RestoreResponse> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let Some(token) = body.0.confirmation_token else {
            let (token, expires_at) =
                ledger::issue_restore_token(&mut tx, &caller, &actor, id.0).await?;
            tx.commit().await?;
            return Ok(RestoreResponse::ConfirmationRequired(Json(
                RestoreConfirmation {
                    confirmation_token: token,
                    expires_at,
                    message: "Restoring replaces all of the company's current data with this \
                              backup's. Send this token back to go ahead."
                        .to_owned(),
                },
            )));
        };
        let (backup, _) =
            ledger::redeem_restore_token(&mut tx, &caller, &actor, id.0, &token).await?;
        tx.commit().await?;
        let restored =
            restore::into_same_tenant(&self.0.backups, &ctx.tenant, &backup, &actor).await?;
        Ok(RestoreResponse::Restored(Json(restored.into())))
    }
}
