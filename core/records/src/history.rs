//! The change log and the outbox, both written by the engine in the caller's transaction
//! (no triggers: Citus refuses them on distributed tables).

use super::meta::ObjectKey;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

/// Appends a history entry. `changes` is `{field: {"before": …, "after": …}}`.
pub async fn record(
    tx: &mut TenantTx,
    object: ObjectKey,
    record_id: Uuid,
    action: &str,
    actor: &Actor,
    changes: &Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO record_history (object, record_id, action, actor_kind, actor_id, request_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(object.as_str())
    .bind(record_id)
    .bind(action)
    .bind(actor.kind.as_str())
    .bind(actor.id)
    .bind(Some(&actor.meta.request_id).filter(|r| !r.is_empty()))
    .bind(changes)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Appends an event (`customer.updated`, …) for workflows and plugins and hands it to the
/// installed listeners in the same transaction (workflows enqueue the rule runs it triggers
/// there), so the change, its event and what listeners make of it commit together or not at
/// all. Returns the event's id.
pub async fn emit(
    tx: &mut TenantTx,
    object: ObjectKey,
    record_id: Uuid,
    action: &str,
    actor: &Actor,
    payload: Value,
) -> Result<i64> {
    let event = format!("{}.{action}", object.singular());
    let mut payload = payload;
    let changed: Vec<String> = payload
        .get("changes")
        .and_then(Value::as_object)
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    if let Value::Object(map) = &mut payload {
        map.insert(
            "actor".into(),
            serde_json::json!({ "kind": actor.kind.as_str(), "id": actor.id }),
        );
        map.insert(
            "request_id".into(),
            Value::String(actor.meta.request_id.clone()),
        );
        if actor.meta.rule_depth > 0 {
            map.insert("rule_depth".into(), actor.meta.rule_depth.into());
        }
        if let Some(import) = actor.meta.import_id {
            map.insert("import_id".into(), serde_json::json!(import));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (event, object, record_id, payload) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&event)
    .bind(object.as_str())
    .bind(record_id)
    .bind(payload)
    .fetch_one(tx.conn())
    .await?;
    let heard = crate::hooks::Event {
        id,
        name: &event,
        object,
        record_id,
        changed: &changed,
        actor,
    };
    for listener in crate::hooks::listeners() {
        listener.on_event(tx, &heard).await?;
    }
    Ok(id)
}

/// Records a change and announces it: the history row and the outbox event `object.action`,
/// in the caller's transaction. What almost every write does.
pub async fn log(
    tx: &mut TenantTx,
    object: ObjectKey,
    record_id: Uuid,
    action: &str,
    actor: &Actor,
    changes: &Value,
    payload: Value,
) -> Result<()> {
    record(tx, object, record_id, action, actor, changes).await?;
    emit(tx, object, record_id, action, actor, payload).await?;
    Ok(())
}

/// One record's change in a bulk write: its id, `changes` for the history row and the
/// event's payload.
pub struct Change {
    pub record_id: Uuid,
    pub changes: Value,
    pub payload: Value,
}

/// [`log`] for many records of one object and action (an import batch): one statement for
/// the history rows, one for the events, then the listeners hear the events together.
pub async fn log_many(
    tx: &mut TenantTx,
    object: ObjectKey,
    action: &str,
    actor: &Actor,
    changes: Vec<Change>,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let event = format!("{}.{action}", object.singular());
    let request_id = Some(&actor.meta.request_id).filter(|r| !r.is_empty());
    let mut ids = Vec::with_capacity(changes.len());
    let mut diffs = Vec::with_capacity(changes.len());
    let mut payloads = Vec::with_capacity(changes.len());
    let mut changed: Vec<Vec<String>> = Vec::with_capacity(changes.len());
    for Change {
        record_id,
        changes,
        mut payload,
    } in changes
    {
        changed.push(
            payload
                .get("changes")
                .and_then(Value::as_object)
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default(),
        );
        if let Value::Object(map) = &mut payload {
            map.insert(
                "actor".into(),
                serde_json::json!({ "kind": actor.kind.as_str(), "id": actor.id }),
            );
            map.insert(
                "request_id".into(),
                Value::String(actor.meta.request_id.clone()),
            );
            if let Some(import) = actor.meta.import_id {
                map.insert("import_id".into(), serde_json::json!(import));
            }
        }
        ids.push(record_id);
        diffs.push(changes);
        payloads.push(payload);
    }
    sqlx::query(
        "INSERT INTO record_history (object, record_id, action, actor_kind, actor_id, request_id, changes) \
         SELECT $1, r, $3, $4, $5, $6, c FROM unnest($2::uuid[], $7::jsonb[]) AS u(r, c)",
    )
    .bind(object.as_str())
    .bind(&ids)
    .bind(action)
    .bind(actor.kind.as_str())
    .bind(actor.id)
    .bind(request_id)
    .bind(&diffs)
    .execute(tx.conn())
    .await?;
    let written: Vec<(i64, Uuid)> = sqlx::query_as(
        "INSERT INTO outbox (event, object, record_id, payload) \
         SELECT $1, $2, r, p FROM unnest($3::uuid[], $4::jsonb[]) WITH ORDINALITY AS u(r, p, n) \
         ORDER BY n RETURNING id, record_id",
    )
    .bind(&event)
    .bind(object.as_str())
    .bind(&ids)
    .bind(&payloads)
    .fetch_all(tx.conn())
    .await?;
    let outbox_of: std::collections::HashMap<Uuid, i64> =
        written.into_iter().map(|(id, r)| (r, id)).collect();
    let heard: Vec<crate::hooks::Event<'_>> = ids
        .iter()
        .zip(&changed)
        .filter_map(|(record_id, changed)| {
            Some(crate::hooks::Event {
                id: *outbox_of.get(record_id)?,
                name: &event,
                object,
                record_id: *record_id,
                changed,
                actor,
            })
        })
        .collect();
    for listener in crate::hooks::listeners() {
        listener.on_events(tx, &heard).await?;
    }
    Ok(())
}

/// One history entry.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HistoryEntry {
    pub id: i64,
    pub record_id: Uuid,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub changes: Value,
}

/// History of a record, newest first.
pub async fn list(
    tx: &mut TenantTx,
    object: ObjectKey,
    record_id: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<HistoryEntry>> {
    let before: Option<i64> = parse_cursor(cursor)?;
    let mut items: Vec<HistoryEntry> = sqlx::query_as(
        "SELECT id, record_id, action, actor_kind, actor_id, at, request_id, changes FROM record_history \
         WHERE object = $1 AND record_id = $2 AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
    )
    .bind(object.as_str())
    .bind(record_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |e| e.id);
    Ok(Page { items, next_cursor })
}

/// Forgets a deleted custom object's history and its undelivered events (its records are
/// gone; nothing may act on them later).
pub(crate) async fn forget_object(tx: &mut TenantTx, object: ObjectKey) -> Result<()> {
    sqlx::query("DELETE FROM record_history WHERE object = $1")
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    sqlx::query("DELETE FROM outbox WHERE object = $1 AND dispatched_at IS NULL")
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}
