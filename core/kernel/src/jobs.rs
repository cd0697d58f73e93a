//! Durable jobs: work that must happen later or outside the request (reminders, mail, SLA
//! timers), stored in the tenant's `jobs` table in the SAME transaction as the change that
//! causes it, so a job exists exactly when its cause committed.
//!
//! A worker claims due jobs with `FOR UPDATE SKIP LOCKED` and a lease (a crashed worker's jobs
//! become claimable again when the lease runs out), runs each in its own tenant transaction
//! that first re-checks the claim, and marks it done in that same transaction — so effects a
//! handler writes to the database happen exactly once. Failures retry with capped exponential
//! backoff and end as `dead`, visible over the API, after `max_attempts`.
//!
//! Enqueueing lowers the tenant's row in `platform.job_hints` (through the SECURITY DEFINER
//! function `platform_api.wake_jobs`), which is how the worker finds due tenants without
//! visiting every schema.

use crate::context::{cut_page, parse_cursor, Page};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

/// A job's payload type: one type per job kind, stored as JSON under its `KIND` (the shape of
/// crates.io's background jobs). Handlers read it back with [`ClaimedJob::payload_as`].
pub trait Payload: Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// The job kind this payload is stored under (`"task.reminder"`).
    const KIND: &'static str;
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    /// Enqueueing a key that exists does nothing: one job per key, ever.
    pub dedupe_key: Option<String>,
    /// The record the job is about.
    pub subject_id: Option<Uuid>,
    pub payload: Value,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i32,
}

impl NewJob {
    /// A job carrying `payload` (of its type's kind), due now, retried up to 8 times.
    pub fn of<P: Payload>(payload: &P) -> Result<Self> {
        let value = serde_json::to_value(payload)
            .map_err(|e| Error::internal(format!("cannot store a {} job: {e}", P::KIND)))?;
        Ok(NewJob::new(P::KIND, value))
    }

    fn new(kind: &'static str, payload: Value) -> Self {
        NewJob {
            kind,
            dedupe_key: None,
            subject_id: None,
            payload,
            run_at: Utc::now(),
            max_attempts: 8,
        }
    }

    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn about(mut self, subject: Uuid) -> Self {
        self.subject_id = Some(subject);
        self
    }

    pub fn at(mut self, run_at: DateTime<Utc>) -> Self {
        self.run_at = run_at;
        self
    }
}

/// Enqueues a job in the caller's transaction; `None` when its dedupe key already exists.
/// Mail is enqueued only through [`crate::mail::enqueue`], which applies the mail policy.
pub async fn enqueue(tx: &mut TenantTx, job: NewJob) -> Result<Option<i64>> {
    if job.kind == crate::mail::SEND_JOB {
        return Err(Error::internal(
            "mail jobs are enqueued through mail::enqueue, which applies the mail policy",
        ));
    }
    insert(tx, job).await
}

/// Inserts a job (any kind) and wakes the worker.
pub(crate) async fn insert(tx: &mut TenantTx, job: NewJob) -> Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, dedupe_key, subject_id, payload, run_at, max_attempts) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
    )
    .bind(job.kind)
    .bind(&job.dedupe_key)
    .bind(job.subject_id)
    .bind(&job.payload)
    .bind(job.run_at)
    .bind(job.max_attempts.max(1))
    .fetch_optional(tx.conn())
    .await?;
    if id.is_some() {
        wake(tx, job.run_at).await?;
    }
    Ok(id)
}

/// Tells the worker this tenant has work at `at` (in the caller's transaction).
pub async fn wake(tx: &mut TenantTx, at: DateTime<Utc>) -> Result<()> {
    let tenant = tx.tenant().id;
    sqlx::query("SELECT platform_api.wake_jobs($1, $2)")
        .bind(tenant)
        .bind(at)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Tells the worker about the tenant's earliest pending job, if any (after a restore loaded
/// jobs without going through [`enqueue`]).
pub async fn wake_pending(tx: &mut TenantTx) -> Result<()> {
    let due: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT min(run_at) FROM jobs WHERE status IN ('pending', 'running')")
            .fetch_one(tx.conn())
            .await?;
    if let Some(at) = due {
        wake(tx, at).await?;
    }
    Ok(())
}

/// Cancels the pending jobs of `kind` about `subject`, except those keyed in `keep`.
pub async fn cancel_for(
    tx: &mut TenantTx,
    kind: &str,
    subject: Uuid,
    keep: &[String],
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now() \
         WHERE subject_id = $1 AND kind = $2 AND status = 'pending' \
           AND (dedupe_key IS NULL OR NOT (dedupe_key = ANY($3)))",
    )
    .bind(subject)
    .bind(kind)
    .bind(keep)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A job a worker holds.
#[derive(Debug, Clone, FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub subject_id: Option<Uuid>,
    pub payload: Value,
    /// Including this one.
    pub attempts: i32,
    pub max_attempts: i32,
    pub claim_token: Uuid,
}

impl ClaimedJob {
    /// The payload as its type; a payload that is not one fails the job for good.
    pub fn payload_as<P: Payload>(&self) -> std::result::Result<P, JobFailure> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| JobFailure::Permanent(format!("malformed {} payload: {e}", P::KIND)))
    }
}

