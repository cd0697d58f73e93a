//! Approvals: ordered steps of approvers (users, a role, a team, the record owner or the
//! owner's manager) deciding in a mode (any one, all, a quorum), with escalation after a
//! business-time delay, recall by the requester, and a lock on the record while pending
//! (`crm_records::service::ensure_unlocked`). The decision emits
//! `<object>.approval_decided`, and the requesting rule's `on_approve` / `on_reject` actions
//! run as a `rule.action` job.

use crate::payloads::{Escalation, FollowUp};
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::business_hours::{BusinessCalendar, CalendarSpec};
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob};
use crm_core::notifications::{self, NewNotification};
use crm_core::{Error, Result};
use crm_records::meta::ObjectKey;
use crm_records::{engine, history, RecordScope, Visibility};
use crm_rules_protocol::{Effect, StepMode};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::FromRow;
use uuid::Uuid;

/// Job kind of a step's escalation timer.
pub const ESCALATE_JOB: &str = "approval.escalate";
/// Job kind of the follow-up actions (handled by the rules engine).
pub const FOLLOW_UP_JOB: &str = crate::executor::ACTION_JOB;

/// One step as requested.
#[derive(Debug, Clone)]
pub struct StepInput {
    pub approvers: Vec<String>,
    /// `any`, `all` or `quorum`.
    pub mode: String,
    pub quorum: Option<i64>,
    pub escalate_after_seconds: Option<i64>,
}

/// An approval to request.
#[derive(Debug, Clone)]
pub struct NewApproval {
    pub object: ObjectKey,
    pub record_id: Uuid,
    pub title: Option<String>,
    pub steps: Vec<StepInput>,
    pub requested_by: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub rule_version_id: Option<i64>,
    pub on_approve: Vec<Effect>,
    pub on_reject: Vec<Effect>,
}

/// A decision on a step.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Decision {
    pub step: i32,
    pub user_id: Uuid,
    pub decision: String,
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An approval with its decisions.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Approval {
    pub id: Uuid,
    pub object: String,
    pub record_id: Uuid,
    pub title: String,
    pub status: String,
    pub steps: Value,
    pub current_step: i32,
    pub requested_by: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub on_approve: Value,
    pub on_reject: Value,
    pub step_started_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub decisions: Vec<Decision>,
}

const COLUMNS: &str = "id, object, record_id, title, status, steps, current_step, requested_by, \
    rule_id, on_approve, on_reject, step_started_at, created_at, updated_at, decided_at";

