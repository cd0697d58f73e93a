//! Per-company mail quotas: at most `per_hour` messages per clock hour and `per_day` per day
//! (UTC), counted when a message is enqueued in `mail_quota` (one row per hour, rows older
//! than two days dropped). The hour's row is locked by the increment, so concurrent enqueues
//! of one company queue up and the cap is exact; a refused message gives its unit back in the
//! same transaction.

use super::stats;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, DurationRound, Utc};

/// Messages a company may enqueue (0: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailQuota {
    pub per_hour: u32,
    pub per_day: u32,
}

impl Default for MailQuota {
    fn default() -> Self {
        MailQuota {
            per_hour: 200,
            per_day: 1000,
        }
    }
}

/// What [`super::enqueue`] needs to know of the company, read once.
pub(crate) struct SenderState {
    /// The sign-up address was confirmed.
    pub verified: bool,
    /// The schema has `mail_quota` (a tenant one version behind has not: no quota yet).
    pub has_quota_table: bool,
}

impl SenderState {
    pub(crate) async fn read(tx: &mut TenantTx) -> Result<SenderState> {
        // to_jsonb: a schema one version behind has no `verified_at` column yet.
        let (verified, has_quota_table): (bool, bool) = sqlx::query_as(
            "SELECT (to_jsonb(s) ->> 'verified_at') IS NOT NULL, \
                    to_regclass('mail_quota') IS NOT NULL FROM settings s",
        )
        .fetch_one(tx.conn())
        .await?;
        Ok(SenderState {
            verified,
            has_quota_table,
        })
    }
}

/// Takes one message from the company's quota, or refuses with 429 `mail.quota_exceeded`
/// naming the limit and when it resets.
pub(crate) async fn take(tx: &mut TenantTx, quota: MailQuota) -> Result<()> {
    let (hour, sent_this_hour, sent_before_today): (DateTime<Utc>, i32, i64) = sqlx::query_as(
        "INSERT INTO mail_quota (hour, sent) VALUES (date_trunc('hour', now()), 1) \
         ON CONFLICT (hour) DO UPDATE SET sent = mail_quota.sent + 1 \
         RETURNING hour, sent, (SELECT coalesce(sum(q.sent), 0)::bigint FROM mail_quota q \
             WHERE q.hour >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
               AND q.hour < date_trunc('hour', now()))",
    )
    .fetch_one(tx.conn())
    .await?;
    if sent_this_hour == 1 {
        sqlx::query("DELETE FROM mail_quota WHERE hour < now() - interval '2 days'")
            .execute(tx.conn())
            .await?;
    }
    let today = sent_before_today + i64::from(sent_this_hour);
    let over_hour = quota.per_hour > 0 && sent_this_hour > quota.per_hour as i32;
    let over_day = quota.per_day > 0 && today > i64::from(quota.per_day);
    if !over_hour && !over_day {
        return Ok(());
    }
    give_back(tx).await?;
    stats::refused_quota(&tx.tenant().slug);
    let now = Utc::now();
    let (limit, period, resets) = if over_day {
        let midnight = now.duration_trunc(Duration::days(1)).unwrap_or(now) + Duration::days(1);
        (quota.per_day, "day", midnight)
    } else {
        (quota.per_hour, "hour", hour + Duration::hours(1))
    };
    let secs = (resets - now).num_seconds().max(1) as u64;
    Err(Error::TooManyRequests {
        code: "mail.quota_exceeded",
        message: format!(
            "the company's mail quota of {limit} messages per {period} is used up; it resets at \
             {} UTC (in {} minutes)",
            resets.format("%Y-%m-%d %H:%M"),
            secs.div_ceil(60)
        ),
        retry_after_secs: secs,
    })
}

/// Returns the unit [`take`] took this hour (the message was not enqueued after all).
pub(crate) async fn give_back(tx: &mut TenantTx) -> Result<()> {
    sqlx::query("UPDATE mail_quota SET sent = sent - 1 WHERE hour = date_trunc('hour', now())")
        .execute(tx.conn())
        .await?;
    Ok(())
}
