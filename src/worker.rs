//! The job worker: finds tenants with due jobs through `platform.job_hints`, claims their due
//! jobs with `FOR UPDATE SKIP LOCKED` and a lease, and runs each in its own tenant
//! transaction that commits the job's effects with its `done` mark. Jobs whose handlers only
//! write to the database run several to a transaction, re-run one by one if any of them fails.
//! Any number of servers may run it against one database; a job is run by one of them at a
//! time. An idle worker sleeps until its next poll or until a transaction commits a job due
//! now (`NOTIFY crm_jobs`, sent by `platform_api.wake_jobs`), so an effect follows its event
//! without waiting for the poll.

use chrono::Duration;
use crm_core::db::{Db, TenantCtx};
use crm_core::jobs::{self, ClaimedJob, Handlers, JobFailure};
use futures::StreamExt;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Sleep between looks when nothing is due.
    pub poll: std::time::Duration,
    /// Tenants visited at once.
    pub concurrency: usize,
    /// Jobs claimed per round within one tenant.
    pub batch: i64,
    /// How long a claimed job stays ours; a handler running longer is cut off and retried.
    pub job_lease: Duration,
    /// How long a visited tenant stays ours.
    pub tenant_lease: Duration,
}

/// A running worker; [`Worker::stop`] lets the current jobs finish.
pub struct Worker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Worker {
    pub fn spawn(db: Db, handlers: Handlers, settings: WorkerSettings) -> Worker {
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        tokio::spawn(listen(db.pool.clone(), wake.clone(), stopped.clone()));
        let task = tokio::spawn(run(db, Arc::new(handlers), settings, wake, stopped));
        Worker { stop, task }
    }

    /// Stops claiming and waits for the jobs in hand.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The channel `platform_api.wake_jobs` notifies when a job falls due now.
pub const WAKE_CHANNEL: &str = "crm_jobs";

/// Listens on [`WAKE_CHANNEL`] over a connection of its own and wakes the worker on each
/// notification; reconnects after a lost connection (the poll covers the gap).
async fn listen(pool: PgPool, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            result = listen_once(&pool, &wake) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "job wake-up listener lost its connection; polling meanwhile");
                }
            }
            _ = stopped.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Listens until the connection fails.
async fn listen_once(pool: &PgPool, wake: &Notify) -> Result<(), sqlx::Error> {
    let mut listener = crm_core::db::listen(pool, WAKE_CHANNEL).await?;
    loop {
        listener.recv().await?;
        wake.notify_one();
    }
}

async fn run(
    db: Db,
    handlers: Arc<Handlers>,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pruned_at = std::time::Instant::now();
    loop {
        if *stopped.borrow() {
            return;
        }
        // Old login-throttle counters go once an hour.
        if pruned_at.elapsed() > std::time::Duration::from_secs(3600) {
            pruned_at = std::time::Instant::now();
            if let Err(e) = crm_tenants::throttle::prune(&db.pool).await {
                tracing::warn!(error = %e, "cannot prune login throttle counters");
            }
        }
        let claimed = crm_tenants::jobs::claim_due_tenants(
            &db.pool,
            (settings.concurrency * 2) as i64,
            settings.tenant_lease,
        )
        .await;
        let idle = match claimed {
            Ok(tenants) if !tenants.is_empty() => {
                futures::stream::iter(tenants)
                    .for_each_concurrent(settings.concurrency.max(1), |tenant| {
                        let db = &db;
                        let handlers = &handlers;
                        let settings = &settings;
                        let stopped = stopped.clone();
                        async move { visit(db, handlers, settings, &tenant, stopped).await }
                    })
                    .await;
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "job worker cannot read due tenants");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = tokio::time::sleep(settings.poll) => {}
                _ = wake.notified() => {}
                _ = stopped.changed() => {}
            }
        }
    }
}

