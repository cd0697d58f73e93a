//! Asking for a portal sign-in link, the use case. Nothing in the outcome tells whether the
//! address or the company is known: the caller answers the same whatever happens here.
//! Requests are throttled silently per client address and per (company, address), with
//! throttle keys of their own, so link requests never lock or unlock staff logins.

use crate::portal;
use crm_core::context::RequestMeta;
use crm_core::db::Db;
use crm_core::domain::Email;
use crm_core::Result;
use crm_tenants::registry;
use crm_tenants::throttle::{self, ThrottlePolicy};
use uuid::Uuid;

/// Per address: link mails before a pause (each request counts, sent or not).
const ADDRESS_POLICY: ThrottlePolicy = ThrottlePolicy {
    max_failures: 5,
    max_failures_per_address: 5,
    base_lock_secs: 600,
    max_lock_secs: 3600,
};

/// Per client IP: link requests before a pause, whatever the addresses.
const IP_POLICY: ThrottlePolicy = ThrottlePolicy {
    max_failures: 30,
    max_failures_per_address: 30,
    base_lock_secs: 600,
    max_lock_secs: 3600,
};

fn ip_key(meta: &RequestMeta) -> String {
    throttle::ip_key(&format!(
        "portal-link {}",
        meta.ip.as_deref().unwrap_or("unknown")
    ))
}

fn address_key(tenant: Uuid, email: &Email) -> String {
    throttle::account_key(tenant, &format!("portal-link {}", email.as_str()))
}

/// Mails a sign-in link to each live contact of the company `tenant_slug` with address
/// `email`, unless throttled, malformed, unknown or suspended (each only logged).
pub async fn request(db: &Db, tenant_slug: &str, email: &str, meta: &RequestMeta) -> Result<()> {
    let pool = &db.pool;
    let ip = ip_key(meta);
    // Every request counts, before anything is looked up (atomically: parallel requests
    // cannot pass the limit together).
    let from_ip = throttle::begin_attempt(pool, std::slice::from_ref(&ip), IP_POLICY).await?;
    if from_ip.is_err() {
        tracing::warn!(request_id = %meta.request_id, "portal link request throttled (client address); nothing sent");
        return Ok(());
    }
    let Ok(email) = Email::parse("email", email) else {
        tracing::info!(request_id = %meta.request_id, "portal link request for a malformed address; nothing sent");
        return Ok(());
    };
    let tenant = registry::by_slug(pool, tenant_slug.trim()).await?;
    let Some(tenant) = tenant.filter(crm_tenants::Tenant::is_active) else {
        tracing::info!(request_id = %meta.request_id, "portal link request for an unknown or suspended company; nothing sent");
        return Ok(());
    };
    let address = address_key(tenant.id, &email);
    let to_address =
        throttle::begin_attempt(pool, std::slice::from_ref(&address), ADDRESS_POLICY).await?;
    if to_address.is_err() {
        tracing::warn!(request_id = %meta.request_id, tenant = %tenant.slug, "portal link request throttled (address); nothing sent");
        return Ok(());
    }
    let mut tx = db.tenant_tx(&tenant.ctx()?).await?;
    let sent = portal::send_links(&mut tx, &email, &tenant.name).await?;
    tx.commit().await?;
    tracing::info!(request_id = %meta.request_id, tenant = %tenant.slug, sent, "portal link request");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_throttle_keys_differ_from_login_keys() {
        let meta = RequestMeta {
            ip: Some("10.0.0.1".into()),
            ..RequestMeta::default()
        };
        assert_ne!(ip_key(&meta), throttle::ip_key("10.0.0.1"));
        let tenant = Uuid::now_v7();
        let email = Email::parse("email", "wang.lei@example.com").expect("email");
        assert_ne!(
            address_key(tenant, &email),
            throttle::account_key(tenant, email.as_str())
        );
    }
}
