//! The ticket hooks around the record engine: status machine, SLA bookkeeping and timers,
//! team assignment, and the notices a ticket's life sends. The engine writes the record (with
//! its history and `ticket.created|updated` events); these hooks then maintain the derived
//! SLA columns in the same transaction.

use super::assignment;
use super::notices;
use super::sla;
use super::workflow::{self, SlaClock, State, StateCategory, Workflow};
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::business_hours::BusinessCalendar;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob};
use crm_core::mail::{self, Lang, OutgoingMail};
use crm_core::notifications::{self, NewNotification};
use crm_records::engine::Input;
use crm_records::history;
use crm_records::meta::ObjectKey;
use crm_records::schema::ObjectSchema;
use crm_records::values::SqlValue;
use serde_json::{json, Value};
use sqlx::FromRow;
use uuid::Uuid;

/// The SLA timer job kind.
pub const SLA_JOB: &str = "ticket.sla";

/// An SLA timer of a ticket (the job's subject): which target (`first_response` or
/// `resolution`) and which event (`warning` or `breach`).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SlaTimer {
    pub target: String,
    pub event: String,
}

impl crm_core::jobs::Payload for SlaTimer {
    const KIND: &'static str = SLA_JOB;
}

/// The SLA-relevant state of a ticket.
#[derive(Debug, Clone, FromRow)]
pub struct SlaRow {
    pub number: String,
    pub subject: String,
    pub status: String,
    pub priority: String,
    #[sqlx(rename = "type")]
    pub ticket_type: Option<String>,
    pub customer_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub assignee_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub sla_policy_id: Option<Uuid>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    pub first_responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub sla_paused_at: Option<DateTime<Utc>>,
    pub paused_seconds: i64,
    pub first_response_warned_at: Option<DateTime<Utc>>,
    pub first_response_breached_at: Option<DateTime<Utc>>,
    pub resolution_warned_at: Option<DateTime<Utc>>,
    pub resolution_breached_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub live: bool,
}

const SLA_COLUMNS: &str = "number, subject, status, priority, type, customer_id, contact_id, \
    assignee_id, team_id, sla_policy_id, first_response_due_at, resolution_due_at, \
    first_responded_at, resolved_at, sla_paused_at, paused_seconds, first_response_warned_at, \
    first_response_breached_at, resolution_warned_at, resolution_breached_at, created_at, \
    deleted_at IS NULL AS live";