/// Runs a tenant's due jobs, then recomputes its hint.
async fn visit(
    db: &Db,
    handlers: &Handlers,
    settings: &WorkerSettings,
    tenant: &TenantCtx,
    stopped: watch::Receiver<bool>,
) {
    // Bounded rounds and time so one busy tenant cannot starve the others: what is left stays
    // due, and the tenant waits its turn behind those that waited longer.
    let started = std::time::Instant::now();
    for round in 0..10 {
        if *stopped.borrow() || (round > 0 && started.elapsed() > VISIT_BUDGET) {
            break;
        }
        let batch = match claim(db, tenant, settings).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(tenant = %tenant.slug, error = %e, "cannot claim jobs");
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        // Jobs that only touch the database share transactions, GROUP at a time; the rest
        // (mail, webhooks, …) run one per transaction.
        let (shared, single): (Vec<&ClaimedJob>, Vec<&ClaimedJob>) =
            batch.iter().partition(|job| {
                job.attempts <= job.max_attempts
                    && handlers.get(&job.kind).is_some_and(|h| h.transactional())
            });
        // Even groups (100 jobs make 34 + 33 + 33, not 32 + 32 + 32 + 4).
        let groups = shared.len().div_ceil(GROUP).max(1);
        for group in shared.chunks(shared.len().div_ceil(groups).max(1)) {
            run_group(db, handlers, settings, tenant, group).await;
        }
        for job in single {
            if let Err(e) = run_job(db, handlers, settings, tenant, job).await {
                tracing::warn!(tenant = %tenant.slug, job = job.id, error = %e, "job bookkeeping failed");
            }
        }
    }
    if let Err(e) = prune(db, tenant).await {
        tracing::warn!(tenant = %tenant.slug, error = %e, "cannot prune finished jobs");
    }
    if let Err(e) = crm_tenants::jobs::settle(&db.pool, tenant.id).await {
        tracing::warn!(tenant = %tenant.slug, error = %e, "cannot settle the tenant's job hint");
    }
}

/// After this long a visit claims no more rounds of the tenant's jobs.
const VISIT_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Finished jobs are kept two weeks (for the job list) and idempotency keys a day, then
/// deleted while visiting anyway.
async fn prune(db: &Db, tenant: &TenantCtx) -> crm_core::Result<()> {
    let mut tx = db.tenant_tx(tenant).await?;
    jobs::prune(&mut tx, Duration::days(14), 500).await?;
    crm_records::idempotency::prune(&mut tx, 500).await?;
    tx.commit().await
}

async fn claim(
    db: &Db,
    tenant: &TenantCtx,
    settings: &WorkerSettings,
) -> crm_core::Result<Vec<ClaimedJob>> {
    let mut tx = db.tenant_tx(tenant).await?;
    let batch = jobs::claim_due(&mut tx, settings.batch, settings.job_lease).await?;
    tx.commit().await?;
    Ok(batch)
}

/// Transactional jobs run together in one transaction, at most this many: enough to spread a
/// transaction's cost over many jobs, few enough that a group re-run job by job after a failure
/// stays cheap, and that handlers which still open savepoints stay under the 64 cached
/// subtransactions per transaction beyond which Postgres slows every session's snapshots.
const GROUP: usize = 32;

/// Runs a group of transactional jobs of one tenant in one transaction: their effects and
/// `done` marks commit together. If any of them fails (or the commit does), the whole
/// transaction is rolled back and each job runs again on its own, so one failing job records
/// its failure and the others still happen — exactly once, as their effects are only writes
/// in the rolled-back transaction.
async fn run_group(
    db: &Db,
    handlers: &Handlers,
    settings: &WorkerSettings,
    tenant: &TenantCtx,
    group: &[&ClaimedJob],
) {
    let together = if group.len() > 1 {
        run_together(db, handlers, settings, tenant, group).await
    } else {
        Ok(false)
    };
    match together {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::debug!(tenant = %tenant.slug, error = %e, "job group rolled back; running its jobs one by one");
        }
    }
    for job in group {
        if let Err(e) = run_job(db, handlers, settings, tenant, job).await {
            tracing::warn!(tenant = %tenant.slug, job = job.id, error = %e, "job bookkeeping failed");
        }
    }
}

