//! Whom an unverified company may mail: its own users, and the e-mail addresses of its own
//! records' contacts and customers (portal links, ticket replies, surveys and reminders keep
//! working). The kernel knows users; the record tables belong to crm-records, which installs
//! a [`RecordAddresses`] once per process. Without one installed only users are known.

use crate::db::TenantTx;
use crate::error::{Error, Result};
use lettre::message::Mailbox;
use std::sync::{Arc, OnceLock};

/// Tells whether an address belongs to one of the tenant's records (a higher crate's tables).
#[async_trait::async_trait]
pub trait RecordAddresses: Send + Sync {
    /// Whether `address` (lower case) is the e-mail of a live record of the tenant.
    async fn knows(&self, tx: &mut TenantTx, address: &str) -> Result<bool>;
}

static RECORD_ADDRESSES: OnceLock<Arc<dyn RecordAddresses>> = OnceLock::new();

/// Installs the record side of the rule (once per process; later calls are ignored).
pub fn install(addresses: Arc<dyn RecordAddresses>) {
    let _ = RECORD_ADDRESSES.set(addresses);
}

/// The bare address of a recipient (`王芳 <wang@example.com>` → `wang@example.com`), lower case.
pub fn address_of(recipient: &str) -> Option<String> {
    recipient
        .trim()
        .parse::<Mailbox>()
        .ok()
        .map(|m| m.email.to_string().to_lowercase())
}

/// Refuses (403 `mail.unverified_tenant`) the first recipient that is neither a user of the
/// tenant nor a record's contact or customer.
pub(crate) async fn require_known(tx: &mut TenantTx, to: &[String]) -> Result<()> {
    for recipient in to {
        let known = match address_of(recipient) {
            Some(address) => is_user(tx, &address).await? || is_record(tx, &address).await?,
            None => false,
        };
        if !known {
            return Err(Error::forbidden(
                "mail.unverified_tenant",
                format!(
                    "the company is not verified yet, so it mails only its own users and its \
                     records' contacts and customers, and '{recipient}' is neither; an \
                     administrator verifies the company with the link mailed at sign-up (POST \
                     /api/v1/auth/verify-email/resend sends it again)"
                ),
            ));
        }
    }
    Ok(())
}

async fn is_user(tx: &mut TenantTx, address: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = $1)")
            .bind(address)
            .fetch_one(tx.conn())
            .await?,
    )
}

async fn is_record(tx: &mut TenantTx, address: &str) -> Result<bool> {
    match RECORD_ADDRESSES.get() {
        Some(records) => records.knows(tx, address).await,
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_bare_and_lower_case() {
        assert_eq!(
            address_of("王芳 <Wang@Example.com>").as_deref(),
            Some("wang@example.com")
        );
        assert_eq!(address_of("a@b.example").as_deref(), Some("a@b.example"));
        assert_eq!(address_of("not an address"), None);
    }
}
