//! How higher crates plug into the record engine without the engine naming them or their
//! tables: per-object [`ObjectHooks`] (validate, derive, before/after a write) and
//! [`RecordListener`]s that may refuse a change (a record locked by a pending approval) and
//! hear every event inside the transaction that wrote it (rule fan-out). The `crm` binary
//! installs them once, in one visible place, before it serves anything.

use crate::engine::Input;
use crate::meta::ObjectKey;
use crate::schema::ObjectSchema;
use async_trait::async_trait;
use crm_core::audit::Actor;
use crm_core::db::TenantTx;
use crm_core::{Error, Result};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

/// Behaviour of one object around the engine's writes. Every method defaults to nothing.
#[async_trait]
pub trait ObjectHooks: Send + Sync {
    /// Checks and derives values of a new record before it is inserted.
    async fn before_create<'s>(
        &self,
        _tx: &mut TenantTx,
        _schema: &'s ObjectSchema,
        _input: &mut Input<'s>,
    ) -> Result<()> {
        Ok(())
    }

    /// After the insert; `true` when it changed the record (the engine reads it again).
    async fn after_create(&self, _tx: &mut TenantTx, _id: Uuid, _actor: &Actor) -> Result<bool> {
        Ok(false)
    }

    /// Checks an update against the record as it is (`current`, unmasked).
    async fn before_update(
        &self,
        _tx: &mut TenantTx,
        _input: &Input<'_>,
        _current: &Value,
    ) -> Result<()> {
        Ok(())
    }

    /// After the update; `true` when it changed the record (the engine reads it again).
    async fn after_update(
        &self,
        _tx: &mut TenantTx,
        _id: Uuid,
        _before: &Value,
        _after: &Value,
        _actor: &Actor,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Before a record is deleted for good.
    async fn before_purge(&self, _tx: &mut TenantTx, _id: Uuid) -> Result<()> {
        Ok(())
    }
}

/// An event the engine wrote to the outbox, as listeners hear it.
pub struct Event<'a> {
    /// The outbox row's id.
    pub id: i64,
    /// `customer.updated`, …
    pub name: &'a str,
    pub object: ObjectKey,
    pub record_id: Uuid,
    /// The fields an update changed (empty for other events).
    pub changed: &'a [String],
    pub actor: &'a Actor,
}

/// Hears every change of every object, in the transaction that makes it.
#[async_trait]
pub trait RecordListener: Send + Sync {
    /// Why the record may not change now (e.g. 409 while an approval is pending), or `None`.
    async fn write_lock(
        &self,
        _tx: &mut TenantTx,
        _object: ObjectKey,
        _id: Uuid,
    ) -> Result<Option<Error>> {
        Ok(None)
    }

    /// Called after the event's outbox row is written.
    async fn on_event(&self, _tx: &mut TenantTx, _event: &Event<'_>) -> Result<()> {
        Ok(())
    }

    /// Called after many events of one bulk write (an import batch) are written: by default
    /// [`RecordListener::on_event`] for each; a listener may hear them in fewer statements.
    async fn on_events(&self, tx: &mut TenantTx, events: &[Event<'_>]) -> Result<()> {
        for event in events {
            self.on_event(tx, event).await?;
        }
        Ok(())
    }

    /// A custom object was deleted with its records: forget what refers to it (rules, say),
    /// so that a later object with the same key starts clean.
    async fn object_removed(&self, _tx: &mut TenantTx, _object: ObjectKey) -> Result<()> {
        Ok(())
    }
}

/// Everything plugged into the engine.
#[derive(Default, Clone)]
pub struct Hooks {
    objects: Vec<(ObjectKey, Arc<dyn ObjectHooks>)>,
    listeners: Vec<Arc<dyn RecordListener>>,
}

impl Hooks {
    /// Adds the hooks of one object (one set per object).
    pub fn object(mut self, object: ObjectKey, hooks: impl ObjectHooks + 'static) -> Hooks {
        self.objects.retain(|(o, _)| *o != object);
        self.objects.push((object, Arc::new(hooks)));
        self
    }

    /// Adds a listener of every change.
    pub fn listener(mut self, listener: impl RecordListener + 'static) -> Hooks {
        self.listeners.push(Arc::new(listener));
        self
    }
}

static INSTALLED: OnceLock<Hooks> = OnceLock::new();

/// Installs the process's hooks. The first installation wins (a process assembles one set);
/// returns whether this call installed them.
pub fn install(hooks: Hooks) -> bool {
    INSTALLED.set(hooks).is_ok()
}

fn installed() -> &'static Hooks {
    static NONE: Hooks = Hooks {
        objects: Vec::new(),
        listeners: Vec::new(),
    };
    INSTALLED.get().unwrap_or(&NONE)
}

/// The hooks of `object`, if any are installed.
pub(crate) fn of(object: ObjectKey) -> Option<&'static dyn ObjectHooks> {
    installed()
        .objects
        .iter()
        .find(|(o, _)| *o == object)
        .map(|(_, h)| h.as_ref())
}

/// The installed listeners.
pub(crate) fn listeners() -> &'static [Arc<dyn RecordListener>] {
    &installed().listeners
}
