//! The durable jobs of the workflow engine, run by the server's job worker. Each runs in the
//! job's tenant transaction, which commits the rule's effects, its run-log entry and the job's
//! `done` mark together: a job redelivered after a crash finds its run and does nothing.
//!
//! - `rule.run`: one rule version against one outbox event (enqueued by the event's
//!   transaction, see `crm_records::history::emit`).
//! - `rule.cron`: one firing of a schedule trigger: the rule runs for each live record of its
//!   object, [`CRON_BATCH`] records per job, each batch committed on its own and followed by a
//!   job for the next one (so a firing over many records never holds a transaction or the
//!   worker for long, and other tenants' jobs run between its batches); after the last batch
//!   the next firing is enqueued.
//! - `rule.action`: a `schedule`d action or an approval's `on_approve` / `on_reject`.
//! - `webhook.send`: an outgoing webhook call, retried with backoff.

use crate::executor::{self, RuleEngine, RunRequest, ACTION_JOB};
use crate::memo::WorkflowMemo;
use crate::payloads::{CronFiring, Escalation, FollowUp, RunRule, WebhookCall};
use crate::rules;
use crate::trigger::Trigger;
use chrono::Utc;
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::jobs::{ClaimedJob, Handlers, JobFailure, JobHandler};
use crm_core::outbound::{self, Outbound};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Job kind of a rule run on an event.
pub const RUN_JOB: &str = "rule.run";

/// Records a schedule rule visits per firing, at most.
pub const CRON_MAX_RECORDS: i64 = 10_000;

/// Records one `rule.cron` job visits; the rest of the firing is the next job's.
pub const CRON_BATCH: i64 = 200;

/// Registers the workflow jobs.
pub fn register(handlers: &mut Handlers, engine: RuleEngine, outbound: Outbound) {
    let master = engine.master.clone();
    let engine = Arc::new(engine);
    handlers.register::<RunRule>(Arc::new(RunJob(engine.clone())));
    handlers.register::<CronFiring>(Arc::new(CronJob(engine.clone())));
    handlers.register::<FollowUp>(Arc::new(ActionJob(engine)));
    handlers.register::<WebhookCall>(Arc::new(WebhookJob::new(outbound, master)));
    handlers.register::<Escalation>(Arc::new(crate::approvals::EscalationJob));
}

fn permanent(what: &str) -> JobFailure {
    JobFailure::Permanent(format!("malformed {what} job payload"))
}

/// Whether the rule still runs this version (not deleted, not turned off).
async fn live(tx: &mut TenantTx, rule: Uuid) -> crm_core::Result<Option<(bool, Option<i64>)>> {
    Ok(
        sqlx::query_as(
            "SELECT enabled, version_id FROM rules WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(rule)
        .fetch_optional(tx.conn())
        .await?,
    )
}

struct RunJob(Arc<RuleEngine>);

/// What a `rule.run` job needs to know before it runs: whether the rule is still on, the
/// event (gone if `None`), and whether this (version, event) ran already (a redelivery after a
/// crash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventRow {
    key: String,
    enabled: Option<bool>,
    event: Option<String>,
    record_id: Option<Uuid>,
    payload: Option<Value>,
    ran: bool,
}

/// A run job's payload: rule, version, outbox event, and its idempotency key.
struct RunTarget {
    rule: Uuid,
    version_id: i64,
    outbox_id: i64,
    key: String,
}

fn run_target(job: &ClaimedJob) -> Option<RunTarget> {
    let p = job.payload_as::<RunRule>().ok()?;
    Some(RunTarget {
        rule: p.rule_id,
        version_id: p.version_id,
        outbox_id: p.outbox_id,
        key: format!("v{}:e{}", p.version_id, p.outbox_id),
    })
}

