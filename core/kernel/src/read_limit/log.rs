//! The read-access log: reading it (`audit:read`) and pruning it past its retention.

use crate::authz::{Caller, Permission};
use crate::context::{cut_page, parse_cursor, Page};
use crate::db::TenantTx;
use crate::error::Result;
use crate::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob, Payload};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use uuid::Uuid;

/// One customer record read.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ReadAccess {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The user who read it (an API key's creator for a key).
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub customer_id: Uuid,
    /// `get`, `list` or `export`.
    pub via: String,
    pub request_id: Option<String>,
}

/// Filters for reading the log.
#[derive(Debug, Default)]
pub struct ReadAccessQuery {
    pub cursor: Option<String>,
    pub limit: i64,
    pub user_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Newest first (`audit:read`); the cursor is the last id seen.
pub async fn list(
    tx: &mut TenantTx,
    caller: &Caller,
    q: ReadAccessQuery,
) -> Result<Page<ReadAccess>> {
    caller.require(Permission::AuditRead)?;
    let before: Option<i64> = parse_cursor(q.cursor.as_deref())?;
    let mut items: Vec<ReadAccess> = sqlx::query_as(
        "SELECT id, at, user_id, api_key_id, customer_id, via, request_id FROM read_access_log \
         WHERE ($1::bigint IS NULL OR id < $1) \
           AND ($2::uuid IS NULL OR user_id = $2) \
           AND ($3::uuid IS NULL OR customer_id = $3) \
           AND ($4::timestamptz IS NULL OR at >= $4) \
           AND ($5::timestamptz IS NULL OR at < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(before)
    .bind(q.user_id)
    .bind(q.customer_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, q.limit, |e| e.id);
    Ok(Page { items, next_cursor })
}

/// The payload of the recurring `read_access_log.prune` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prune {}

impl Payload for Prune {
    const KIND: &'static str = "read_access_log.prune";
}

/// Rows one run deletes at most, in batches of [`BATCH`].
const BATCH: i64 = 2000;
const BATCHES_PER_RUN: usize = 10;

/// Schedules a prune at `at` (once per minute of `at`, so scheduling twice does nothing).
pub async fn schedule_prune(tx: &mut TenantTx, at: DateTime<Utc>) -> Result<()> {
    let job = NewJob::of(&Prune {})?
        .dedupe(format!("{}:{}", Prune::KIND, at.timestamp() / 60))
        .at(at);
    jobs::enqueue(tx, job).await?;
    Ok(())
}

/// Deletes log rows older than the retention, batch by batch; runs again in a minute while
/// more remain, else tomorrow while the log is on.
pub struct PruneJob;

#[async_trait::async_trait]
impl JobHandler for PruneJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        _job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let (on, days): (bool, i32) = sqlx::query_as(
            "SELECT coalesce((j ->> 'read_log_enabled')::boolean, false), \
                    coalesce((j ->> 'read_log_retention_days')::integer, 180) \
             FROM (SELECT to_jsonb(s) AS j FROM settings s) sj",
        )
        .fetch_one(tx.conn())
        .await?;
        let mut full = false;
        for _ in 0..BATCHES_PER_RUN {
            let done = sqlx::query(
                "DELETE FROM read_access_log WHERE id IN (SELECT id FROM read_access_log \
                   WHERE at < now() - make_interval(days => $1) ORDER BY at LIMIT $2)",
            )
            .bind(days)
            .bind(BATCH)
            .execute(tx.conn())
            .await?;
            full = done.rows_affected() as i64 == BATCH;
            if !full {
                break;
            }
        }
        if full {
            schedule_prune(tx, Utc::now() + Duration::minutes(1)).await?;
        } else if on {
            schedule_prune(tx, Utc::now() + Duration::days(1)).await?;
        }
        Ok(())
    }

    fn transactional(&self) -> bool {
        true
    }
}
