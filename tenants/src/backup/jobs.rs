//! The backup jobs: `backup.take` takes one backup of the register (retried on failure, then
//! marked failed), `backup.scheduled` queues the scheduled backup of the day, prunes the
//! scheduled backups retention lets go, and queues itself again. Registered by the binary
//! with [`register`].

use super::{dump, ledger, schedule, Backups};
use crate::registry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::db::TenantTx;
use crm_core::files::StoredKey;
use crm_core::jobs::{ClaimedJob, Handlers, JobFailure, JobHandler, Payload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// Take the backup `backup_id` of the register.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TakeBackup {
    pub backup_id: Uuid,
}

impl Payload for TakeBackup {
    const KIND: &'static str = "backup.take";
}

/// The scheduled backup due at `due`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduledBackup {
    pub due: DateTime<Utc>,
}

impl Payload for ScheduledBackup {
    const KIND: &'static str = "backup.scheduled";
}

/// Registers the backup jobs.
pub fn register(handlers: &mut Handlers, backups: Backups) {
    handlers.register::<TakeBackup>(Arc::new(TakeBackupJob {
        backups: backups.clone(),
    }));
    handlers.register::<ScheduledBackup>(Arc::new(ScheduledBackupJob { backups }));
}

/// Runs `backup.take`.
pub struct TakeBackupJob {
    pub backups: Backups,
}

#[async_trait]
impl JobHandler for TakeBackupJob {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let payload: TakeBackup = job.payload_as()?;
        // A backup gone from the register (or finished) has nothing left to do: e.g. the job
        // came back with a restored copy of the tenant whose register does not know it.
        let Some(backup) = ledger::start(tx, payload.backup_id).await? else {
            return Ok(());
        };
        let tenant = tx.tenant().clone();
        let name = registry::by_id(&self.backups.db.pool, tenant.id)
            .await?
            .map_or_else(|| tenant.slug.clone(), |t| t.name);
        match dump::take(&self.backups, &tenant, &name).await {
            Ok(taken) => {
                ledger::finish(tx, backup.id, &taken).await?;
                tracing::info!(tenant = %tenant.slug, backup = %backup.id,
                    bytes = taken.size_bytes, "backup taken");
                Ok(())
            }
            Err(e) if job.attempts >= job.max_attempts => {
                tracing::error!(tenant = %tenant.slug, backup = %backup.id, error = %e, "backup failed");
                ledger::fail(tx, backup.id, &e.to_string()).await?;
                Ok(())
            }
            Err(e) => Err(JobFailure::Retry(e.to_string())),
        }
    }
}

/// Runs `backup.scheduled`.
pub struct ScheduledBackupJob {
    pub backups: Backups,
}

#[async_trait]
impl JobHandler for ScheduledBackupJob {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let payload: ScheduledBackup = job.payload_as()?;
        let current = schedule::read(tx).await?;
        if !current.enabled {
            return Ok(());
        }
        let backup = ledger::insert(tx, "scheduled", None).await?;
        audit::record(
            tx,
            &Actor::system(),
            "backup.created",
            Some(("backup", backup.id.to_string())),
            serde_json::json!({ "trigger": "scheduled", "due": payload.due }),
        )
        .await?;
        let done: Vec<(Uuid, DateTime<Utc>)> = ledger::scheduled_done(tx)
            .await?
            .into_iter()
            .map(|b| (b.id, b.created_at))
            .collect();
        let prune = schedule::prune_list(&current, &done);
        if !prune.is_empty() {
            for id in &prune {
                let key = ledger::find_optional(tx, *id)
                    .await?
                    .and_then(|b| b.storage_key)
                    .and_then(|k| StoredKey::parse(&k));
                if let Some(key) = key {
                    self.backups.files.delete(&key).await?;
                }
            }
            ledger::remove(tx, &prune).await?;
            audit::record(
                tx,
                &Actor::system(),
                "backup.pruned",
                None,
                serde_json::json!({ "backups": prune }),
            )
            .await?;
        }
        schedule::queue_next(tx, &current, payload.due.max(Utc::now())).await?;
        Ok(())
    }
}
