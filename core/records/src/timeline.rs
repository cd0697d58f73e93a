//! A customer's timeline: activities, tasks, tickets, stage moves of its opportunities and its own
//! change history, newest first, in one keyset-paged query.

use super::engine::{self, Access};
use super::meta::{ObjectKey, RecordAction};
use super::schema::ObjectSchema;
use crate::scope::CallerScope;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use crm_core::authz::Caller;
use crm_core::context::Page;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
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

/// The timeline of a customer the caller sees (live or in the recycle bin). Activities,
/// tasks, tickets and stage moves appear only where the caller may read that object, and
/// only those within the caller's scope on it.
pub async fn customer_timeline(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    caller: &Caller,
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
    // Each object's entries appear only with its read permission and within its scope.
    let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new("SELECT at, kind, id, data FROM (");
    let mut parts = 0;
    let mut part = |q: &mut QueryBuilder<'_, Postgres>, object: ObjectKey, sql: &str| {
        if !caller.holds(object.permission(RecordAction::Read)) {
            return false;
        }
        if parts > 0 {
            q.push(" UNION ALL ");
        }
        parts += 1;
        q.push(sql).push_bind(customer);
        true
    };
    if part(
        &mut q,
        ObjectKey::Activities,
        "SELECT occurred_at AS at, 'activity' AS kind, id::text AS id, jsonb_build_object( \
           'kind', kind, 'direction', direction, 'subject', subject, 'outcome', outcome, \
           'duration_minutes', duration_minutes, 'owner_id', owner_id, 'contact_id', contact_id, \
           'opportunity_id', opportunity_id) AS data \
         FROM activities WHERE deleted_at IS NULL AND customer_id = ",
    ) {
        caller
            .record_scope(ObjectKey::Activities)
            .push_predicate(&mut q, "owner_id");
    }
    if part(
        &mut q,
        ObjectKey::Tasks,
        "SELECT coalesce(due_at, created_at), 'task', id::text, jsonb_build_object( \
           'title', title, 'due_at', due_at, 'done_at', done_at, 'priority', priority, 'assignee_id', assignee_id) \
         FROM tasks WHERE deleted_at IS NULL AND customer_id = ",
    ) {
        caller
            .record_scope(ObjectKey::Tasks)
            .push_predicate(&mut q, ObjectKey::Tasks.owner_column());
    }
    if part(
        &mut q,
        ObjectKey::Tickets,
        "SELECT created_at, 'ticket', id::text, jsonb_build_object( \
           'number', number, 'subject', subject, 'status', status, 'priority', priority, \
           'type', type, 'assignee_id', assignee_id, 'resolved_at', resolved_at) \
         FROM tickets WHERE deleted_at IS NULL AND customer_id = ",
    ) {
        caller
            .record_scope(ObjectKey::Tickets)
            .push_predicate(&mut q, ObjectKey::Tickets.owner_column());
    }
    if part(
        &mut q,
        ObjectKey::Opportunities,
        "SELECT h.at, 'stage_change', h.id::text, jsonb_build_object( \
           'opportunity_id', h.record_id, 'name', o.name, 'from', h.changes -> 'stage' -> 'before', \
           'to', h.changes -> 'stage' -> 'after', 'actor_id', h.actor_id) \
         FROM record_history h JOIN opportunities o ON o.id = h.record_id \
         WHERE h.object = 'opportunities' AND o.deleted_at IS NULL AND h.changes ? 'stage' \
           AND o.customer_id = ",
    ) {
        caller
            .record_scope(ObjectKey::Opportunities)
            .push_predicate(&mut q, "o.owner_id");
    }
    // The customer's own history: the caller reads the customer (checked above).
    if parts > 0 {
        q.push(" UNION ALL ");
    }
    q.push(
        "SELECT at, 'history', id::text, jsonb_build_object('action', action, 'changes', changes, 'actor_id', actor_id) \
         FROM record_history WHERE object = 'customers' AND record_id = ",
    )
    .push_bind(customer);
    q.push(") t");
    if let Some((at, kind, id)) = after {
        q.push(" WHERE (at, kind, id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(kind)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY at DESC, kind DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows: Vec<(DateTime<Utc>, String, String, Value)> = q
        .build_query_as()
        .persistent(false)
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
