//! The change log and the outbox, both written by the engine in the caller's transaction
//! (no triggers: Citus refuses them on distributed tables).

use super::meta::ObjectKey;
use crate::audit::Actor;
use crate::context::{cut_page, parse_cursor, Page};
use crate::db::TenantTx;
use crate::error::Result;
use chrono::{DateTime, Utc};
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
    .bind(actor.kind)
    .bind(actor.id)
    .bind(Some(&actor.meta.request_id).filter(|r| !r.is_empty()))
    .bind(changes)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Rules stop firing on changes this many rules deep (a rule's effect triggering a rule whose
/// effect triggers a rule …).
pub const MAX_RULE_DEPTH: u8 = 5;

/// Appends an event (`customer.updated`, …) for workflows and plugins, and in the same
/// transaction enqueues a `rule.run` job for every enabled rule the event triggers: the change,
/// its event and the rule jobs commit together or not at all. Returns the event's id.
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
            serde_json::json!({ "kind": actor.kind, "id": actor.id }),
        );
        map.insert(
            "request_id".into(),
            Value::String(actor.meta.request_id.clone()),
        );
        if actor.meta.rule_depth > 0 {
            map.insert("rule_depth".into(), actor.meta.rule_depth.into());
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
    if actor.meta.rule_depth < MAX_RULE_DEPTH {
        // A rule's own effects never trigger that same rule again.
        let acting_rule = (actor.kind == "rule").then_some(actor.id).flatten();
        let queued = sqlx::query(
            "INSERT INTO jobs (kind, dedupe_key, subject_id, payload, run_at, max_attempts) \
             SELECT 'rule.run', 'rule:' || r.version_id || ':' || $1::bigint, $2, \
                    jsonb_build_object('rule_id', r.id, 'version_id', r.version_id, 'outbox_id', $1::bigint, \
                                       'event', $3::text, 'depth', $6::int), \
                    now(), 5 \
             FROM rules r WHERE r.enabled AND r.deleted_at IS NULL AND r.trigger_event = $3 \
               AND r.version_id IS NOT NULL \
               AND (r.trigger_fields IS NULL OR r.trigger_fields && $4::text[]) \
               AND r.id IS DISTINCT FROM $5 \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(id)
        .bind(record_id)
        .bind(&event)
        .bind(&changed)
        .bind(acting_rule)
        .bind(i32::from(actor.meta.rule_depth))
        .execute(tx.conn())
        .await?
        .rows_affected();
        if queued > 0 {
            crate::jobs::wake(tx, chrono::Utc::now()).await?;
        }
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
