//! The iCalendar feed of a user's tasks (with due times) and meetings: a per-user token that
//! a calendar app polls (Google Calendar, Outlook, Apple Calendar), and RFC 5545 output.

use chrono::{DateTime, Duration, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::identity::tokens::{self, CredentialKind};
use serde_json::json;
use uuid::Uuid;

/// Only the user themself, or a holder of `users:manage`, handles a user's feed token.
fn ensure_self_or_manager(caller: &Caller, user: Uuid) -> Result<()> {
    if caller.principal.user_id() == Some(user) {
        return Ok(());
    }
    caller.require(Permission::UsersManage)
}

/// Issues a new feed token for `user`, replacing any previous one (which stops working).
/// Audited.
pub async fn issue_token(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    user: Uuid,
) -> Result<String> {
    ensure_self_or_manager(caller, user)?;
    crm_core::users::get(tx, user).await?;
    let token = tokens::generate(CredentialKind::Calendar, tx.tenant().id);
    sqlx::query(
        "INSERT INTO calendar_tokens (user_id, token_hash) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET token_hash = EXCLUDED.token_hash, created_at = now()",
    )
    .bind(user)
    .bind(tokens::hash(&token))
    .execute(tx.conn())
    .await?;
    let target = Some(("user", user.to_string()));
    audit::record(tx, actor, "calendar_token.issued", target, json!({})).await?;
    Ok(token)
}

/// Revokes every feed token of the tenant (after a restore brought back tokens that had been
/// revoked or replaced since the backup: users issue new feed links).
pub async fn revoke_all_tokens(tx: &mut TenantTx) -> Result<u64> {
    let done = sqlx::query("DELETE FROM calendar_tokens")
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

/// Revokes the feed token of `user` (404 `calendar_token.not_found` when there is none).
/// Audited.
pub async fn revoke_token(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    user: Uuid,
) -> Result<()> {
    ensure_self_or_manager(caller, user)?;
    let done = sqlx::query("DELETE FROM calendar_tokens WHERE user_id = $1")
        .bind(user)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(
            "calendar_token.not_found",
            "this user has no calendar feed token",
        ));
    }
    let target = Some(("user", user.to_string()));
    audit::record(tx, actor, "calendar_token.revoked", target, json!({})).await
}

/// Whether `token_hash` is the current feed token of an active `user`.
pub async fn token_valid(tx: &mut TenantTx, user: Uuid, token_hash: &str) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM calendar_tokens c JOIN users u ON u.id = c.user_id \
         WHERE c.user_id = $1 AND c.token_hash = $2 AND u.status = 'active')",
    )
    .bind(user)
    .bind(token_hash)
    .fetch_one(tx.conn())
    .await?)
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line, folded at 75 octets without splitting a UTF-8 character.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: Uuid,
    title: String,
    notes: Option<String>,
    due_at: DateTime<Utc>,
    remind_at: Option<DateTime<Utc>>,
    done_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MeetingRow {
    id: Uuid,
    subject: Option<String>,
    body: Option<String>,
    occurred_at: DateTime<Utc>,
    duration_minutes: Option<i64>,
    updated_at: DateTime<Utc>,
}

/// The feed of `user`: tasks with a due time (90 days back to a year ahead) and meetings.
pub async fn feed(tx: &mut TenantTx, user: Uuid) -> Result<String> {
    let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(tx.conn())
        .await?;
    let now = Utc::now();
    let (from, to) = (now - Duration::days(90), now + Duration::days(365));
    let tasks: Vec<TaskRow> = sqlx::query_as(
        "SELECT id, title, notes, due_at, remind_at, done_at, updated_at FROM tasks \
         WHERE assignee_id = $1 AND deleted_at IS NULL AND due_at BETWEEN $2 AND $3 ORDER BY due_at",
    )
    .bind(user)
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    let meetings: Vec<MeetingRow> = sqlx::query_as(
        "SELECT id, subject, body, occurred_at, duration_minutes, updated_at FROM activities \
         WHERE owner_id = $1 AND kind = 'meeting' AND deleted_at IS NULL AND occurred_at BETWEEN $2 AND $3 \
         ORDER BY occurred_at",
    )
    .bind(user)
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;

    let mut out = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//TC CRM//Tasks and meetings//ZH",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        line(&mut out, l);
    }
    line(
        &mut out,
        &format!("X-WR-CALNAME:{}", escape(&format!("TC CRM — {name}"))),
    );
    line(&mut out, "REFRESH-INTERVAL;VALUE=DURATION:PT15M");
    line(&mut out, "X-PUBLISHED-TTL:PT15M");
    for TaskRow {
        id,
        title,
        notes,
        due_at: due,
        remind_at: remind,
        done_at: done,
        updated_at: updated,
    } in tasks
    {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:task-{id}@tc-crm"));
        line(&mut out, &format!("DTSTAMP:{}", stamp(now)));
        line(&mut out, &format!("LAST-MODIFIED:{}", stamp(updated)));
        line(&mut out, &format!("DTSTART:{}", stamp(due)));
        line(&mut out, "DURATION:PT30M");
        let summary = if done.is_some() {
            format!("✓ {title}")
        } else {
            title
        };
        line(&mut out, &format!("SUMMARY:{}", escape(&summary)));
        if let Some(notes) = notes.filter(|n| !n.is_empty()) {
            line(&mut out, &format!("DESCRIPTION:{}", escape(&notes)));
        }
        line(&mut out, "CATEGORIES:TC CRM task");
        if let (Some(remind), None) = (remind, done) {
            line(&mut out, "BEGIN:VALARM");
            line(&mut out, "ACTION:DISPLAY");
            line(
                &mut out,
                &format!("TRIGGER;VALUE=DATE-TIME:{}", stamp(remind)),
            );
            line(&mut out, &format!("DESCRIPTION:{}", escape(&summary)));
            line(&mut out, "END:VALARM");
        }
        line(&mut out, "END:VEVENT");
    }
    for MeetingRow {
        id,
        subject,
        body,
        occurred_at: at,
        duration_minutes: minutes,
        updated_at: updated,
    } in meetings
    {
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:meeting-{id}@tc-crm"));
        line(&mut out, &format!("DTSTAMP:{}", stamp(now)));
        line(&mut out, &format!("LAST-MODIFIED:{}", stamp(updated)));
        line(&mut out, &format!("DTSTART:{}", stamp(at)));
        line(
            &mut out,
            &format!("DURATION:PT{}M", minutes.filter(|m| *m > 0).unwrap_or(60)),
        );
        line(
            &mut out,
            &format!(
                "SUMMARY:{}",
                escape(subject.as_deref().unwrap_or("会议 Meeting"))
            ),
        );
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            line(&mut out, &format!("DESCRIPTION:{}", escape(&body)));
        }
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_folded_on_char_boundaries() {
        assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "回访客户".repeat(20)));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(
            unfolded.trim_end(),
            format!("SUMMARY:{}", "回访客户".repeat(20))
        );
    }
}
