//! Scheduled backups: the tenant's schedule (`backup_schedule`: on/off, time of day in a
//! time zone, how many daily and weekly backups are kept), when the next one is due, and
//! which scheduled backups retention lets go (the newest of each of the last `keep_daily`
//! days and of each of the last `keep_weekly` ISO weeks stay). The `backup.scheduled` job
//! (`jobs`) queues a backup, prunes, and queues itself for the next day.

use super::jobs::ScheduledBackup;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, NewJob};
use crm_core::{Error, Result};
use serde::Serialize;
use sqlx::FromRow;
use std::collections::HashSet;
use uuid::Uuid;

/// The tenant's backup schedule.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct Schedule {
    pub enabled: bool,
    pub time_of_day: NaiveTime,
    /// IANA time zone the time of day is in (`UTC`, `Asia/Shanghai`).
    pub timezone: String,
    pub keep_daily: i32,
    pub keep_weekly: i32,
}

/// A change to the schedule; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct ScheduleChange {
    pub enabled: Option<bool>,
    pub time_of_day: Option<NaiveTime>,
    pub timezone: Option<String>,
    pub keep_daily: Option<i32>,
    pub keep_weekly: Option<i32>,
}

/// The subject every `backup.scheduled` job is about, so a changed schedule cancels the
/// pending one.
const SUBJECT: Uuid = Uuid::nil();

/// The schedule (`backups:manage`).
pub async fn get(tx: &mut TenantTx, caller: &Caller) -> Result<Schedule> {
    caller.require(Permission::BackupsManage)?;
    read(tx).await
}

pub(crate) async fn read(tx: &mut TenantTx) -> Result<Schedule> {
    Ok(sqlx::query_as(
        "SELECT enabled, time_of_day, timezone, keep_daily, keep_weekly FROM backup_schedule",
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Changes the schedule (`backups:manage`, audited as `backup.schedule_changed`) and queues
/// the next scheduled backup when it is on.
pub async fn set(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    change: ScheduleChange,
) -> Result<Schedule> {
    caller.require(Permission::BackupsManage)?;
    let current = read(tx).await?;
    let next = Schedule {
        enabled: change.enabled.unwrap_or(current.enabled),
        time_of_day: change.time_of_day.unwrap_or(current.time_of_day),
        timezone: change.timezone.unwrap_or(current.timezone),
        keep_daily: change.keep_daily.unwrap_or(current.keep_daily),
        keep_weekly: change.keep_weekly.unwrap_or(current.keep_weekly),
    };
    zone(&next.timezone)?;
    if !(1..=366).contains(&next.keep_daily) {
        return Err(Error::invalid_field(
            "keep_daily",
            "out_of_range",
            "keep_daily must be between 1 and 366",
        ));
    }
    if !(0..=520).contains(&next.keep_weekly) {
        return Err(Error::invalid_field(
            "keep_weekly",
            "out_of_range",
            "keep_weekly must be between 0 and 520",
        ));
    }
    sqlx::query(
        "UPDATE backup_schedule SET enabled = $1, time_of_day = $2, timezone = $3, \
           keep_daily = $4, keep_weekly = $5, updated_at = now()",
    )
    .bind(next.enabled)
    .bind(next.time_of_day)
    .bind(&next.timezone)
    .bind(next.keep_daily)
    .bind(next.keep_weekly)
    .execute(tx.conn())
    .await?;
    jobs::cancel_for(tx, <ScheduledBackup as jobs::Payload>::KIND, SUBJECT, &[]).await?;
    if next.enabled {
        queue_next(tx, &next, Utc::now()).await?;
    }
    audit::record(
        tx,
        actor,
        "backup.schedule_changed",
        None,
        serde_json::to_value(&next).unwrap_or_default(),
    )
    .await?;
    Ok(next)
}

/// Queues the scheduled backup due after `after`.
pub(crate) async fn queue_next(
    tx: &mut TenantTx,
    schedule: &Schedule,
    after: DateTime<Utc>,
) -> Result<()> {
    let due = next_run(schedule, after)?;
    let job = NewJob::of(&ScheduledBackup { due })?
        .about(SUBJECT)
        .at(due)
        .dedupe(format!("backup.scheduled:{}", due.timestamp()));
    jobs::enqueue(tx, job).await?;
    Ok(())
}

fn zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::invalid_field(
            "timezone",
            "unknown_timezone",
            format!("'{name}' is not an IANA time zone (e.g. UTC, Asia/Shanghai)"),
        )
    })
}