fn not_found(id: Uuid) -> Error {
    Error::not_found("approval.not_found", format!("no approval {id}"))
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Error {
    Error::invalid_field(field, code, message)
}

/// Resolves one approver spec to active users. `owner` is the record's owner column.
async fn resolve_spec(
    tx: &mut TenantTx,
    object: ObjectKey,
    record: Uuid,
    spec: &str,
) -> Result<Vec<Uuid>> {
    let spec = spec.trim();
    let ids: Vec<Uuid> = if let Some(role) = spec.strip_prefix("role:") {
        let domain = tx.tenant().id.to_string();
        sqlx::query_scalar(
            "SELECT u.id FROM users u JOIN casbin_rule r ON r.ptype = 'g' AND r.v0 = 'u:' || u.id::text \
               AND r.v1 = $1 AND r.v2 = $2 WHERE u.status = 'active' ORDER BY u.id",
        )
        .bind(role)
        .bind(domain)
        .fetch_all(tx.conn())
        .await?
    } else if let Some(team) = spec.strip_prefix("team:") {
        sqlx::query_scalar(
            "SELECT u.id FROM team_members m JOIN users u ON u.id = m.user_id JOIN teams t ON t.id = m.team_id \
             WHERE u.status = 'active' AND (t.id::text = $1 OR t.name = $1) ORDER BY u.id",
        )
        .bind(team)
        .fetch_all(tx.conn())
        .await?
    } else if spec == "owner" || spec == "manager" {
        let q = format!(
            "SELECT {} FROM {} WHERE id = $1",
            object.owner_column(),
            object.table()
        );
        let owner: Option<Uuid> = sqlx::query_scalar::<_, Option<Uuid>>(&q)
            .bind(record)
            .fetch_optional(tx.conn())
            .await?
            .flatten();
        let who = match (spec, owner) {
            ("owner", o) => o,
            (_, Some(o)) => {
                sqlx::query_scalar::<_, Option<Uuid>>("SELECT manager_id FROM users WHERE id = $1")
                    .bind(o)
                    .fetch_optional(tx.conn())
                    .await?
                    .flatten()
            }
            _ => None,
        };
        match who {
            Some(u) => {
                sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND status = 'active'")
                    .bind(u)
                    .fetch_all(tx.conn())
                    .await?
            }
            None => Vec::new(),
        }
    } else {
        let raw = spec.strip_prefix("user:").unwrap_or(spec);
        let id = Uuid::parse_str(raw).ok();
        sqlx::query_scalar(
            "SELECT id FROM users WHERE status = 'active' AND (id = $1 OR lower(email) = lower($2))",
        )
        .bind(id)
        .bind(raw)
        .fetch_all(tx.conn())
        .await?
    };
    Ok(ids)
}

/// Resolves a step's approvers; 422 `approval.no_approvers` when nobody is left.
async fn resolve_step(
    tx: &mut TenantTx,
    object: ObjectKey,
    record: Uuid,
    step: &Value,
    index: usize,
) -> Result<Vec<Uuid>> {
    let mut users = Vec::new();
    for spec in step["approvers"].as_array().cloned().unwrap_or_default() {
        let spec = spec.as_str().unwrap_or_default().to_owned();
        for u in resolve_spec(tx, object, record, &spec).await? {
            if !users.contains(&u) {
                users.push(u);
            }
        }
    }
    if users.is_empty() {
        return Err(invalid(
            &format!("steps[{index}].approvers"),
            "approval.no_approvers",
            format!(
                "step {} has no active approver ({}); name users, role:<name>, team:<name>, owner or manager",
                index + 1,
                step["approvers"]
            ),
        ));
    }
    let quorum = step["quorum"].as_i64().unwrap_or(1);
    if step["mode"] == "quorum" && quorum > users.len() as i64 {
        return Err(invalid(
            &format!("steps[{index}].quorum"),
            "approval.quorum_too_high",
            format!(
                "a quorum of {quorum} needs at least {quorum} approvers; step {} has {}",
                index + 1,
                users.len()
            ),
        ));
    }
    Ok(users)
}

/// The company's default business calendar (or office hours in its time zone).
async fn calendar(tx: &mut TenantTx) -> Result<BusinessCalendar> {
    let id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM business_calendars WHERE is_default LIMIT 1")
            .fetch_optional(tx.conn())
            .await?;
    if let Some(id) = id {
        return crm_desk::sla::business_calendar(tx, id).await;
    }
    BusinessCalendar::new(&CalendarSpec::default_office())
        .map_err(|_| Error::internal("the default office calendar is invalid"))
}

/// Starts step `index`: resolves its approvers, notifies them, arms its escalation.
async fn start_step(tx: &mut TenantTx, a: &mut Approval, index: usize) -> Result<()> {
    let object =
        ObjectKey::named(&a.object).ok_or_else(|| Error::internal("approval on unknown object"))?;
    let mut steps = a.steps.as_array().cloned().unwrap_or_default();
    let step = steps
        .get(index)
        .cloned()
        .ok_or_else(|| Error::internal("no such step"))?;
    let users = resolve_step(tx, object, a.record_id, &step, index).await?;
    steps[index]["users"] = json!(users);
    a.steps = Value::Array(steps);
    a.current_step = index as i32;
    sqlx::query("UPDATE approvals SET steps = $2, current_step = $3, step_started_at = now(), updated_at = now() WHERE id = $1")
        .bind(a.id)
        .bind(&a.steps)
        .bind(a.current_step)
        .execute(tx.conn())
        .await?;
    let title = format!("待审批：{}", a.title);
    for u in &users {
        notifications::create(
            tx,
            NewNotification {
                user_id: *u,
                kind: "approval.requested",
                title: &title,
                body: Some(&format!(
                    "Approval needed (step {}): {}",
                    index + 1,
                    a.title
                )),
                record: Some((object.as_str(), a.record_id)),
                job_id: None,
            },
        )
        .await?;
    }
    if let Some(seconds) = step["escalate_after_seconds"].as_i64().filter(|s| *s > 0) {
        let cal = calendar(tx).await?;
        let at = cal.add_business_seconds(Utc::now(), seconds);
        jobs::enqueue(
            tx,
            NewJob::of(&Escalation {
                approval_id: a.id,
                step: index as i64,
            })?
            .dedupe(format!("approval:{}:step:{index}:escalate", a.id))
            .about(a.record_id)
            .at(at),
        )
        .await?;
    }
    Ok(())
}

/// Most steps an approval may have (it has at least one).
pub const MAX_STEPS: usize = 10;

fn check_steps(steps: &[StepInput]) -> Result<Value> {
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(invalid(
            "steps",
            "approval.steps",
            format!("an approval has 1 to {MAX_STEPS} steps"),
        ));
    }
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.approvers.is_empty() {
            return Err(invalid(
                &format!("steps[{i}].approvers"),
                "required",
                "name at least one approver",
            ));
        }
        if !StepMode::ALL.iter().any(|m| m.as_str() == s.mode) {
            return Err(invalid(
                &format!("steps[{i}].mode"),
                "approval.mode",
                "mode is any, all or quorum",
            ));
        }
        let quorum = if s.mode == "quorum" {
            match s.quorum {
                Some(q) if q >= 1 => Some(q),
                _ => {
                    return Err(invalid(
                        &format!("steps[{i}].quorum"),
                        "approval.quorum",
                        "a quorum step needs quorum ≥ 1",
                    ))
                }
            }
        } else {
            None
        };
        out.push(json!({
            "approvers": s.approvers,
            "mode": s.mode,
            "quorum": quorum,
            "escalate_after_seconds": s.escalate_after_seconds,
        }));
    }
    Ok(Value::Array(out))
}