/// A ticket's SLA state, locked for update.
pub async fn load(tx: &mut TenantTx, id: Uuid) -> Result<SlaRow> {
    sqlx::query_as(&format!(
        "SELECT {SLA_COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| Error::not_found("record.not_found", format!("ticket {id} not found")))
}

fn text(input: &Input<'_>, key: &str) -> Option<Option<String>> {
    match input.get(key) {
        Some(SqlValue::Text(t)) => Some(Some(t.clone())),
        Some(_) => Some(None),
        None => None,
    }
}

fn uuid_of(input: &Input<'_>, key: &str) -> Option<Option<Uuid>> {
    match input.get(key) {
        Some(SqlValue::Uuid(u)) => Some(Some(*u)),
        Some(_) => Some(None),
        None => None,
    }
}

async fn check_team(tx: &mut TenantTx, team: Uuid) -> Result<()> {
    let exists: Option<Uuid> = sqlx::query_scalar("SELECT id FROM teams WHERE id = $1")
        .bind(team)
        .fetch_optional(tx.conn())
        .await?;
    exists.map(|_| ()).ok_or_else(|| {
        Error::invalid_field("team_id", "unknown_reference", format!("no team {team}"))
    })
}

/// Validates and completes a new ticket: initial status, known type and team.
pub async fn prepare_create<'s>(
    tx: &mut TenantTx,
    schema: &'s ObjectSchema,
    input: &mut Input<'s>,
) -> Result<()> {
    let wf = workflow::load(tx).await?;
    match text(input, "status") {
        Some(Some(status)) => match wf.state(&status) {
            Some(s) if s.category == StateCategory::Open => {}
            Some(_) => {
                return Err(Error::invalid_field(
                    "status",
                    "invalid",
                    "a new ticket starts in an open state; resolve it afterwards",
                ))
            }
            None => {
                return Err(Error::invalid_field(
                    "status",
                    "unknown_status",
                    format!("use one of: {}", wf.keys().join(", ")),
                ))
            }
        },
        _ => input.set(schema, "status", SqlValue::Text(wf.initial.clone())),
    }
    if let Some(Some(ty)) = text(input, "type") {
        wf.check_type(&ty)?;
    }
    if let Some(Some(team)) = uuid_of(input, "team_id") {
        check_team(tx, team).await?;
    }
    Ok(())
}

/// Validates a change: the status transition, type and team.
pub async fn prepare_update(tx: &mut TenantTx, input: &Input<'_>, current: &Value) -> Result<()> {
    let wf = workflow::load(tx).await?;
    match text(input, "status") {
        Some(Some(to)) => {
            let from = current["status"].as_str().unwrap_or_default();
            wf.check_transition(from, &to)?;
        }
        Some(None) => {
            return Err(Error::invalid_field(
                "status",
                "required",
                "a ticket always has a status",
            ))
        }
        None => {}
    }
    if let Some(Some(ty)) = text(input, "type") {
        wf.check_type(&ty)?;
    }
    if let Some(Some(team)) = uuid_of(input, "team_id") {
        check_team(tx, team).await?;
    }
    Ok(())
}

/// After the engine inserted a ticket: assign it, start its SLA clocks, tell the assignee.
pub async fn after_create(tx: &mut TenantTx, id: Uuid, actor: &Actor) -> Result<()> {
    let row = load(tx, id).await?;
    if row.assignee_id.is_none() {
        if let Some(team) = row.team_id {
            auto_assign(tx, id, team, None, actor).await?;
        }
    } else {
        announce_assignment(tx, id, None, row.assignee_id, actor).await?;
    }
    let wf = workflow::load(tx).await?;
    let runs = wf.state(&row.status).is_some_and(clock_runs);
    if !runs {
        sqlx::query("UPDATE tickets SET sla_paused_at = created_at WHERE id = $1")
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    refresh_sla(tx, id, true).await
}

/// After the engine updated a ticket: status effects, reassignment, SLA.
pub async fn after_update(
    tx: &mut TenantTx,
    id: Uuid,
    before: &Value,
    after: &Value,
    actor: &Actor,
) -> Result<()> {
    let changed = |k: &str| before[k] != after[k];
    let as_uuid = |v: &Value| v.as_str().and_then(|s| Uuid::parse_str(s).ok());
    if changed("status") {
        let from = before["status"].as_str().unwrap_or_default().to_owned();
        let to = after["status"].as_str().unwrap_or_default().to_owned();
        apply_status(tx, id, &from, &to, actor).await?;
    }
    if changed("assignee_id") {
        announce_assignment(
            tx,
            id,
            as_uuid(&before["assignee_id"]),
            as_uuid(&after["assignee_id"]),
            actor,
        )
        .await?;
    } else if changed("team_id") && after["assignee_id"].is_null() {
        if let Some(team) = as_uuid(&after["team_id"]) {
            auto_assign(tx, id, team, None, actor).await?;
        }
    }
    let rematch = changed("priority") || changed("type") || changed("customer_id");
    refresh_sla(tx, id, rematch).await
}

fn clock_runs(state: &State) -> bool {
    state.sla == SlaClock::Counting && state.category == StateCategory::Open
}

/// The calendar SLA time of a ticket is measured in: its policy's, else the default one.
async fn calendar_of(tx: &mut TenantTx, row: &SlaRow) -> Result<BusinessCalendar> {
    let id = match row.sla_policy_id {
        Some(p) => Some(sla::policy(tx, p).await?.calendar_id),
        None => None,
    };
    let id =
        match id {
            Some(id) => id,
            None => sqlx::query_scalar(
                "SELECT id FROM business_calendars ORDER BY is_default DESC, created_at LIMIT 1",
            )
            .fetch_one(tx.conn())
            .await?,
        };
    sla::business_calendar(tx, id).await
}

/// Net business seconds of a ticket at `now`: business time since creation minus paused.
fn net_seconds(cal: &BusinessCalendar, row: &SlaRow, now: DateTime<Utc>) -> i64 {
    let paused_now = row
        .sla_paused_at
        .map_or(0, |p| cal.business_seconds_between(p, now));
    (cal.business_seconds_between(row.created_at, now) - row.paused_seconds - paused_now).max(0)
}

/// A status change: pause or resume the clock, resolve, close or reopen.
async fn apply_status(
    tx: &mut TenantTx,
    id: Uuid,
    from: &str,
    to: &str,
    actor: &Actor,
) -> Result<()> {
    let wf: Workflow = workflow::load(tx).await?;
    let (Some(from_state), Some(to_state)) = (wf.state(from).cloned(), wf.state(to).cloned())
    else {
        return Ok(());
    };
    let row = load(tx, id).await?;
    let cal = calendar_of(tx, &row).await?;
    let now = Utc::now();
    let net = net_seconds(&cal, &row, now);
    let mut paused_at = row.sla_paused_at;
    let mut paused_seconds = row.paused_seconds;
    match (paused_at, clock_runs(&to_state)) {
        (None, false) => paused_at = Some(now),
        (Some(p), true) => {
            paused_seconds += cal.business_seconds_between(p, now);
            paused_at = None;
        }
        _ => {}
    }
    let was_done = from_state.category != StateCategory::Open;
    let (resolved_sql, closed_sql) = match to_state.category {
        StateCategory::Resolved => ("COALESCE(resolved_at, $4)", "NULL"),
        StateCategory::Closed => ("COALESCE(resolved_at, $4)", "COALESCE(closed_at, $4)"),
        StateCategory::Open => ("NULL", "NULL"),
    };
    let resolution_sql = if to_state.category == StateCategory::Open {
        "NULL"
    } else {
        "COALESCE(resolution_seconds, $5)"
    };
    sqlx::query(&format!(
        "UPDATE tickets SET sla_paused_at = $2, paused_seconds = $3, status_changed_at = $4, \
           resolved_at = {resolved_sql}, closed_at = {closed_sql}, resolution_seconds = {resolution_sql} \
         WHERE id = $1"
    ))
    .bind(id)
    .bind(paused_at)
    .bind(paused_seconds)
    .bind(now)
    .bind(net)
    .execute(tx.conn())
    .await?;
    history::emit(
        tx,
        ObjectKey::Tickets,
        id,
        "status_changed",
        actor,
        json!({ "from": from, "to": to, "number": row.number }),
    )
    .await?;
    if to_state.category == StateCategory::Resolved && !was_done {
        super::csat::on_resolved(tx, id).await?;
    }
    Ok(())
}

/// Records the first public staff reply (stops the first-response clock).
pub async fn record_first_response(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let row = load(tx, id).await?;
    if row.first_responded_at.is_some() {
        return Ok(());
    }
    let cal = calendar_of(tx, &row).await?;
    let now = Utc::now();
    let net = net_seconds(&cal, &row, now);
    sqlx::query(
        "UPDATE tickets SET first_responded_at = $2, first_response_seconds = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(net)
    .execute(tx.conn())
    .await?;
    refresh_sla(tx, id, false).await
}

/// Recomputes the policy (when `rematch`) and due times, and reschedules the SLA timers.
pub async fn refresh_sla(tx: &mut TenantTx, id: Uuid, rematch: bool) -> Result<()> {
    let row = load(tx, id).await?;
    let policy = if rematch || row.sla_policy_id.is_none() {
        let level: Option<String> = match row.customer_id {
            Some(c) => sqlx::query_scalar("SELECT level FROM customers WHERE id = $1")
                .bind(c)
                .fetch_optional(tx.conn())
                .await?
                .flatten(),
            None => None,
        };
        sla::matching(
            tx,
            &row.priority,
            row.ticket_type.as_deref(),
            level.as_deref(),
        )
        .await?
        .map(|(p, _)| p)
    } else {
        match row.sla_policy_id {
            Some(p) => Some(sla::policy(tx, p).await?),
            None => None,
        }
    };
    let Some(policy) = policy else {
        sqlx::query(
            "UPDATE tickets SET sla_policy_id = NULL, first_response_due_at = NULL, resolution_due_at = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(tx.conn())
        .await?;
        return schedule_timers(tx, id).await;
    };
    let cal = sla::business_calendar(tx, policy.calendar_id).await?;
    // Paused: due times stay frozen until the clock runs again.
    if row.sla_paused_at.is_none() {
        let due = |minutes: Option<i32>,
                   met: Option<DateTime<Utc>>,
                   current: Option<DateTime<Utc>>| match (minutes, met) {
            (Some(m), None) => Some(sla::due_at(
                &cal,
                row.created_at,
                i64::from(m) * 60,
                row.paused_seconds,
            )),
            (Some(_), Some(_)) => current,
            (None, _) => None,
        };
        let fr = due(
            policy.first_response_minutes,
            row.first_responded_at,
            row.first_response_due_at,
        );
        let res = due(
            policy.resolution_minutes,
            row.resolved_at,
            row.resolution_due_at,
        );
        sqlx::query(
            "UPDATE tickets SET sla_policy_id = $2, first_response_due_at = $3, resolution_due_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(policy.id)
        .bind(fr)
        .bind(res)
        .execute(tx.conn())
        .await?;
    } else {
        sqlx::query("UPDATE tickets SET sla_policy_id = $2 WHERE id = $1")
            .bind(id)
            .bind(policy.id)
            .execute(tx.conn())
            .await?;
    }
    schedule_timers(tx, id).await
}

/// The SLA targets of a ticket: (name, minutes, met at, due, warned, breached).
type Target = (
    &'static str,
    Option<i32>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn targets(row: &SlaRow, policy: &sla::Policy) -> [Target; 2] {
    [
        (
            "first_response",
            policy.first_response_minutes,
            row.first_responded_at,
            row.first_response_due_at,
            row.first_response_warned_at,
            row.first_response_breached_at,
        ),
        (
            "resolution",
            policy.resolution_minutes,
            row.resolved_at,
            row.resolution_due_at,
            row.resolution_warned_at,
            row.resolution_breached_at,
        ),
    ]
}

/// When each pending SLA event of a ticket is due: (target, event, at).
fn pending_events(
    row: &SlaRow,
    policy: &sla::Policy,
    cal: &BusinessCalendar,
) -> Vec<(&'static str, &'static str, DateTime<Utc>)> {
    let mut out = Vec::new();
    if !row.live || row.sla_paused_at.is_some() {
        return out;
    }
    for (target, minutes, met, due, warned, breached) in targets(row, policy) {
        let (Some(minutes), None, Some(due)) = (minutes, met, due) else {
            continue;
        };
        if warned.is_none() {
            let at = sla::due_at(
                cal,
                row.created_at,
                i64::from(minutes) * 48,
                row.paused_seconds,
            );
            out.push((target, "warning", at));
        }
        if breached.is_none() {
            out.push((target, "breach", due));
        }
    }
    out
}

/// (Re)schedules the ticket's SLA timer jobs to match its current state; cancels the rest.
async fn schedule_timers(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let row = load(tx, id).await?;
    let mut keys = Vec::new();
    if let Some(policy_id) = row.sla_policy_id {
        let policy = sla::policy(tx, policy_id).await?;
        let cal = sla::business_calendar(tx, policy.calendar_id).await?;
        for (target, event, at) in pending_events(&row, &policy, &cal) {
            let key = format!("{SLA_JOB}:{id}:{target}:{event}:{}", at.timestamp_millis());
            jobs::enqueue(
                tx,
                NewJob::of(&SlaTimer {
                    target: target.to_owned(),
                    event: event.to_owned(),
                })?
                .dedupe(key.clone())
                .about(id)
                .at(at),
            )
            .await?;
            keys.push(key);
        }
    }
    jobs::cancel_for(tx, SLA_JOB, id, &keys).await?;
    Ok(())
}

/// Picks an assignee in `team` by its assignment mode and records it (history + event).
async fn auto_assign(
    tx: &mut TenantTx,
    id: Uuid,
    team: Uuid,
    before: Option<Uuid>,
    actor: &Actor,
) -> Result<()> {
    let Some(user) = assignment::pick(tx, team).await? else {
        return Ok(());
    };
    sqlx::query("UPDATE tickets SET assignee_id = $2 WHERE id = $1")
        .bind(id)
        .bind(user)
        .execute(tx.conn())
        .await?;
    history::record(
        tx,
        ObjectKey::Tickets,
        id,
        "assigned",
        &Actor::system(),
        &json!({ "assignee_id": { "before": before, "after": user }, "team_id": { "before": team, "after": team } }),
    )
    .await?;
    announce_assignment(tx, id, before, Some(user), actor).await
}

/// `ticket.assigned` event, in-app notice and mail to the new assignee.
async fn announce_assignment(
    tx: &mut TenantTx,
    id: Uuid,
    before: Option<Uuid>,
    after: Option<Uuid>,
    actor: &Actor,
) -> Result<()> {
    history::emit(
        tx,
        ObjectKey::Tickets,
        id,
        "assigned",
        actor,
        json!({ "from": before, "to": after }),
    )
    .await?;
    let Some(user) = after else {
        return Ok(());
    };
    if actor.id == Some(user) {
        return Ok(());
    }
    let row = load(tx, id).await?;
    let Some(to) = notices::staff(tx, user).await? else {
        return Ok(());
    };
    let (subject, text) = notices::ticket_assigned(to.lang, &to.name, &row.number, &row.subject);
    notifications::create(
        tx,
        NewNotification {
            user_id: user,
            kind: "ticket.assigned",
            title: &subject,
            body: Some(&text),
            record: Some((ObjectKey::Tickets.as_str(), id)),
            job_id: None,
        },
    )
    .await?;
    let key = format!("mail:ticket.assigned:{id}:{user}:{}", Uuid::now_v7());
    mail::enqueue(
        tx,
        &OutgoingMail {
            to: vec![to.email],
            subject,
            text,
            purpose: "ticket.assigned".into(),
        },
        key,
        Some(id),
    )
    .await?;
    Ok(())
}

/// The `ticket.sla` timer job: emits `ticket.sla_warning` / `ticket.sla_breached` once per
/// target (the ticket's `*_warned_at` / `*_breached_at` columns say it happened).
pub struct SlaTimerJob;

#[async_trait::async_trait]
impl JobHandler for SlaTimerJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let Some(id) = job.subject_id else {
            return Err(JobFailure::Permanent("SLA timer without a ticket".into()));
        };
        let SlaTimer { target, event } = job.payload_as()?;
        let row = match load(tx, id).await {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(policy_id) = row.sla_policy_id else {
            return Ok(());
        };
        let policy = sla::policy(tx, policy_id).await?;
        let cal = sla::business_calendar(tx, policy.calendar_id).await?;
        // Still due now? A ticket changed since the job was scheduled has newer timers.
        let due = pending_events(&row, &policy, &cal)
            .into_iter()
            .find(|(t, e, _)| *t == target && *e == event);
        let Some((_, _, at)) = due else {
            return Ok(());
        };
        if at > Utc::now() + chrono::Duration::seconds(1) {
            return Ok(());
        }
        let (column, name) = match (target.as_str(), event.as_str()) {
            ("first_response", "warning") => ("first_response_warned_at", "sla_warning"),
            ("first_response", "breach") => ("first_response_breached_at", "sla_breached"),
            ("resolution", "warning") => ("resolution_warned_at", "sla_warning"),
            ("resolution", "breach") => ("resolution_breached_at", "sla_breached"),
            _ => {
                return Err(JobFailure::Permanent(format!(
                    "unknown SLA timer {target}/{event}"
                )))
            }
        };
        sqlx::query(&format!(
            "UPDATE tickets SET {column} = now() WHERE id = $1 AND {column} IS NULL"
        ))
        .bind(id)
        .execute(tx.conn())
        .await?;
        let due_at = match target.as_str() {
            "first_response" => row.first_response_due_at,
            _ => row.resolution_due_at,
        };
        history::emit(
            tx,
            ObjectKey::Tickets,
            id,
            name,
            &Actor::system(),
            json!({ "target": target, "due_at": due_at, "number": row.number, "priority": row.priority }),
        )
        .await?;
        if event == "warning" {
            warn_team(tx, id, &row, &target, due_at, job.id).await?;
        }
        Ok(())
    }
}

/// Notifies and mails the ticket's team (or its assignee when it has no team) of a warning.
async fn warn_team(
    tx: &mut TenantTx,
    id: Uuid,
    row: &SlaRow,
    target: &str,
    due: Option<DateTime<Utc>>,
    job: i64,
) -> Result<()> {
    let mut people: Vec<Uuid> = match row.team_id {
        Some(team) => {
            sqlx::query_scalar(
                "SELECT m.user_id FROM team_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = $1 AND u.status = 'active' ORDER BY m.user_id",
            )
            .bind(team)
            .fetch_all(tx.conn())
            .await?
        }
        None => Vec::new(),
    };
    if let Some(a) = row.assignee_id {
        if !people.contains(&a) {
            people.push(a);
        }
    }
    let timezone: String = sqlx::query_scalar("SELECT timezone FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let mut to = Vec::new();
    let mut lang = None;
    for user in people {
        let Some(staff) = notices::staff(tx, user).await? else {
            continue;
        };
        let due_text = due
            .map(|d| notices::local_time(d, &timezone))
            .unwrap_or_default();
        let (subject, text) =
            notices::sla_warning(staff.lang, &row.number, &row.subject, target, &due_text);
        notifications::create(
            tx,
            NewNotification {
                user_id: user,
                kind: "ticket.sla_warning",
                title: &subject,
                body: Some(&text),
                record: Some((ObjectKey::Tickets.as_str(), id)),
                job_id: None,
            },
        )
        .await?;
        lang.get_or_insert(staff.lang);
        to.push(staff.email);
    }
    if to.is_empty() {
        return Ok(());
    }
    let tenant_lang: String = sqlx::query_scalar("SELECT locale FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let lang = lang.unwrap_or_else(|| Lang::of(Some(&tenant_lang)));
    let due_text = due
        .map(|d| notices::local_time(d, &timezone))
        .unwrap_or_default();
    let (subject, text) = notices::sla_warning(lang, &row.number, &row.subject, target, &due_text);
    mail::enqueue(
        tx,
        &OutgoingMail {
            to,
            subject,
            text,
            purpose: "ticket.sla_warning".into(),
        },
        format!("mail:ticket.sla_warning:{job}"),
        Some(id),
    )
    .await?;
    Ok(())
}