/// Claims up to `limit` due jobs (and running jobs whose lease ran out) for `lease`.
/// Commit right after, then run each with [`lock_claimed`].
pub async fn claim_due(tx: &mut TenantTx, limit: i64, lease: Duration) -> Result<Vec<ClaimedJob>> {
    let jobs = sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, claim_token = gen_random_uuid(), \
           locked_until = now() + make_interval(secs => $2), updated_at = now() \
         WHERE id IN (SELECT id FROM jobs \
             WHERE (status = 'pending' AND run_at <= now()) OR (status = 'running' AND locked_until <= now()) \
             ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, subject_id, payload, attempts, max_attempts, claim_token",
    )
    .bind(limit)
    .bind(lease.num_milliseconds() as f64 / 1000.0)
    .fetch_all(tx.conn())
    .await?;
    Ok(jobs)
}

/// Locks a claimed job for running; false when the claim was lost (the lease ran out and
/// another worker took it, or it was cancelled) — then the caller must not run it.
pub async fn lock_claimed(tx: &mut TenantTx, job: &ClaimedJob) -> Result<bool> {
    Ok(!lock_claimed_many(tx, &[job]).await?.is_empty())
}

/// Locks several claimed jobs at once; returns the ids still held (see [`lock_claimed`]).
pub async fn lock_claimed_many(tx: &mut TenantTx, jobs: &[&ClaimedJob]) -> Result<Vec<i64>> {
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let tokens: Vec<Uuid> = jobs.iter().map(|j| j.claim_token).collect();
    let held = sqlx::query_scalar(
        "SELECT j.id FROM jobs j JOIN unnest($1::bigint[], $2::uuid[]) AS c(id, token) \
           ON j.id = c.id AND j.claim_token = c.token \
         WHERE j.status = 'running' ORDER BY j.id FOR UPDATE OF j",
    )
    .bind(&ids)
    .bind(&tokens)
    .fetch_all(tx.conn())
    .await?;
    Ok(held)
}

/// Marks locked jobs done (in the transaction that holds their effects). A sent mail's body
/// is dropped: it may carry a sign-in or survey link, and nobody needs it any more.
pub async fn complete_many(tx: &mut TenantTx, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE jobs SET status = 'done', finished_at = now(), updated_at = now(), \
           claim_token = NULL, locked_until = NULL, last_error = NULL, \
           payload = CASE WHEN kind = 'mail.send' THEN payload - 'text' ELSE payload END \
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Marks a locked job done (in the transaction that holds its effects).
pub async fn complete(tx: &mut TenantTx, job: &ClaimedJob) -> Result<()> {
    complete_many(tx, &[job.id]).await
}

/// Delay before retry `attempt` (1-based): 10 s doubling, at most an hour.
pub fn backoff(attempt: i32) -> Duration {
    let exp = attempt.clamp(1, 20) - 1;
    Duration::seconds((10_i64 << exp.min(9)).min(3600))
}

/// Records a failed run: back to pending after [`backoff`], or `dead` once out of attempts
/// (or at once when `permanent`). Returns the new status.
pub async fn fail(
    tx: &mut TenantTx,
    job: &ClaimedJob,
    error: &str,
    permanent: bool,
) -> Result<&'static str> {
    let dead = permanent || job.attempts >= job.max_attempts;
    let status = if dead { "dead" } else { "pending" };
    let retry_at = Utc::now() + backoff(job.attempts);
    let error: String = error.chars().take(2000).collect();
    let updated = sqlx::query(
        "UPDATE jobs SET status = $3, run_at = CASE WHEN $3 = 'pending' THEN $4 ELSE run_at END, \
           last_error = $5, claim_token = NULL, locked_until = NULL, updated_at = now(), \
           finished_at = CASE WHEN $3 = 'dead' THEN now() END \
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(job.id)
    .bind(job.claim_token)
    .bind(status)
    .bind(retry_at)
    .bind(error)
    .execute(tx.conn())
    .await?;
    if updated.rows_affected() == 1 && !dead {
        wake(tx, retry_at).await?;
    }
    Ok(status)
}

/// Deletes up to `limit` jobs that finished (done or cancelled) more than `age` ago; dead
/// jobs stay until someone retries or looks at them. Returns how many went.
pub async fn prune(tx: &mut TenantTx, age: Duration, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('done', 'cancelled') \
           AND finished_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)",
    )
    .bind(age.num_seconds() as f64)
    .bind(limit)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub subject_id: Option<Uuid>,
    pub status: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const VIEW_COLUMNS: &str = "id, kind, subject_id, status, run_at, attempts, max_attempts, \
    last_error, created_at, updated_at, finished_at";

/// Job statuses.
pub const STATUSES: &[&str] = &["pending", "running", "done", "dead", "cancelled"];

/// Filters of the job list.
#[derive(Debug, Default)]
pub struct JobQuery<'a> {
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub subject_id: Option<Uuid>,
    pub cursor: Option<&'a str>,
    pub limit: i64,
}