/// Requests an approval of a live record; the record is locked until it is decided.
pub async fn request(tx: &mut TenantTx, actor: &Actor, new: NewApproval) -> Result<Approval> {
    let steps = check_steps(&new.steps)?;
    // Whoever asks has checked their own view of the record; this is whether it is live.
    let live = engine::ensure_visible(
        tx,
        new.object,
        RecordScope::All,
        new.record_id,
        Visibility::Live,
    )
    .await;
    if let Err(Error::NotFound { .. }) = live {
        return Err(invalid(
            "record_id",
            "unknown_reference",
            format!("no live {} record {}", new.object.singular(), new.record_id),
        ));
    }
    live?;
    let pending: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM approvals WHERE object = $1 AND record_id = $2 AND status = 'pending'",
    )
    .bind(new.object.as_str())
    .bind(new.record_id)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(existing) = pending {
        return Err(Error::conflict(
            "approval.already_pending",
            format!("the record already waits for approval {existing}"),
        ));
    }
    let title = new
        .title
        .map(|t| t.trim().chars().take(200).collect::<String>())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("{} approval", new.object.singular()));
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO approvals (id, object, record_id, title, steps, requested_by, rule_id, rule_version_id, on_approve, on_reject) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(new.object.as_str())
    .bind(new.record_id)
    .bind(&title)
    .bind(&steps)
    .bind(new.requested_by)
    .bind(new.rule_id)
    .bind(new.rule_version_id)
    .bind(sqlx::types::Json(&new.on_approve))
    .bind(sqlx::types::Json(&new.on_reject))
    .execute(tx.conn())
    .await?;
    let mut a = get(tx, id).await?;
    start_step(tx, &mut a, 0).await?;
    history::emit(
        tx,
        new.object,
        new.record_id,
        "approval_requested",
        actor,
        json!({ "approval_id": id, "title": title }),
    )
    .await?;
    get(tx, id).await
}