/// True when every job of the group ran and committed; false (nothing committed) when one
/// failed.
async fn run_together(
    db: &Db,
    handlers: &Handlers,
    settings: &WorkerSettings,
    tenant: &TenantCtx,
    group: &[&ClaimedJob],
) -> crm_core::Result<bool> {
    let deadline = std::time::Instant::now()
        + (settings.job_lease - Duration::seconds(5))
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(1));
    let mut tx = db.tenant_tx(tenant).await?;
    tx.set_shared();
    let held = jobs::lock_claimed_many(&mut tx, group).await?;
    let held: Vec<&ClaimedJob> = group
        .iter()
        .filter(|j| held.contains(&j.id))
        .copied()
        .collect();
    // Each kind first reads ahead what its jobs of the group need.
    let mut kinds: Vec<&str> = held.iter().map(|j| j.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in kinds {
        let Some(handler) = handlers.get(kind) else {
            return Ok(false);
        };
        let of_kind: Vec<&ClaimedJob> = held.iter().filter(|j| j.kind == kind).copied().collect();
        if handler.prepare(&mut tx, &of_kind).await.is_err() {
            return Ok(false);
        }
    }
    let mut done = Vec::with_capacity(held.len());
    for job in held {
        let Some(handler) = handlers.get(&job.kind) else {
            return Ok(false);
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match tokio::time::timeout(left, handler.run(&mut tx, job)).await {
            Ok(Ok(())) => done.push(job.id),
            Ok(Err(_)) | Err(_) => return Ok(false),
        }
    }
    jobs::complete_many(&mut tx, &done).await?;
    tx.commit().await?;
    tracing::debug!(tenant = %tenant.slug, jobs = done.len(), "job group done");
    Ok(true)
}

/// Runs one claimed job: effects and `done` in one transaction, or the failure recorded.
async fn run_job(
    db: &Db,
    handlers: &Handlers,
    settings: &WorkerSettings,
    tenant: &TenantCtx,
    job: &ClaimedJob,
) -> crm_core::Result<()> {
    let mut tx = db.tenant_tx(tenant).await?;
    if !jobs::lock_claimed(&mut tx, job).await? {
        return Ok(());
    }
    let outcome = if job.attempts > job.max_attempts {
        // Claimed again after its lease ran out, more often than it may be tried: a run that
        // crashes the worker or never ends must not loop forever.
        Err(JobFailure::Permanent(format!(
            "gave up after {} attempts that did not finish",
            job.attempts - 1
        )))
    } else {
        match handlers.get(&job.kind) {
            None => Err(JobFailure::Permanent(format!(
                "no handler for job kind '{}'",
                job.kind
            ))),
            Some(handler) => {
                let limit = (settings.job_lease - Duration::seconds(5))
                    .to_std()
                    .unwrap_or(std::time::Duration::from_secs(1));
                match tokio::time::timeout(limit, handler.run(&mut tx, job)).await {
                    Ok(result) => result,
                    Err(_) => Err(JobFailure::Retry(format!(
                        "did not finish within {} s",
                        limit.as_secs()
                    ))),
                }
            }
        }
    };
    match outcome {
        Ok(()) => {
            jobs::complete(&mut tx, job).await?;
            tx.commit().await?;
            tracing::debug!(tenant = %tenant.slug, job = job.id, kind = %job.kind, "job done");
        }
        Err(failure) => {
            // The handler's writes are rolled back; only the failure is kept.
            drop(tx);
            let (message, permanent) = match failure {
                JobFailure::Retry(m) => (m, false),
                JobFailure::Permanent(m) => (m, true),
            };
            let mut tx = db.tenant_tx(tenant).await?;
            let status = jobs::fail(&mut tx, job, &message, permanent).await?;
            tx.commit().await?;
            tracing::warn!(tenant = %tenant.slug, job = job.id, kind = %job.kind,
                attempt = job.attempts, %status, error = %message, "job failed");
        }
    }
    Ok(())
}
