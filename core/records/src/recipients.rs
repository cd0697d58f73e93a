//! The record side of the unverified company's mail rule ([`crm_core::mail::recipients`]):
//! an address is known when a live contact or customer of the tenant has it.

use crm_core::db::TenantTx;
use crm_core::mail::recipients::RecordAddresses;
use crm_core::Result;

/// Contacts' and customers' e-mail addresses.
pub struct ContactAddresses;

#[async_trait::async_trait]
impl RecordAddresses for ContactAddresses {
    async fn knows(&self, tx: &mut TenantTx, address: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE lower(email) = $1 AND deleted_at IS NULL) \
                 OR EXISTS (SELECT 1 FROM customers WHERE lower(email) = $1 AND deleted_at IS NULL)",
        )
        .bind(address)
        .fetch_one(tx.conn())
        .await?)
    }
}