/// One approval with its decisions.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Approval> {
    let mut a: Approval = sqlx::query_as(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found(id))?;
    a.decisions = sqlx::query_as(
        "SELECT step, user_id, decision, comment, created_at FROM approval_decisions WHERE approval_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(tx.conn())
    .await?;
    Ok(a)
}

/// Who may act on the current step: its approvers and escalation users.
fn deciders(a: &Approval) -> Vec<Uuid> {
    let step = &a.steps[a.current_step as usize];
    let mut out: Vec<Uuid> = serde_json::from_value(step["users"].clone()).unwrap_or_default();
    let esc: Vec<Uuid> = serde_json::from_value(step["escalated_to"].clone()).unwrap_or_default();
    out.extend(esc);
    out
}

/// Whether `user` is or was an approver of any step, or the requester.
pub fn involves(a: &Approval, user: Uuid) -> bool {
    a.requested_by == Some(user)
        || a.steps.as_array().into_iter().flatten().any(|s| {
            ["users", "escalated_to"].iter().any(|k| {
                s[*k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|u| u.as_str() == Some(&user.to_string()))
            })
        })
}

/// Filters of the approval list.
#[derive(Debug, Default)]
pub struct ApprovalQuery<'a> {
    pub status: Option<&'a str>,
    pub object: Option<&'a str>,
    pub record_id: Option<Uuid>,
    /// Only those waiting for this user's decision on the current step.
    pub waiting_for: Option<Uuid>,
    /// Only those this user requested or is an approver of (for callers without
    /// `workflows:manage`).
    pub involving: Option<Uuid>,
    pub cursor: Option<&'a str>,
    pub limit: i64,
}

/// Approvals, newest first.
pub async fn list(tx: &mut TenantTx, q: ApprovalQuery<'_>) -> Result<Page<Approval>> {
    let before: Option<Uuid> = parse_cursor(q.cursor)?;
    let rows: Vec<Approval> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM approvals WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::text IS NULL OR object = $2) AND ($3::uuid IS NULL OR record_id = $3) \
           AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT 2000"
    ))
    .bind(q.status)
    .bind(q.object)
    .bind(q.record_id)
    .bind(before)
    .fetch_all(tx.conn())
    .await?;
    let mut items = Vec::new();
    for a in rows {
        if let Some(u) = q.waiting_for {
            let decided = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM approval_decisions WHERE approval_id = $1 AND step = $2 AND user_id = $3",
            )
            .bind(a.id)
            .bind(a.current_step)
            .bind(u)
            .fetch_one(tx.conn())
            .await?;
            if a.status != "pending" || !deciders(&a).contains(&u) || decided > 0 {
                continue;
            }
        }
        if let Some(u) = q.involving {
            if !involves(&a, u) {
                continue;
            }
        }
        items.push(a);
        if items.len() as i64 > q.limit {
            break;
        }
    }
    let next_cursor = cut_page(&mut items, q.limit, |a| a.id);
    Ok(Page { items, next_cursor })
}

