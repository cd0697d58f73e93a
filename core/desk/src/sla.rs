//! SLA policies and business-hours calendars: which targets a ticket gets (first response,
//! resolution, in business minutes) and when they fall due.
//!
//! Due times follow one rule: a target of T business seconds is due when the ticket's *net*
//! business time — business time since creation minus business time spent paused — reaches T,
//! i.e. at `add_business_seconds(created_at, T + paused_seconds)` while the clock runs. Pausing
//! freezes the due times; resuming adds the pause and recomputes them, so they shift by exactly
//! the business time spent paused.

use chrono::{DateTime, Utc};
use crm_core::authz::{Caller, Permission};
use crm_core::business_hours::{BusinessCalendar, CalendarSpec};
use crm_core::db::TenantTx;
use crm_core::error::{unique_violation, Error, FieldError, Result};
use crm_records::meta::TICKET_PRIORITIES;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

/// A business-hours calendar.
#[derive(Debug, Clone, Serialize)]
pub struct Calendar {
    pub id: Uuid,
    pub name: String,
    pub spec: CalendarSpec,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type CalendarRow = (
    Uuid,
    String,
    Json<CalendarSpec>,
    bool,
    DateTime<Utc>,
    DateTime<Utc>,
);

const CALENDAR_COLUMNS: &str = "id, name, spec, is_default, created_at, updated_at";

fn calendar(r: CalendarRow) -> Calendar {
    Calendar {
        id: r.0,
        name: r.1,
        spec: r.2 .0,
        is_default: r.3,
        created_at: r.4,
        updated_at: r.5,
    }
}

/// Longest name of a calendar or policy, in characters after trimming.
pub const NAME_MAX_CHARS: usize = 100;

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
        return Err(Error::invalid_field(
            "name",
            "invalid",
            format!("give it a name of 1-{NAME_MAX_CHARS} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_spec(spec: &CalendarSpec) -> Result<()> {
    BusinessCalendar::new(spec).map(|_| ()).map_err(|errors| {
        Error::invalid(
            errors
                .into_iter()
                .map(|e| FieldError::new(format!("spec.{}", e.field), e.code, e.message))
                .collect(),
        )
    })
}

fn calendar_name_taken(e: sqlx::Error, name: &str) -> Error {
    match unique_violation(&e) {
        Some(_) => Error::conflict(
            "calendar.exists",
            format!("a calendar named '{name}' exists already"),
        ),
        None => e.into(),
    }
}

/// Every calendar, the default first (`tickets:read`).
pub async fn list_calendars(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Calendar>> {
    caller.require(Permission::TicketsRead)?;
    let rows: Vec<CalendarRow> = sqlx::query_as(&format!(
        "SELECT {CALENDAR_COLUMNS} FROM business_calendars ORDER BY is_default DESC, name"
    ))
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(calendar).collect())
}

/// One calendar (`tickets:read`).
pub async fn get_calendar(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Calendar> {
    caller.require(Permission::TicketsRead)?;
    calendar_by_id(tx, id).await
}

async fn calendar_by_id(tx: &mut TenantTx, id: Uuid) -> Result<Calendar> {
    let row: Option<CalendarRow> = sqlx::query_as(&format!(
        "SELECT {CALENDAR_COLUMNS} FROM business_calendars WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.map(calendar)
        .ok_or_else(|| Error::not_found("calendar.not_found", format!("no calendar {id}")))
}

/// Creates a calendar; `is_default` moves the default to it (`tenant:manage`).
pub async fn create_calendar(
    tx: &mut TenantTx,
    caller: &Caller,
    name: &str,
    spec: &CalendarSpec,
    is_default: bool,
) -> Result<Calendar> {
    caller.require(Permission::TenantManage)?;
    let name = check_name(name)?;
    check_spec(spec)?;
    if is_default {
        sqlx::query("UPDATE business_calendars SET is_default = false WHERE is_default")
            .execute(tx.conn())
            .await?;
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO business_calendars (id, name, spec, is_default) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&name)
    .bind(Json(spec))
    .bind(is_default)
    .execute(tx.conn())
    .await
    .map_err(|e| calendar_name_taken(e, &name))?;
    calendar_by_id(tx, id).await
}

/// Replaces a calendar (`tenant:manage`). Due times of open tickets move when their clock
/// next changes.
pub async fn update_calendar(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    name: &str,
    spec: &CalendarSpec,
    is_default: bool,
) -> Result<Calendar> {
    caller.require(Permission::TenantManage)?;
    let name = check_name(name)?;
    check_spec(spec)?;
    let current = calendar_by_id(tx, id).await?;
    if current.is_default && !is_default {
        return Err(Error::conflict(
            "calendar.default_required",
            "one calendar must stay the default: make another calendar the default instead",
        ));
    }
    if is_default {
        sqlx::query(
            "UPDATE business_calendars SET is_default = false WHERE is_default AND id <> $1",
        )
        .bind(id)
        .execute(tx.conn())
        .await?;
    }
    sqlx::query(
        "UPDATE business_calendars SET name = $2, spec = $3, is_default = $4, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&name)
    .bind(Json(spec))
    .bind(is_default)
    .execute(tx.conn())
    .await
    .map_err(|e| calendar_name_taken(e, &name))?;
    calendar_by_id(tx, id).await
}

/// Deletes a calendar no policy uses (never the default; `tenant:manage`).
pub async fn delete_calendar(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<()> {
    caller.require(Permission::TenantManage)?;
    let current = calendar_by_id(tx, id).await?;
    if current.is_default {
        return Err(Error::conflict(
            "calendar.default_required",
            "the default calendar cannot be deleted: make another calendar the default first",
        ));
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_policies WHERE calendar_id = $1")
        .bind(id)
        .fetch_one(tx.conn())
        .await?;
    if users > 0 {
        return Err(Error::conflict(
            "calendar.in_use",
            format!("{users} SLA policies use this calendar; move them to another calendar first"),
        ));
    }
    sqlx::query("DELETE FROM business_calendars WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// An SLA policy.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Policy {
    pub id: Uuid,
    pub name: String,
    pub position: i32,
    pub priorities: Vec<String>,
    pub types: Vec<String>,
    pub customer_levels: Vec<String>,
    pub first_response_minutes: Option<i32>,
    pub resolution_minutes: Option<i32>,
    pub calendar_id: Uuid,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const POLICY_COLUMNS: &str = "id, name, position, priorities, types, customer_levels, \
    first_response_minutes, resolution_minutes, calendar_id, enabled, created_at, updated_at";

/// What an admin sends to create or replace a policy.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyInput {
    pub name: String,
    /// Lower is tried first; default: after the last.
    pub position: Option<i32>,
    /// Conditions; empty matches any.
    pub priorities: Vec<String>,
    pub types: Vec<String>,
    pub customer_levels: Vec<String>,
    pub first_response_minutes: Option<i32>,
    pub resolution_minutes: Option<i32>,
    /// Default: the default calendar.
    pub calendar_id: Option<Uuid>,
    pub enabled: bool,
}

/// Customer levels a policy can match.
pub const LEVELS: &[&str] = &["A", "B", "C", "D"];
/// Shortest target, in business minutes.
pub const MIN_TARGET_MINUTES: i32 = 1;
/// Longest target, in business minutes: a year.
pub const MAX_TARGET_MINUTES: i32 = 525_600;

async fn check_policy(tx: &mut TenantTx, input: &PolicyInput) -> Result<(String, Uuid)> {
    let mut errors = Vec::new();
    let name = match check_name(&input.name) {
        Ok(n) => n,
        Err(_) => {
            errors.push(FieldError::new(
                "name",
                "invalid",
                format!("give it a name of 1-{NAME_MAX_CHARS} characters"),
            ));
            String::new()
        }
    };
    for (i, p) in input.priorities.iter().enumerate() {
        if !TICKET_PRIORITIES.contains(&p.as_str()) {
            errors.push(FieldError::new(
                format!("priorities[{i}]"),
                "unknown_priority",
                format!("use one of: {}", TICKET_PRIORITIES.join(", ")),
            ));
        }
    }
    for (i, l) in input.customer_levels.iter().enumerate() {
        if !LEVELS.contains(&l.as_str()) {
            errors.push(FieldError::new(
                format!("customer_levels[{i}]"),
                "unknown_level",
                format!("use one of: {}", LEVELS.join(", ")),
            ));
        }
    }
    let workflow = super::workflow::load(tx).await?;
    for (i, t) in input.types.iter().enumerate() {
        if !workflow.types.contains(t) {
            errors.push(FieldError::new(
                format!("types[{i}]"),
                "unknown_type",
                format!("use one of: {}", workflow.types.join(", ")),
            ));
        }
    }
    for (field, value) in [
        ("first_response_minutes", input.first_response_minutes),
        ("resolution_minutes", input.resolution_minutes),
    ] {
        if value.is_some_and(|m| !(MIN_TARGET_MINUTES..=MAX_TARGET_MINUTES).contains(&m)) {
            errors.push(FieldError::new(
                field,
                "out_of_range",
                format!(
                    "use {MIN_TARGET_MINUTES} to {MAX_TARGET_MINUTES} business minutes (a year)"
                ),
            ));
        }
    }
    if input.first_response_minutes.is_none() && input.resolution_minutes.is_none() {
        errors.push(FieldError::new(
            "first_response_minutes",
            "required",
            "set first_response_minutes, resolution_minutes or both",
        ));
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    let calendar = match input.calendar_id {
        Some(id) => {
            calendar_by_id(tx, id)
                .await
                .map_err(|_| {
                    Error::invalid_field(
                        "calendar_id",
                        "unknown_reference",
                        format!("no calendar {id}"),
                    )
                })?
                .id
        }
        None => default_calendar(tx).await?.id,
    };
    Ok((name, calendar))
}

async fn default_calendar(tx: &mut TenantTx) -> Result<Calendar> {
    let row: Option<CalendarRow> = sqlx::query_as(&format!(
        "SELECT {CALENDAR_COLUMNS} FROM business_calendars ORDER BY is_default DESC, created_at LIMIT 1"
    ))
    .fetch_optional(tx.conn())
    .await?;
    row.map(calendar)
        .ok_or_else(|| Error::conflict("calendar.none", "create a business calendar first"))
}

/// SLA policies in the order they are tried (`tickets:read`).
pub async fn list_policies(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Policy>> {
    caller.require(Permission::TicketsRead)?;
    Ok(sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies ORDER BY position, created_at"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// One SLA policy (`tickets:read`).
pub async fn get_policy(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Policy> {
    caller.require(Permission::TicketsRead)?;
    policy(tx, id).await
}

/// A policy by id, for the ticket hooks.
pub(crate) async fn policy(tx: &mut TenantTx, id: Uuid) -> Result<Policy> {
    sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| Error::not_found("sla_policy.not_found", format!("no SLA policy {id}")))
}

/// Adds a policy (`tenant:manage`).
pub async fn create_policy(
    tx: &mut TenantTx,
    caller: &Caller,
    input: &PolicyInput,
) -> Result<Policy> {
    caller.require(Permission::TenantManage)?;
    let (name, calendar) = check_policy(tx, input).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sla_policies (id, name, position, priorities, types, customer_levels, \
           first_response_minutes, resolution_minutes, calendar_id, enabled) \
         VALUES ($1, $2, COALESCE($3, (SELECT COALESCE(max(position), 0) + 10 FROM sla_policies)), \
           $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(&name)
    .bind(input.position)
    .bind(&input.priorities)
    .bind(&input.types)
    .bind(&input.customer_levels)
    .bind(input.first_response_minutes)
    .bind(input.resolution_minutes)
    .bind(calendar)
    .bind(input.enabled)
    .execute(tx.conn())
    .await?;
    policy(tx, id).await
}

/// Replaces a policy (`tenant:manage`). Tickets keep the due times they have until their
/// clock next changes.
pub async fn update_policy(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    input: &PolicyInput,
) -> Result<Policy> {
    caller.require(Permission::TenantManage)?;
    policy(tx, id).await?;
    let (name, calendar) = check_policy(tx, input).await?;
    sqlx::query(
        "UPDATE sla_policies SET name = $2, position = COALESCE($3, position), priorities = $4, \
           types = $5, customer_levels = $6, first_response_minutes = $7, resolution_minutes = $8, \
           calendar_id = $9, enabled = $10, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&name)
    .bind(input.position)
    .bind(&input.priorities)
    .bind(&input.types)
    .bind(&input.customer_levels)
    .bind(input.first_response_minutes)
    .bind(input.resolution_minutes)
    .bind(calendar)
    .bind(input.enabled)
    .execute(tx.conn())
    .await?;
    policy(tx, id).await
}

/// Deletes a policy (`tenant:manage`); tickets under it keep their due times but get no new
/// ones.
pub async fn delete_policy(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<()> {
    caller.require(Permission::TenantManage)?;
    let done = sqlx::query("DELETE FROM sla_policies WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(
            "sla_policy.not_found",
            format!("no SLA policy {id}"),
        ));
    }
    Ok(())
}

/// The policy a ticket gets, with its calendar: the first enabled one whose conditions match.
pub async fn matching(
    tx: &mut TenantTx,
    priority: &str,
    ticket_type: Option<&str>,
    customer_level: Option<&str>,
) -> Result<Option<(Policy, BusinessCalendar)>> {
    let policy: Option<Policy> = sqlx::query_as(&format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE enabled \
           AND (cardinality(priorities) = 0 OR $1 = ANY(priorities)) \
           AND (cardinality(types) = 0 OR $2 = ANY(types)) \
           AND (cardinality(customer_levels) = 0 OR $3 = ANY(customer_levels)) \
         ORDER BY position, created_at LIMIT 1"
    ))
    .bind(priority)
    .bind(ticket_type)
    .bind(customer_level)
    .fetch_optional(tx.conn())
    .await?;
    let Some(policy) = policy else {
        return Ok(None);
    };
    let cal = business_calendar(tx, policy.calendar_id).await?;
    Ok(Some((policy, cal)))
}

/// A calendar ready to compute with.
pub async fn business_calendar(tx: &mut TenantTx, id: Uuid) -> Result<BusinessCalendar> {
    let spec = calendar_by_id(tx, id).await?.spec;
    BusinessCalendar::new(&spec)
        .map_err(|_| Error::internal(format!("stored calendar {id} does not validate")))
}

/// When a target of `target_secs` business seconds falls due.
pub fn due_at(
    cal: &BusinessCalendar,
    created_at: DateTime<Utc>,
    target_secs: i64,
    paused_secs: i64,
) -> DateTime<Utc> {
    cal.add_business_seconds(created_at, target_secs + paused_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use crm_core::business_hours::{CalendarSpec, Interval};

    fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid local time")
            .with_timezone(&Utc)
    }

    /// Office hours Mon-Fri 09:00-12:00 and 13:00-18:00 (lunch break), National Day 2026
    /// (Oct 1-7) off, Sunday Sep 27 a make-up workday.
    fn office() -> BusinessCalendar {
        let mut spec = CalendarSpec::default_office();
        let day = vec![
            Interval::new("09:00", "12:00"),
            Interval::new("13:00", "18:00"),
        ];
        for d in [
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
        ] {
            spec.hours.set(d, day.clone());
        }
        spec.holidays = (1..=7)
            .map(|d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).expect("date"))
            .collect();
        spec.workdays = vec![chrono::NaiveDate::from_ymd_opt(2026, 9, 27).expect("date")];
        BusinessCalendar::new(&spec).expect("valid calendar")
    }

    /// Due times of SLA targets: (case, created, target minutes, paused business minutes, due).
    #[test]
    fn due_times_across_nights_weekends_holidays_and_pauses() {
        let cal = office();
        let cases = [
            (
                "same morning",
                shanghai(2026, 11, 23, 9, 30),
                60,
                0,
                shanghai(2026, 11, 23, 10, 30),
            ),
            (
                "over lunch",
                shanghai(2026, 11, 23, 11, 30),
                60,
                0,
                shanghai(2026, 11, 23, 13, 30),
            ),
            (
                "over the night",
                shanghai(2026, 11, 23, 17, 0),
                240,
                0,
                shanghai(2026, 11, 24, 12, 0),
            ),
            (
                "created at night",
                shanghai(2026, 11, 23, 22, 0),
                30,
                0,
                shanghai(2026, 11, 24, 9, 30),
            ),
            (
                "over the weekend",
                shanghai(2026, 11, 27, 17, 30),
                120,
                0,
                shanghai(2026, 11, 30, 10, 30),
            ),
            (
                "created on Saturday",
                shanghai(2026, 11, 28, 10, 0),
                60,
                0,
                shanghai(2026, 11, 30, 10, 0),
            ),
            (
                "a full day is 8 h",
                shanghai(2026, 11, 23, 9, 0),
                480,
                0,
                shanghai(2026, 11, 23, 18, 0),
            ),
            (
                "into the make-up Sunday",
                shanghai(2026, 9, 26, 10, 0),
                60,
                0,
                shanghai(2026, 9, 27, 10, 0),
            ),
            (
                "over National Day",
                shanghai(2026, 9, 30, 17, 0),
                120,
                0,
                shanghai(2026, 10, 8, 10, 0),
            ),
            (
                "paused one hour",
                shanghai(2026, 11, 23, 9, 0),
                60,
                60,
                shanghai(2026, 11, 23, 11, 0),
            ),
            (
                "paused into the next day",
                shanghai(2026, 11, 23, 16, 0),
                60,
                120,
                shanghai(2026, 11, 24, 10, 0),
            ),
            (
                "paused over a weekend",
                shanghai(2026, 11, 27, 16, 0),
                120,
                60,
                shanghai(2026, 11, 30, 10, 0),
            ),
        ];
        for (case, created, minutes, paused, want) in cases {
            let got = due_at(&cal, created, minutes * 60, paused * 60);
            assert_eq!(got, want, "{case}");
        }
    }

    /// A pause shifts the due time by exactly the business time spent paused, however the pause
    /// falls across nights and weekends.
    #[test]
    fn a_pause_shifts_the_due_time_by_its_business_length() {
        let cal = office();
        let created = shanghai(2026, 11, 26, 15, 0);
        let target = 4 * 3600;
        let before = due_at(&cal, created, target, 0);
        assert_eq!(before, shanghai(2026, 11, 27, 10, 0));
        // Paused from Thursday 17:00 to Monday 09:30: one business hour Thursday, Friday's
        // eight, and half an hour on Monday.
        let paused = cal
            .business_seconds_between(shanghai(2026, 11, 26, 17, 0), shanghai(2026, 11, 30, 9, 30));
        assert_eq!(paused, (1 + 8) * 3600 + 1800);
        let after = due_at(&cal, created, target, paused);
        assert_eq!(after, shanghai(2026, 11, 30, 11, 30));
        assert_eq!(
            cal.business_seconds_between(before, after),
            paused,
            "shifted by the pause"
        );
    }
}
