//! A customer's timeline: activities, tasks, tickets, stage moves of its opportunities and its own
//! change history, newest first, in one keyset-paged query.

use super::engine::{self, Access};
use super::meta::ObjectKey;
use super::schema::ObjectSchema;
use crate::context::Page;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// One entry of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `activity`, `task`, `ticket`, `stage_change` or `history`.
    pub kind: String,
    pub at: DateTime<Utc>,
    /// The activity, task, opportunity or history entry id.
    pub id: String,
    pub data: Value,
}

fn bad_cursor() -> Error {
    Error::bad_request(
        "request.invalid_cursor",
        "cursor is not one this API returned; start again without it",
    )
}

/// The timeline of a customer the caller sees (live or in the recycle bin).
pub async fn customer_timeline(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    customer: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Entry>> {
    engine::ensure_visible(
        tx,
        ObjectKey::Customers,
        access.scope,
        customer,
        engine::Visibility::Any,
    )
    .await?;
    let after: Option<(DateTime<Utc>, String, String)> = match cursor {
        None => None,
        Some(raw) => {
            let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad_cursor())?;
            Some(serde_json::from_slice(&bytes).map_err(|_| bad_cursor())?)
        }
    };
    let (at, kind, id) = after.map_or((None, None, None), |(a, k, i)| (Some(a), Some(k), Some(i)));
    let rows: Vec<(DateTime<Utc>, String, String, Value)> = sqlx::query_as(
        "SELECT at, kind, id, data FROM ( \
           SELECT occurred_at AS at, 'activity' AS kind, id::text AS id, jsonb_build_object( \
             'kind', kind, 'direction', direction, 'subject', subject, 'outcome', outcome, \
             'duration_minutes', duration_minutes, 'owner_id', owner_id, 'contact_id', contact_id, \
             'opportunity_id', opportunity_id) AS data \
           FROM activities WHERE customer_id = $1 AND deleted_at IS NULL \
           UNION ALL \
           SELECT coalesce(due_at, created_at), 'task', id::text, jsonb_build_object( \
             'title', title, 'due_at', due_at, 'done_at', done_at, 'priority', priority, 'assignee_id', assignee_id) \
           FROM tasks WHERE customer_id = $1 AND deleted_at IS NULL \
           UNION ALL \
           SELECT created_at, 'ticket', id::text, jsonb_build_object( \
             'number', number, 'subject', subject, 'status', status, 'priority', priority, \
             'type', type, 'assignee_id', assignee_id, 'resolved_at', resolved_at) \
           FROM tickets WHERE customer_id = $1 AND deleted_at IS NULL \
           UNION ALL \
           SELECT h.at, 'stage_change', h.id::text, jsonb_build_object( \
             'opportunity_id', h.record_id, 'name', o.name, 'from', h.changes -> 'stage' -> 'before', \
             'to', h.changes -> 'stage' -> 'after', 'actor_id', h.actor_id) \
           FROM record_history h JOIN opportunities o ON o.id = h.record_id \
           WHERE h.object = 'opportunities' AND o.customer_id = $1 AND o.deleted_at IS NULL AND h.changes ? 'stage' \
           UNION ALL \
           SELECT at, 'history', id::text, jsonb_build_object('action', action, 'changes', changes, 'actor_id', actor_id) \
           FROM record_history WHERE object = 'customers' AND record_id = $1 \
         ) t \
         WHERE ($2::timestamptz IS NULL OR (at, kind, id) < ($2, $3, $4)) \
         ORDER BY at DESC, kind DESC, id DESC LIMIT $5",
    )
    .bind(customer)
    .bind(at)
    .bind(kind)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let more = rows.len() as i64 > limit;
    let mut items: Vec<Entry> = rows
        .into_iter()
        .take(limit as usize)
        .map(|(at, kind, id, data)| Entry { kind, at, id, data })
        .collect();
    if !access.unmask {
        for e in items.iter_mut().filter(|e| e.kind == "history") {
            if let Some(changes) = e.data.get_mut("changes") {
                engine::mask_changes(schema, changes);
            }
        }
    }
    let next_cursor = if more {
        items
            .last()
            .map(|e| URL_SAFE_NO_PAD.encode(serde_json::json!([e.at, e.kind, e.id]).to_string()))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}