async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Approval> {
    sqlx::query("SELECT id FROM approvals WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found(id))?;
    get(tx, id).await
}

/// Records a decision; completes the step, the approval, or rejects it.
pub async fn decide(
    tx: &mut TenantTx,
    actor: &Actor,
    user: Uuid,
    id: Uuid,
    approve: bool,
    comment: Option<&str>,
) -> Result<Approval> {
    let mut a = lock(tx, id).await?;
    if a.status != "pending" {
        return Err(Error::conflict(
            "approval.not_pending",
            format!("the approval is {}", a.status),
        ));
    }
    let step_index = a.current_step as usize;
    let step = a.steps[step_index].clone();
    let users: Vec<Uuid> = serde_json::from_value(step["users"].clone()).unwrap_or_default();
    let escalated: Vec<Uuid> =
        serde_json::from_value(step["escalated_to"].clone()).unwrap_or_default();
    if !users.contains(&user) && !escalated.contains(&user) {
        return Err(Error::forbidden(
            "approval.not_an_approver",
            format!(
                "you are not an approver of step {} of this approval",
                step_index + 1
            ),
        ));
    }
    if approve && a.requested_by == Some(user) {
        return Err(Error::forbidden(
            "approval.own_request",
            "you requested this approval, so someone else must approve it; recall it if it is no longer needed",
        ));
    }
    let done = sqlx::query(
        "INSERT INTO approval_decisions (approval_id, step, user_id, decision, comment) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (approval_id, step, user_id) DO NOTHING",
    )
    .bind(id)
    .bind(a.current_step)
    .bind(user)
    .bind(if approve { "approve" } else { "reject" })
    .bind(comment.map(|c| c.chars().take(2000).collect::<String>()))
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::conflict(
            "approval.already_decided",
            "you decided this step already",
        ));
    }
    if !approve {
        return finish(tx, actor, a, "rejected").await;
    }
    let approvals: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM approval_decisions WHERE approval_id = $1 AND step = $2 AND decision = 'approve'",
    )
    .bind(id)
    .bind(a.current_step)
    .fetch_all(tx.conn())
    .await?;
    let complete = escalated.contains(&user)
        || match step["mode"].as_str().unwrap_or("any") {
            "all" => users.iter().all(|u| approvals.contains(u)),
            "quorum" => approvals.len() as i64 >= step["quorum"].as_i64().unwrap_or(1),
            _ => true,
        };
    if !complete {
        return get(tx, id).await;
    }
    let last = a.steps.as_array().map_or(0, std::vec::Vec::len) - 1;
    if step_index >= last {
        return finish(tx, actor, a, "approved").await;
    }
    jobs::cancel_for(tx, ESCALATE_JOB, a.record_id, &[]).await?;
    start_step(tx, &mut a, step_index + 1).await?;
    get(tx, id).await
}

