//! The tenant's backup register (`backups`): what callers may do with backups — request one,
//! list, read, download, and confirm a restore with a one-time token — each checked against
//! `backups:manage` and audited (`backup.created`, `backup.downloaded`,
//! `backup.restore_requested`); and the bookkeeping of the backup job.

use super::jobs::TakeBackup;
use chrono::{DateTime, Duration, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::files::StoredKey;
use crm_core::identity::tokens;
use crm_core::jobs::{self, NewJob};
use crm_core::{Error, Result};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// A backup as the register holds it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Backup {
    pub id: Uuid,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// `manual` or `scheduled`.
    pub trigger: String,
    pub size_bytes: Option<i64>,
    /// SHA-256 of the whole archive, hex.
    pub sha256: Option<String>,
    pub schema_version: Option<i32>,
    pub summary: serde_json::Value,
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub storage_key: Option<String>,
}

const COLUMNS: &str = "id, status, trigger, size_bytes, sha256, schema_version, summary, error, \
    created_by, created_at, finished_at, storage_key";

/// How long a restore confirmation token is good for.
pub const TOKEN_TTL_MINUTES: i64 = 10;

impl Backup {
    /// The archive's key, for a finished backup.
    pub fn archive_key(&self) -> Result<StoredKey> {
        if self.status != "done" {
            return Err(Error::conflict(
                "backup.not_ready",
                format!(
                    "backup {} is {}; only a finished backup can be downloaded or restored",
                    self.id, self.status
                ),
            ));
        }
        self.storage_key
            .as_deref()
            .and_then(StoredKey::parse)
            .ok_or_else(|| Error::internal(format!("backup {} has no archive key", self.id)))
    }
}

/// Queues a backup of the caller's tenant (`backups:manage`); the `backup.take` job does it.
pub async fn request(tx: &mut TenantTx, caller: &Caller, actor: &Actor) -> Result<Backup> {
    caller.require(Permission::BackupsManage)?;
    let backup = insert(tx, "manual", actor.id).await?;
    audit::record(
        tx,
        actor,
        "backup.created",
        Some(("backup", backup.id.to_string())),
        serde_json::json!({ "trigger": "manual" }),
    )
    .await?;
    Ok(backup)
}

/// Enters a queued backup and its job (the schedule's path, and [`request`]'s).
pub(crate) async fn insert(tx: &mut TenantTx, trigger: &str, by: Option<Uuid>) -> Result<Backup> {
    let id = Uuid::now_v7();
    let backup: Backup = sqlx::query_as(&format!(
        "INSERT INTO backups (id, trigger, created_by) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(trigger)
    .bind(by)
    .fetch_one(tx.conn())
    .await?;
    let job = NewJob::of(&TakeBackup { backup_id: id })?
        .about(id)
        .dedupe(format!("backup.take:{id}"));
    jobs::enqueue(
        tx,
        NewJob {
            max_attempts: 3,
            ..job
        },
    )
    .await?;
    Ok(backup)
}

/// The tenant's backups, newest first (at most `limit`).
pub async fn list(tx: &mut TenantTx, caller: &Caller, limit: i64) -> Result<Vec<Backup>> {
    caller.require(Permission::BackupsManage)?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups ORDER BY created_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit.clamp(1, 500))
    .fetch_all(tx.conn())
    .await?)
}

/// One backup.
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Backup> {
    caller.require(Permission::BackupsManage)?;
    find(tx, id).await
}

/// One backup, for the operator's command line (no caller: the operator is not a user).
pub async fn find(tx: &mut TenantTx, id: Uuid) -> Result<Backup> {
    find_optional(tx, id)
        .await?
        .ok_or_else(|| Error::not_found("backup.not_found", format!("no backup {id}")))
}

pub(crate) async fn find_optional(tx: &mut TenantTx, id: Uuid) -> Result<Option<Backup>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM backups WHERE id = $1"))
            .bind(id)
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// The archive of a finished backup, for download; audited as `backup.downloaded`.
pub async fn download(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
) -> Result<(Backup, StoredKey)> {
    caller.require(Permission::BackupsManage)?;
    let backup = find(tx, id).await?;
    let key = backup.archive_key()?;
    audit::record(
        tx,
        actor,
        "backup.downloaded",
        Some(("backup", id.to_string())),
        serde_json::json!({ "size_bytes": backup.size_bytes, "sha256": backup.sha256 }),
    )
    .await?;
    Ok((backup, key))
}

