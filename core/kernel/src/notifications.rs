//! In-app notifications: a user's inbox of reminders and alerts, written by jobs (each at most
//! once per job) and read over the API by the user they are for.

use crate::context::{cut_page, parse_cursor, Page};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    pub user_id: Uuid,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: Option<&'a str>,
    /// The record it is about (`tasks`, id).
    pub record: Option<(&'a str, Uuid)>,
    /// The job writing it: a second run of the same job writes nothing.
    pub job_id: Option<i64>,
}

/// One notification.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Notification {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub body: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, title, body, object, record_id, created_at, read_at";

/// Creates a notification; `None` when its job already wrote one.
pub async fn create(tx: &mut TenantTx, n: NewNotification<'_>) -> Result<Option<i64>> {
    let id = sqlx::query_scalar(
        "INSERT INTO notifications (user_id, kind, title, body, object, record_id, job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id) DO NOTHING RETURNING id",
    )
    .bind(n.user_id)
    .bind(n.kind)
    .bind(n.title)
    .bind(n.body)
    .bind(n.record.map(|r| r.0))
    .bind(n.record.map(|r| r.1))
    .bind(n.job_id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(id)
}

/// A user's notifications, newest first.
pub async fn list(
    tx: &mut TenantTx,
    user: Uuid,
    unread_only: bool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Notification>> {
    let before: Option<i64> = parse_cursor(cursor)?;
    let mut items: Vec<Notification> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL) \
           AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(user)
    .bind(unread_only)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |n| n.id);
    Ok(Page { items, next_cursor })
}

/// How many of a user's notifications are unread.
pub async fn unread_count(tx: &mut TenantTx, user: Uuid) -> Result<i64> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(user)
    .fetch_one(tx.conn())
    .await?;
    Ok(n)
}

/// Marks one of the user's notifications read (404 for anyone else's).
pub async fn mark_read(tx: &mut TenantTx, user: Uuid, id: i64) -> Result<Notification> {
    sqlx::query_as(&format!(
        "UPDATE notifications SET read_at = COALESCE(read_at, now()) \
         WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| Error::not_found("notification.not_found", format!("no notification {id}")))
}

/// Marks all of the user's notifications read; returns how many changed.
pub async fn mark_all_read(tx: &mut TenantTx, user: Uuid) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
    )
    .bind(user)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}
