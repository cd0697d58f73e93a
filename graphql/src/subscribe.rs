//! `recordChanged(object)`: changes pushed to subscribers over WebSocket
//! (graphql-transport-ws). The record engine's listener ([`ChangeListener`]) writes a
//! `pg_notify` in the transaction of each change of a tenant somebody subscribes to, so the
//! notice leaves only if the change commits; [`Hub::listen`] hears it and fans it out. Each
//! subscriber re-reads the record in a transaction of its own, opened through its [`Door`]
//! (credential checked again), with its own scope and masking: a record it cannot see is
//! never sent.
//!
//! Known limit: a replica only notifies for tenants with subscribers on that replica.

use crate::model::Model;
use crate::schema::JsonObject;
use crate::session::{graphql_error, Door, ProblemOf};
use async_graphql::dynamic::{
    FieldValue, InputValue, Subscription, SubscriptionField, SubscriptionFieldFuture, TypeRef,
};
use crm_core::db::TenantTx;
use crm_core::Error;
use crm_records::engine::{self, Access, Visibility};
use crm_records::hooks::{Event, RecordListener};
use crm_records::{ObjectKey, SchemaCache};
use futures::StreamExt;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The notification channel.
pub const CHANNEL: &str = "crm_record_changed";

/// One committed change.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant: Uuid,
    pub object: String,
    pub id: Uuid,
    /// `created`, `updated`, `deleted`, `restored`, …
    pub action: String,
}

/// Live subscriptions per tenant in this process (tenant ids are unique across databases):
/// only those tenants' changes are notified.
static WATCHED: LazyLock<Mutex<HashMap<Uuid, usize>>> = LazyLock::new(Default::default);

fn watching(tenant: Uuid) -> bool {
    WATCHED
        .lock()
        .map(|w| w.get(&tenant).is_some_and(|n| *n > 0))
        .unwrap_or(false)
}

/// Fans one database's committed changes out to a server's subscribers.
pub struct Hub {
    sender: broadcast::Sender<Change>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        let (sender, _) = broadcast::channel(1024);
        Arc::new(Hub { sender })
    }

    fn watch(tenant: Uuid) -> Watch {
        if let Ok(mut w) = WATCHED.lock() {
            *w.entry(tenant).or_default() += 1;
        }
        Watch { tenant }
    }

    /// Hears the notifications until the process ends, reconnecting when the connection drops.
    pub async fn listen(self: Arc<Self>, pool: sqlx::PgPool) {
        loop {
            match crm_core::db::listen(&pool, CHANNEL).await {
                Ok(mut listener) => loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            if let Some(change) = parse(n.payload()) {
                                let _ = self.sender.send(change);
                            }
                        }
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "record change listener lost its connection");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!(error = %e, "record change listener cannot connect"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// A subscription's claim on its tenant's notices; released when the stream ends.
struct Watch {
    tenant: Uuid,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut w) = WATCHED.lock() {
            if let Some(n) = w.get_mut(&self.tenant) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    w.remove(&self.tenant);
                }
            }
        }
    }
}

fn parse(payload: &str) -> Option<Change> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some(Change {
        tenant: v["t"].as_str()?.parse().ok()?,
        object: v["o"].as_str()?.to_owned(),
        id: v["i"].as_str()?.parse().ok()?,
        action: v["a"].as_str()?.to_owned(),
    })
}

/// The record engine's listener that notifies changes of watched tenants.
pub struct ChangeListener;

#[async_trait::async_trait]
impl RecordListener for ChangeListener {
    async fn on_event(&self, tx: &mut TenantTx, event: &Event<'_>) -> crm_core::Result<()> {
        let tenant = tx.tenant().id;
        if !watching(tenant) {
            return Ok(());
        }
        let action = event.name.rsplit('.').next().unwrap_or(event.name);
        let payload = json!({
            "t": tenant,
            "o": event.object.as_str(),
            "i": event.record_id,
            "a": action,
        })
        .to_string();
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(tx.conn())
            .await?;
        Ok(())
    }
}

