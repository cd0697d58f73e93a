//! crm-desk: the service desk. Tickets (an object of the record engine, with
//! [`TicketHooks`] installed on it) with a per-tenant status machine, SLA policies on business-hours calendars with durable warning/breach timers, team
//! assignment, the conversation, attachments, the customer portal, satisfaction surveys, the
//! service report and the messages all of it sends. It sits on crm-records and crm-core.

pub mod assignment;
pub mod attachments;
pub mod comments;
pub mod csat;
pub mod notices;
pub mod portal;
pub mod portal_links;
pub mod report_pdf;
pub mod reports;
pub mod sla;
pub mod staff;
pub mod tickets;
pub mod workflow;

use async_trait::async_trait;
use crm_core::audit::Actor;
use crm_core::db::TenantTx;
use crm_core::Result;
use crm_records::engine::Input;
use crm_records::hooks::ObjectHooks;
use crm_records::ObjectSchema;
use serde_json::Value;
use uuid::Uuid;

/// The desk's behaviour on the engine's `tickets` object: status machine, numbers and SLA
/// columns before the write; assignment, SLA timers and notices after it; stored attachment
/// objects queued for deletion before a purge.
pub struct TicketHooks;

#[async_trait]
impl ObjectHooks for TicketHooks {
    async fn before_create<'s>(
        &self,
        tx: &mut TenantTx,
        schema: &'s ObjectSchema,
        input: &mut Input<'s>,
    ) -> Result<()> {
        tickets::prepare_create(tx, schema, input).await
    }

    async fn after_create(&self, tx: &mut TenantTx, id: Uuid, actor: &Actor) -> Result<bool> {
        tickets::after_create(tx, id, actor).await?;
        Ok(true)
    }

    async fn before_update(
        &self,
        tx: &mut TenantTx,
        input: &Input<'_>,
        current: &Value,
    ) -> Result<()> {
        tickets::prepare_update(tx, input, current).await
    }

    async fn after_update(
        &self,
        tx: &mut TenantTx,
        id: Uuid,
        before: &Value,
        after: &Value,
        actor: &Actor,
    ) -> Result<bool> {
        tickets::after_update(tx, id, before, after, actor).await?;
        Ok(true)
    }

    async fn before_purge(&self, tx: &mut TenantTx, id: Uuid) -> Result<()> {
        // Its attachment rows cascade away: queue their stored objects' deletion in this
        // transaction, so it happens exactly when the purge commits.
        attachments::before_ticket_purge(tx, id).await
    }
}