/// Looks up rule, event and prior run of several run jobs in one statement.
async fn event_rows(tx: &mut TenantTx, targets: &[RunTarget]) -> crm_core::Result<Vec<EventRow>> {
    let rules: Vec<Uuid> = targets.iter().map(|t| t.rule).collect();
    let outbox: Vec<i64> = targets.iter().map(|t| t.outbox_id).collect();
    let keys: Vec<&str> = targets.iter().map(|t| t.key.as_str()).collect();
    Ok(sqlx::query_as(
        "SELECT c.key, r.enabled, o.event, o.record_id, o.payload, \
           EXISTS (SELECT 1 FROM rule_runs WHERE idempotency_key = c.key) AS ran \
         FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS c(rule_id, outbox_id, key) \
         LEFT JOIN rules r ON r.id = c.rule_id AND r.deleted_at IS NULL \
         LEFT JOIN outbox o ON o.id = c.outbox_id",
    )
    .bind(&rules)
    .bind(&outbox)
    .bind(&keys)
    .fetch_all(tx.conn())
    .await?)
}

#[async_trait::async_trait]
impl JobHandler for RunJob {
    async fn prepare(&self, tx: &mut TenantTx, jobs: &[&ClaimedJob]) -> Result<(), JobFailure> {
        let targets: Vec<_> = jobs.iter().filter_map(|j| run_target(j)).collect();
        let rows = event_rows(tx, &targets).await?;
        let mut runs = Vec::with_capacity(rows.len());
        for row in rows {
            if let (Some(true), false, Some(record_id)) = (row.enabled, row.ran, row.record_id) {
                if let Some(t) = targets.iter().find(|t| t.key == row.key) {
                    runs.push((rules::version_memo(tx, t.version_id).await?, record_id));
                }
            }
            tx.memo::<WorkflowMemo>()
                .events
                .insert(row.key.clone(), row);
        }
        executor::prefetch(&self.0, tx, &runs).await?;
        Ok(())
    }

    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let Some(target) = run_target(job) else {
            return Err(permanent(RUN_JOB));
        };
        let row = match tx.memo::<WorkflowMemo>().events.get(&target.key).cloned() {
            Some(row) => row,
            None => event_rows(tx, std::slice::from_ref(&target))
                .await?
                .pop()
                .ok_or_else(|| JobFailure::Retry("the event lookup returned no row".into()))?,
        };
        let RunTarget {
            rule,
            version_id,
            outbox_id,
            key,
        } = target;
        // A rule deleted or turned off since the event (perhaps by an earlier run of this
        // group), or a run already made: nothing to do.
        if row.enabled != Some(true)
            || row.ran
            || tx.memo::<WorkflowMemo>().turned_off.contains(&rule)
        {
            return Ok(());
        }
        let (Some(event), Some(record_id), Some(payload)) = (row.event, row.record_id, row.payload)
        else {
            return Err(JobFailure::Permanent(format!("event {outbox_id} is gone")));
        };
        // The version current when the event happened runs (and is named in the log).
        let version = rules::version_memo(tx, version_id).await?;
        let changes = payload.get("changes").cloned();
        let mut trigger = json!({ "kind": "event", "event": event, "outbox_id": outbox_id });
        for key in ["approval_id", "outcome"] {
            if let Some(v) = payload.get(key) {
                trigger[key] = v.clone();
            }
        }
        let depth = job.payload_as::<RunRule>()?.depth;
        executor::run(
            &self.0,
            tx,
            RunRequest {
                version: &version,
                record_id: Some(record_id),
                changes,
                trigger,
                key,
                depth,
                fresh: true,
            },
        )
        .await?;
        Ok(())
    }

    fn transactional(&self) -> bool {
        true
    }
}

struct CronJob(Arc<RuleEngine>);