/// What a subscription needs from the server, in the request's data.
pub struct SubscriberCtx {
    pub door: Arc<dyn Door>,
    pub tenant: Uuid,
    pub hub: Arc<Hub>,
    pub schemas: Arc<SchemaCache>,
    pub master: Option<Arc<crm_core::crypto::MasterKey>>,
    pub problem: ProblemOf,
}

/// Reads the changed record as the subscriber sees it; `None` when it may not.
async fn visible(sub: &SubscriberCtx, change: &Change) -> Result<Option<serde_json::Value>, Error> {
    let object = ObjectKey::named(&change.object)
        .ok_or_else(|| Error::internal("notice names no object"))?;
    let mut opened = sub.door.open().await?;
    let tx = &mut opened.tx;
    let schema = sub
        .schemas
        .get(tx, object, opened.ctx.principal.metadata_version)
        .await?;
    let key = schema.data_key(tx, sub.master.as_deref()).await?;
    let actor = crm_core::audit::Actor::of(&opened.ctx);
    let access = Access::of_caller(&opened.caller, &actor, object, key.as_ref());
    let found = match engine::fetch(tx, &schema, &access, change.id, Visibility::Any, false).await {
        Ok(record) => Some(record),
        Err(Error::NotFound { .. } | Error::Forbidden { .. }) => None,
        Err(e) => return Err(e),
    };
    opened.tx.commit().await?;
    Ok(found)
}

/// The `Subscription` type.
pub fn subscription(model: &Arc<Model>) -> Subscription {
    let objects: Vec<String> = model
        .objects
        .iter()
        .map(|o| o.object.as_str().to_owned())
        .collect();
    Subscription::new("Subscription").field(
        SubscriptionField::new(
            "recordChanged",
            TypeRef::named_nn("RecordChange"),
            move |ctx| {
                let objects = objects.clone();
                SubscriptionFieldFuture::new(async move {
                    let sub = ctx.data::<Arc<SubscriberCtx>>()?.clone();
                    let object = ctx.args.try_get("object")?.string()?.to_owned();
                    if !objects.contains(&object) {
                        return Err(graphql_error(
                            &sub.problem,
                            Error::not_found(
                                "object.not_found",
                                format!(
                                    "there is no object '{object}'; objects: {}",
                                    objects.join(", ")
                                ),
                            ),
                        ));
                    }
                    // Fails now, not silently later, without the read permission.
                    let opened = sub
                        .door
                        .open()
                        .await
                        .map_err(|e| graphql_error(&sub.problem, e))?;
                    let permission = ObjectKey::named(&object)
                        .map(|o| o.permission(crm_records::meta::RecordAction::Read));
                    if let Some(p) = permission {
                        opened
                            .caller
                            .require(p)
                            .map_err(|e| graphql_error(&sub.problem, e))?;
                    }
                    drop(opened);
                    let watch = Hub::watch(sub.tenant);
                    let changes = changes_of(sub.hub.sender.subscribe());
                    let tenant = sub.tenant;
                    let stream = changes
                        .filter(move |c| {
                            let keep = c.tenant == tenant && c.object == object;
                            async move { keep }
                        })
                        .then({
                            let sub = sub.clone();
                            move |c| {
                                let sub = sub.clone();
                                async move {
                                    match visible(&sub, &c).await {
                                        Ok(Some(record)) => {
                                            Some(Ok(FieldValue::owned_any(JsonObject(json!({
                                                "object": c.object,
                                                "id": c.id,
                                                "action": c.action,
                                                "record": record,
                                            })))))
                                        }
                                        Ok(None) => None,
                                        Err(e) => Some(Err(graphql_error(&sub.problem, e))),
                                    }
                                }
                            }
                        })
                        .filter_map(|x| async move { x })
                        // The claim on the tenant's notices lives as long as the stream.
                        .map(move |x| {
                            let _claim = &watch;
                            x
                        });
                    Ok(stream)
                })
            },
        )
        .argument(InputValue::new(
            "object",
            TypeRef::named_nn(TypeRef::STRING),
        ))
        .description("Changes to records of `object` you can see, as they commit."),
    )
}

/// A broadcast receiver as a stream (lagged notices are skipped).
fn changes_of(
    rx: broadcast::Receiver<Change>,
) -> impl futures::Stream<Item = Change> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(c) => return Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