/// The first time of day (in the schedule's zone) strictly after `after`. A time the clocks
/// skip that day (DST) runs an hour later.
pub fn next_run(schedule: &Schedule, after: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let tz = zone(&schedule.timezone)?;
    let mut day = after.with_timezone(&tz).date_naive();
    for _ in 0..4 {
        if let Some(at) = at_time(tz, day, schedule.time_of_day) {
            if at > after {
                return Ok(at);
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
    Ok(after + Duration::days(1))
}

fn at_time(tz: Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = day.and_time(time);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// Which of `backups` (id, taken at; any order) retention deletes: all but the newest of
/// each of the `keep_daily` most recent days and of each of the `keep_weekly` most recent ISO
/// weeks (days and weeks in `tz`).
pub fn to_prune(
    backups: &[(Uuid, DateTime<Utc>)],
    tz: Tz,
    keep_daily: usize,
    keep_weekly: usize,
) -> Vec<Uuid> {
    let mut newest_first = backups.to_vec();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut days = HashSet::new();
    let mut weeks = HashSet::new();
    let mut keep = HashSet::new();
    for (id, at) in &newest_first {
        let local = at.with_timezone(&tz).date_naive();
        if days.len() < keep_daily && days.insert(local) {
            keep.insert(*id);
        }
        let week = (local.iso_week().year(), local.iso_week().week());
        if weeks.len() < keep_weekly && weeks.insert(week) {
            keep.insert(*id);
        }
    }
    newest_first
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !keep.contains(id))
        .collect()
}

/// The retention of `schedule` applied to `backups`.
pub(crate) fn prune_list(schedule: &Schedule, backups: &[(Uuid, DateTime<Utc>)]) -> Vec<Uuid> {
    let tz = zone(&schedule.timezone).unwrap_or(Tz::UTC);
    to_prune(
        backups,
        tz,
        usize::try_from(schedule.keep_daily).unwrap_or(7),
        usize::try_from(schedule.keep_weekly).unwrap_or(4),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(time: &str, tz: &str) -> Schedule {
        Schedule {
            enabled: true,
            time_of_day: NaiveTime::parse_from_str(time, "%H:%M").unwrap(),
            timezone: tz.into(),
            keep_daily: 7,
            keep_weekly: 4,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_run_is_the_next_time_of_day_in_the_zone() {
        let s = schedule("02:00", "Asia/Shanghai");
        // 02:00 in Shanghai is 18:00 UTC the day before.
        assert_eq!(
            next_run(&s, at("2026-03-10T12:00:00Z")).unwrap(),
            at("2026-03-10T18:00:00Z")
        );
        assert_eq!(
            next_run(&s, at("2026-03-10T18:00:00Z")).unwrap(),
            at("2026-03-11T18:00:00Z")
        );
        let utc = schedule("23:30", "UTC");
        assert_eq!(
            next_run(&utc, at("2026-03-10T23:31:00Z")).unwrap(),
            at("2026-03-11T23:30:00Z")
        );
        // 02:30 does not exist in Berlin on 2026-03-29 (clocks go 02:00 -> 03:00).
        let berlin = schedule("02:30", "Europe/Berlin");
        assert_eq!(
            next_run(&berlin, at("2026-03-28T12:00:00Z")).unwrap(),
            at("2026-03-29T01:30:00Z")
        );
        assert!(next_run(&schedule("02:00", "Mars/Olympus"), Utc::now()).is_err());
    }

    #[test]
    fn retention_keeps_seven_daily_and_four_weekly() {
        // Daily backups at 02:00 UTC for 60 days, plus a second one on the newest day.
        let start = at("2026-01-01T02:00:00Z");
        let mut backups: Vec<(Uuid, DateTime<Utc>)> = (0..60)
            .map(|d| (Uuid::now_v7(), start + Duration::days(d)))
            .collect();
        let newest_day_extra = (
            Uuid::now_v7(),
            start + Duration::days(59) + Duration::hours(3),
        );
        backups.push(newest_day_extra);
        let pruned = to_prune(&backups, Tz::UTC, 7, 4);
        let kept: Vec<&(Uuid, DateTime<Utc>)> = backups
            .iter()
            .filter(|(id, _)| !pruned.contains(id))
            .collect();
        // 7 days (the newest day by its later backup) plus weekly ones older than those days.
        assert!(kept.iter().any(|(id, _)| *id == newest_day_extra.0));
        let days: HashSet<NaiveDate> = kept.iter().map(|(_, t)| t.date_naive()).collect();
        assert_eq!(days.len(), kept.len(), "one backup per day at most");
        let last_week = (start + Duration::days(59)).date_naive();
        let daily = kept
            .iter()
            .filter(|(_, t)| (last_week - t.date_naive()).num_days() < 7)
            .count();
        assert_eq!(daily, 7);
        let weeks: HashSet<(i32, u32)> = kept
            .iter()
            .map(|(_, t)| (t.iso_week().year(), t.iso_week().week()))
            .collect();
        assert!(weeks.len() >= 4, "{weeks:?}");
        assert!(kept.len() <= 7 + 4);
        assert_eq!(pruned.len() + kept.len(), backups.len());
        // Nothing to prune when there is less than the retention.
        assert!(to_prune(&backups[..3], Tz::UTC, 7, 4).is_empty());
    }
}