/// Jobs, newest first.
pub async fn list(
    tx: &mut TenantTx,
    caller: &crate::authz::Caller,
    q: JobQuery<'_>,
) -> Result<Page<JobView>> {
    caller.require(crate::authz::Permission::TenantManage)?;
    if let Some(status) = q.status {
        if !STATUSES.contains(&status) {
            return Err(Error::invalid_field(
                "status",
                "unknown_status",
                format!(
                    "unknown job status '{status}'; use one of: {}",
                    STATUSES.join(", ")
                ),
            ));
        }
    }
    let before: Option<i64> = parse_cursor(q.cursor)?;
    let mut items: Vec<JobView> = sqlx::query_as(&format!(
        "SELECT {VIEW_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::text IS NULL OR kind = $2) AND ($3::uuid IS NULL OR subject_id = $3) \
           AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(q.status)
    .bind(q.kind)
    .bind(q.subject_id)
    .bind(before)
    .bind(q.limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, q.limit, |j| j.id);
    Ok(Page { items, next_cursor })
}

/// One job.
pub async fn get(tx: &mut TenantTx, caller: &crate::authz::Caller, id: i64) -> Result<JobView> {
    caller.require(crate::authz::Permission::TenantManage)?;
    view(tx, id).await
}

async fn view(tx: &mut TenantTx, id: i64) -> Result<JobView> {
    sqlx::query_as(&format!("SELECT {VIEW_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| Error::not_found("job.not_found", format!("no job {id}")))
}

/// A job's status (one of [`STATUSES`]) and last error, for the service that enqueued it and
/// shows its progress in its own terms (an export's status); `None` once the job is pruned.
/// No permission check: the caller answers for showing it.
pub async fn status_of(tx: &mut TenantTx, id: i64) -> Result<Option<(String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// Runs a dead (or cancelled) job again now, with a fresh set of attempts.
pub async fn retry(tx: &mut TenantTx, caller: &crate::authz::Caller, id: i64) -> Result<JobView> {
    caller.require(crate::authz::Permission::TenantManage)?;
    let current = view(tx, id).await?;
    if !matches!(current.status.as_str(), "dead" | "cancelled") {
        return Err(Error::conflict(
            "job.not_retryable",
            format!(
                "job {id} is {}; only dead or cancelled jobs can be retried",
                current.status
            ),
        ));
    }
    let now = Utc::now();
    sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $2, last_error = NULL, \
           finished_at = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    wake(tx, now).await?;
    view(tx, id).await
}

/// Why a job run failed.
#[derive(Debug)]
pub enum JobFailure {
    /// Worth trying again later (a server was down, a conflict).
    Retry(String),
    /// Will never succeed (a recipient refused for good, a malformed payload): dead at once.
    Permanent(String),
}

impl From<Error> for JobFailure {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid { .. } | Error::BadRequest { .. } => {
                JobFailure::Permanent(e.to_string())
            }
            other => JobFailure::Retry(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for JobFailure {
    fn from(e: sqlx::Error) -> Self {
        JobFailure::Retry(e.to_string())
    }
}

/// Runs the jobs of one kind. Database effects go through `tx`, which the worker commits
/// together with the job's `done` mark.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob)
        -> std::result::Result<(), JobFailure>;

    /// True when a run touches nothing but the database through `tx` (no mail, no HTTP, no
    /// other outside effect). The worker may then run several such jobs of one tenant in one
    /// transaction, and run them again one by one if any of them fails — which must be
    /// harmless. False by default.
    fn transactional(&self) -> bool {
        false
    }

    /// Called once before a group of transactional jobs runs in one shared transaction, with
    /// this handler's jobs of the group: a chance to read what they all need in a few
    /// statements (into the transaction's memo, see [`TenantTx::memo`]) instead of a few
    /// per job. An error makes the worker run the group's jobs one by one.
    async fn prepare(
        &self,
        _tx: &mut TenantTx,
        _jobs: &[&ClaimedJob],
    ) -> std::result::Result<(), JobFailure> {
        Ok(())
    }
}

/// The handlers a worker knows, by job kind.
#[derive(Default, Clone)]
pub struct Handlers {
    by_kind: std::collections::HashMap<&'static str, std::sync::Arc<dyn JobHandler>>,
}

impl Handlers {
    /// Registers the handler of the jobs whose payload is `P`.
    pub fn register<P: Payload>(&mut self, handler: std::sync::Arc<dyn JobHandler>) {
        self.by_kind.insert(P::KIND, handler);
    }

    pub fn get(&self, kind: &str) -> Option<&std::sync::Arc<dyn JobHandler>> {
        self.by_kind.get(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::seconds(10));
        assert_eq!(backoff(2), Duration::seconds(20));
        assert_eq!(backoff(4), Duration::seconds(80));
        assert_eq!(backoff(9), Duration::seconds(2560));
        assert_eq!(backoff(10), Duration::seconds(3600));
        assert_eq!(backoff(100), Duration::seconds(3600));
        assert_eq!(backoff(0), Duration::seconds(10));
    }
}