/// The first step of a same-tenant restore: a one-time token, valid for ten minutes for
/// this caller, that the second step must send back.
pub async fn issue_restore_token(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
) -> Result<(String, DateTime<Utc>)> {
    caller.require(Permission::BackupsManage)?;
    let backup = find(tx, id).await?;
    backup.archive_key()?;
    // Two v4 UUIDs: 244 random bits, shown once, stored hashed.
    let token = format!("rst_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let expires_at = Utc::now() + Duration::minutes(TOKEN_TTL_MINUTES);
    sqlx::query(
        "UPDATE backups SET restore_token_hash = $2, restore_token_by = $3, \
           restore_token_expires_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(tokens::hash(&token))
    .bind(actor.id)
    .bind(expires_at)
    .execute(tx.conn())
    .await?;
    audit::record(
        tx,
        actor,
        "backup.restore_requested",
        Some(("backup", id.to_string())),
        serde_json::json!({ "expires_at": expires_at }),
    )
    .await?;
    Ok((token, expires_at))
}

/// The second step: checks and spends the token; returns the backup to restore.
pub async fn redeem_restore_token(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    token: &str,
) -> Result<(Backup, StoredKey)> {
    caller.require(Permission::BackupsManage)?;
    let spent: Option<Uuid> = sqlx::query_scalar(
        "UPDATE backups SET restore_token_hash = NULL, restore_token_by = NULL, \
           restore_token_expires_at = NULL \
         WHERE id = $1 AND restore_token_hash = $2 AND restore_token_expires_at > now() \
           AND restore_token_by IS NOT DISTINCT FROM $3 RETURNING id",
    )
    .bind(id)
    .bind(tokens::hash(token))
    .bind(actor.id)
    .fetch_optional(tx.conn())
    .await?;
    if spent.is_none() {
        return Err(Error::forbidden(
            "backup.invalid_confirmation",
            "the confirmation token is wrong, expired or already used; ask for a new one with \
             POST /backups/{id}/restore and no token",
        ));
    }
    let backup = find(tx, id).await?;
    let key = backup.archive_key()?;
    Ok((backup, key))
}

/// Marks a queued backup running; `None` when it is gone or no longer queued/running (the
/// job then has nothing to do).
pub(crate) async fn start(tx: &mut TenantTx, id: Uuid) -> Result<Option<Backup>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE backups SET status = 'running' WHERE id = $1 AND status IN ('queued', 'running') \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// What a finished backup produced.
#[derive(Debug, Clone)]
pub struct Taken {
    pub key: StoredKey,
    pub size_bytes: u64,
    pub sha256: String,
    pub schema_version: i32,
    pub summary: serde_json::Value,
}

/// Enters a backup taken outside the job (the operator's command line) as done.
pub async fn insert_taken(tx: &mut TenantTx, taken: &Taken) -> Result<Backup> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO backups (id, status, trigger) VALUES ($1, 'running', 'manual')")
        .bind(id)
        .execute(tx.conn())
        .await?;
    finish(tx, id, taken).await?;
    audit::record(
        tx,
        &Actor::system(),
        "backup.created",
        Some(("backup", id.to_string())),
        serde_json::json!({ "trigger": "manual", "by": "command line" }),
    )
    .await?;
    find(tx, id).await
}

/// Records a finished backup.
pub(crate) async fn finish(tx: &mut TenantTx, id: Uuid, taken: &Taken) -> Result<()> {
    sqlx::query(
        "UPDATE backups SET status = 'done', storage_key = $2, size_bytes = $3, sha256 = $4, \
           schema_version = $5, summary = $6, error = NULL, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(taken.key.as_str())
    .bind(i64::try_from(taken.size_bytes).unwrap_or(i64::MAX))
    .bind(&taken.sha256)
    .bind(taken.schema_version)
    .bind(&taken.summary)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Records a backup that failed for good.
pub(crate) async fn fail(tx: &mut TenantTx, id: Uuid, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE backups SET status = 'failed', error = $2, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error.chars().take(2000).collect::<String>())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Finished scheduled backups, newest first: what retention chooses from.
pub(crate) async fn scheduled_done(tx: &mut TenantTx) -> Result<Vec<Backup>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE trigger = 'scheduled' AND status = 'done' \
         ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// Removes entries from the register (their archives are deleted by the caller).
pub(crate) async fn remove(tx: &mut TenantTx, ids: &[Uuid]) -> Result<()> {
    sqlx::query("DELETE FROM backups WHERE id = ANY($1)")
        .bind(ids)
        .execute(tx.conn())
        .await?;
    Ok(())
}