/// Ends an approval: status, event, follow-up actions, the requester told.
async fn finish(
    tx: &mut TenantTx,
    actor: &Actor,
    a: Approval,
    outcome: &'static str,
) -> Result<Approval> {
    sqlx::query(
        "UPDATE approvals SET status = $2, decided_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(a.id)
    .bind(outcome)
    .execute(tx.conn())
    .await?;
    jobs::cancel_for(tx, ESCALATE_JOB, a.record_id, &[]).await?;
    let object =
        ObjectKey::named(&a.object).ok_or_else(|| Error::internal("approval on unknown object"))?;
    let action = if outcome == "recalled" {
        "approval_recalled"
    } else {
        "approval_decided"
    };
    history::emit(
        tx,
        object,
        a.record_id,
        action,
        actor,
        json!({ "approval_id": a.id, "outcome": outcome, "rule_id": a.rule_id, "title": a.title }),
    )
    .await?;
    let actions = match outcome {
        "approved" => a.on_approve.as_array().cloned().unwrap_or_default(),
        "rejected" => a.on_reject.as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    };
    if let (Some(rule), false) = (a.rule_id, actions.is_empty()) {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT rule_version_id FROM approvals WHERE id = $1")
                .bind(a.id)
                .fetch_one(tx.conn())
                .await?;
        let origin = format!("approval:{}:{outcome}", a.id);
        jobs::enqueue(
            tx,
            NewJob::of(&FollowUp {
                rule_id: rule,
                rule_version_id: version,
                object: Some(a.object.clone()),
                record_id: Some(a.record_id),
                actions: serde_json::from_value(Value::Array(actions))
                    .map_err(|e| Error::internal(format!("stored follow-up effects: {e}")))?,
                origin: origin.clone(),
            })?
            .dedupe(origin.clone())
            .about(a.record_id),
        )
        .await?;
    }
    if let Some(requester) = a.requested_by {
        let title = format!(
            "审批{}：{}",
            match outcome {
                "approved" => "通过",
                "rejected" => "驳回",
                _ => "撤回",
            },
            a.title
        );
        notifications::create(
            tx,
            NewNotification {
                user_id: requester,
                kind: "approval.decided",
                title: &title,
                body: Some(&format!("{} ({outcome})", a.title)),
                record: Some((object.as_str(), a.record_id)),
                job_id: None,
            },
        )
        .await?;
    }
    get(tx, a.id).await
}

/// Recalls a pending approval (the requester, or a workflow manager).
pub async fn recall(
    tx: &mut TenantTx,
    actor: &Actor,
    user: Option<Uuid>,
    id: Uuid,
    may_manage: bool,
) -> Result<Approval> {
    let a = lock(tx, id).await?;
    if !(may_manage || (user.is_some() && a.requested_by == user)) {
        return Err(Error::forbidden(
            "approval.not_requester",
            "only the requester can recall an approval",
        ));
    }
    if a.status != "pending" {
        return Err(Error::conflict(
            "approval.not_pending",
            format!("the approval is {}", a.status),
        ));
    }
    finish(tx, actor, a, "recalled").await
}

/// Escalates a step still undecided when its timer fires.
pub struct EscalationJob;

#[async_trait::async_trait]
impl JobHandler for EscalationJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let Escalation {
            approval_id: id,
            step,
        } = job.payload_as()?;
        let mut a = match lock(tx, id).await {
            Ok(a) => a,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if a.status != "pending"
            || i64::from(a.current_step) != step
            || !a.steps[step as usize]["escalated_at"].is_null()
        {
            return Ok(());
        }
        let users: Vec<Uuid> =
            serde_json::from_value(a.steps[step as usize]["users"].clone()).unwrap_or_default();
        let mut to: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m.id FROM users u JOIN users m ON m.id = u.manager_id WHERE u.id = ANY($1) AND m.status = 'active'",
        )
        .bind(&users)
        .fetch_all(tx.conn())
        .await?;
        if to.is_empty() {
            let domain = tx.tenant().id.to_string();
            to = sqlx::query_scalar(
                "SELECT u.id FROM users u JOIN casbin_rule r ON r.ptype = 'g' AND r.v0 = 'u:' || u.id::text \
                   AND r.v1 = $1 AND r.v2 = $2 WHERE u.status = 'active'",
            )
            .bind(crm_core::authz::ADMIN_ROLE)
            .bind(domain)
            .fetch_all(tx.conn())
            .await?;
        }
        let mut steps = a.steps.as_array().cloned().unwrap_or_default();
        steps[step as usize]["escalated_at"] = json!(Utc::now());
        steps[step as usize]["escalated_to"] = json!(to);
        a.steps = Value::Array(steps);
        sqlx::query("UPDATE approvals SET steps = $2, updated_at = now() WHERE id = $1")
            .bind(a.id)
            .bind(&a.steps)
            .execute(tx.conn())
            .await?;
        let object = ObjectKey::named(&a.object)
            .ok_or_else(|| JobFailure::Permanent("unknown object".into()))?;
        let title = format!("审批已升级：{}", a.title);
        for u in &to {
            notifications::create(
                tx,
                NewNotification {
                    user_id: *u,
                    kind: "approval.escalated",
                    title: &title,
                    body: Some(&format!(
                        "Escalated: step {} of \"{}\" is still undecided",
                        step + 1,
                        a.title
                    )),
                    record: Some((object.as_str(), a.record_id)),
                    job_id: None,
                },
            )
            .await?;
        }
        history::emit(
            tx,
            object,
            a.record_id,
            "approval_escalated",
            &Actor::system(),
            json!({ "approval_id": a.id, "step": step, "escalated_to": to }),
        )
        .await?;
        Ok(())
    }

    fn transactional(&self) -> bool {
        true
    }
}
