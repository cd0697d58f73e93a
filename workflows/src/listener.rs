//! What workflows hear from the record engine, in the transaction of each change: an event
//! enqueues one `rule.run` job per enabled rule it triggers, and a record with a pending
//! approval refuses changes; a custom object deleted takes its rules and approvals with it. The
//! engine never names the `rules` or `approvals` tables; this listener, installed by the `crm`
//! binary, does.

use async_trait::async_trait;
use crm_core::audit::ActorKind;
use crm_core::db::TenantTx;
use crm_core::{Error, Result};
use crm_records::hooks::{Event, RecordListener};
use crm_records::ObjectKey;
use uuid::Uuid;

/// Rules stop firing on changes this many rules deep (a rule's effect triggering a rule whose
/// effect triggers a rule …).
pub const MAX_RULE_DEPTH: u8 = 5;

/// Rule fan-out and the approval lock.
pub struct WorkflowListener;

#[async_trait]
impl RecordListener for WorkflowListener {
    /// A record waiting for an approval may not change until the approval is decided or
    /// recalled: 409 `record.pending_approval` naming the approval.
    async fn write_lock(
        &self,
        tx: &mut TenantTx,
        object: ObjectKey,
        id: Uuid,
    ) -> Result<Option<Error>> {
        let pending: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM approvals WHERE object = $1 AND record_id = $2 AND status = 'pending'",
        )
        .bind(object.as_str())
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
        Ok(pending.map(|approval_id| Error::Locked {
            code: "record.pending_approval",
            message: format!(
                "the record waits for approval {approval_id}; it can change once the approval is decided or recalled"
            ),
            approval_id,
        }))
    }

    /// Enqueues a `rule.run` job for every enabled rule the event triggers, in one statement;
    /// rules stop firing [`MAX_RULE_DEPTH`] rules deep, and a rule's own effects never trigger
    /// that same rule again.
    async fn on_event(&self, tx: &mut TenantTx, event: &Event<'_>) -> Result<()> {
        let actor = event.actor;
        if actor.meta.rule_depth >= MAX_RULE_DEPTH {
            return Ok(());
        }
        let acting_rule = (actor.kind == ActorKind::Rule)
            .then_some(actor.id)
            .flatten();
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
               AND NOT ($7 AND (r.trigger -> 'imports') = 'false'::jsonb) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(event.id)
        .bind(event.record_id)
        .bind(event.name)
        .bind(event.changed)
        .bind(acting_rule)
        .bind(i32::from(actor.meta.rule_depth))
        .bind(actor.meta.import_id.is_some())
        .execute(tx.conn())
        .await?
        .rows_affected();
        if queued > 0 {
            crm_core::jobs::wake(tx, chrono::Utc::now()).await?;
        }
        Ok(())
    }

    /// A bulk write's events (an import batch, all of one name): one look for rules that
    /// listen to that event, and the per-event fan-out only when there is one.
    async fn on_events(&self, tx: &mut TenantTx, events: &[Event<'_>]) -> Result<()> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let listening: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rules r WHERE r.enabled AND r.deleted_at IS NULL \
               AND r.trigger_event = ANY($1) AND r.version_id IS NOT NULL)",
        )
        .bind(
            events
                .iter()
                .map(|e| e.name)
                .filter(|n| *n != first.name)
                .chain([first.name])
                .collect::<Vec<_>>(),
        )
        .fetch_one(tx.conn())
        .await?;
        if !listening {
            return Ok(());
        }
        for event in events {
            self.on_event(tx, event).await?;
        }
        Ok(())
    }

    /// A custom object was deleted with its records, in this transaction. Its rules are
    /// turned off rather than deleted: their versions and run log stay readable, and
    /// `disabled_reason` says why. Turning one on again re-checks its object, so it only runs
    /// once an admin re-enables it for a new object of the same key. Its approvals, about
    /// records that no longer exist, are deleted with their decisions, and the pending work of
    /// both (runs, schedule firings, follow-up actions, escalation timers) is cancelled, so a
    /// later object with the same key starts with no rule firing and no approval locking.
    async fn object_removed(&self, tx: &mut TenantTx, object: ObjectKey) -> Result<()> {
        if !object.is_custom() {
            return Ok(());
        }
        let key = object.as_str();
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now() \
             WHERE status = 'pending' AND ( \
               (kind IN ('rule.run', 'rule.cron') \
                  AND payload->>'rule_id' IN (SELECT id::text FROM rules WHERE object = $1)) \
               OR (kind = 'rule.action' AND payload->>'object' = $1) \
               OR (kind = 'approval.escalate' \
                  AND payload->>'approval_id' IN (SELECT id::text FROM approvals WHERE object = $1)))",
        )
        .bind(key)
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "UPDATE rules SET enabled = false, disabled_reason = $2, updated_at = now() \
             WHERE object = $1 AND deleted_at IS NULL",
        )
        .bind(key)
        .bind(format!(
            "turned off because the object '{key}' was deleted; point the rule at another object or delete it"
        ))
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "DELETE FROM approval_decisions \
             WHERE approval_id IN (SELECT id FROM approvals WHERE object = $1)",
        )
        .bind(key)
        .execute(tx.conn())
        .await?;
        sqlx::query("DELETE FROM approvals WHERE object = $1")
            .bind(key)
            .execute(tx.conn())
            .await?;
        Ok(())
    }
}