#[async_trait::async_trait]
impl JobHandler for CronJob {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let CronFiring {
            rule_id: rule,
            version_id,
            fire_at,
            after,
            visited,
        } = job.payload_as()?;
        // Only the current version of an enabled rule fires; an edit enqueued its own.
        match live(tx, rule).await? {
            Some((true, Some(current))) if current == version_id => {}
            _ => return Ok(()),
        }
        let version = rules::version(tx, version_id).await?;
        let object = version.object_key()?;
        let limit = CRON_BATCH.min(CRON_MAX_RECORDS - visited).max(0);
        let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
            "SELECT id FROM {} WHERE deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $1",
            object.table()
        ))
        .bind(limit)
        .bind(after)
        .fetch_all(tx.conn())
        .await?;
        for &id in &ids {
            // A rule turned off by its failures stops visiting records.
            if !matches!(live(tx, rule).await?, Some((true, _))) {
                return Ok(());
            }
            executor::run(
                &self.0,
                tx,
                RunRequest {
                    version: &version,
                    record_id: Some(id),
                    changes: None,
                    trigger: json!({ "kind": "schedule", "fire_at": fire_at }),
                    key: format!("v{version_id}:c{}:{id}", fire_at.timestamp()),
                    depth: 0,
                    fresh: false,
                },
            )
            .await?;
        }
        let visited = visited + ids.len() as i64;
        if let Some(&last) = ids.last().filter(|_| ids.len() as i64 == limit) {
            if visited < CRON_MAX_RECORDS {
                // More records: the next batch is a job of its own, due now.
                crm_core::jobs::enqueue(
                    tx,
                    crm_core::jobs::NewJob::of(&CronFiring {
                        rule_id: rule,
                        version_id,
                        fire_at,
                        after: Some(last),
                        visited,
                    })?
                    .dedupe(format!("cron:{version_id}:{}:{last}", fire_at.timestamp())),
                )
                .await?;
                return Ok(());
            }
        }
        let tz: String = sqlx::query_scalar("SELECT timezone FROM settings")
            .fetch_one(tx.conn())
            .await?;
        let trigger = Trigger::parse(object, &version.trigger, &tz)?;
        // The next firing after this one, or after now if the server was down a while (missed
        // firings are not replayed one by one).
        rules::schedule_next(tx, rule, version_id, &trigger, fire_at.max(Utc::now())).await?;
        Ok(())
    }
}

struct ActionJob(Arc<RuleEngine>);

#[async_trait::async_trait]
impl JobHandler for ActionJob {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let FollowUp {
            rule_id: rule,
            rule_version_id,
            record_id,
            actions,
            origin,
            ..
        } = job.payload_as()?;
        let Some(version_id) = rule_version_id else {
            return Err(permanent(ACTION_JOB));
        };
        if live(tx, rule).await?.is_none() {
            return Ok(());
        }
        let version = rules::version(tx, version_id).await?;
        executor::run_actions(&self.0, tx, &version, record_id, actions, &origin).await?;
        Ok(())
    }

    fn transactional(&self) -> bool {
        true
    }
}

/// Posts a webhook through the platform's outbound client ([`Outbound`]: https, public
/// addresses only, no redirects, time-capped): JSON body, `Idempotency-Key` header. A 2xx is
/// done; timeouts, unreachable receivers, 408, 429 and 5xx are retried with backoff; a refused
/// URL and other 4xx are final. The job log shows the failure's category, not socket text.
pub struct WebhookJob {
    outbound: Outbound,
    /// Opens the tenant's webhook signing secret.
    master: Option<Arc<MasterKey>>,
}

impl WebhookJob {
    pub fn new(outbound: Outbound, master: Option<Arc<MasterKey>>) -> Self {
        WebhookJob { outbound, master }
    }
}

#[async_trait::async_trait]
impl JobHandler for WebhookJob {
    async fn run(&self, tx: &mut TenantTx, job: &ClaimedJob) -> Result<(), JobFailure> {
        let WebhookCall { url, body, key } = job.payload_as()?;
        let (url, key) = (url.as_str(), key.as_str());
        // The allow-list may have changed since the rule ran.
        executor::check_webhook_host(tx, url)
            .await
            .map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| JobFailure::Permanent(format!("webhook body: {e}")))?;
        // Signed (Standard Webhooks) once an admin has created the tenant's secret.
        let secret = crate::manage::webhook_secret(tx, self.master.as_deref())
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
        let mut headers = vec![("Idempotency-Key", key.to_owned())];
        if let Some(secret) = secret {
            let signed = outbound::signature_headers(&secret, key, Utc::now().timestamp(), &body)
                .ok_or_else(|| {
                JobFailure::Permanent("the webhook secret is malformed".into())
            })?;
            headers.extend(signed);
        }
        match self.outbound.post_json(url, &headers, body).await {
            Ok(_) => Ok(()),
            Err(e) if e.retryable() => Err(JobFailure::Retry(format!("webhook: {e}"))),
            Err(e) => Err(JobFailure::Permanent(format!("webhook: {e}"))),
        }
    }
}
