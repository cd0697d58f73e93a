//! A company's own mail settings, kept in its `settings` row: the sender (`mail_from`, only
//! ever a confirmed address), the sender awaiting confirmation (`mail_from_pending`) and its
//! SMTP server (`mail_smtp_url`, sealed under the tenant's data key).
//!
//! Setting a new sender stores it as pending and mails a confirmation link to that address
//! ([`super::verification`]); mail keeps going out From the platform (or the previously
//! confirmed sender) until the link is used. Setting an address already confirmed, or
//! clearing it, takes effect at once. A schema one version behind has no pending column: it
//! is read through `to_jsonb`.

use super::smtp_host::{self, SmtpHostPolicy};
use super::verification;
use crate::authz::{Caller, Permission};
use crate::crypto::MasterKey;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::keys;
use crate::outbound::OutboundError;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

/// A tenant's own mail settings (override the server's): sender and SMTP server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TenantMail {
    /// The confirmed sender, used From; as a request, the sender wanted.
    pub from: Option<String>,
    /// A sender waiting for its confirmation link (read only).
    pub from_pending: Option<String>,
    /// Decrypted; shown to admins only with the password masked ([`mask_url`]).
    pub smtp_url: Option<String>,
    /// Whether the company's sign-up address is verified (read only).
    pub verified: bool,
}

impl std::fmt::Debug for TenantMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMail")
            .field("from", &self.from)
            .field("from_pending", &self.from_pending)
            .field("smtp_url", &self.smtp_url.as_deref().map(mask_url))
            .field("verified", &self.verified)
            .finish()
    }
}

const SMTP_URL_AAD: &[u8] = b"settings.mail_smtp_url";

/// The company's mail settings as a caller reads them (`tenant:manage`).
pub async fn settings_of(
    tx: &mut TenantTx,
    caller: &Caller,
    master: Option<&MasterKey>,
) -> Result<TenantMail> {
    caller.require(Permission::TenantManage)?;
    tenant_settings(tx, master).await
}

/// Replaces the company's mail settings (`tenant:manage`; the SMTP URL is checked against
/// `policy` and stored encrypted; a new sender waits for confirmation), audited with the
/// URL's password masked.
pub async fn change_settings(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &crate::audit::Actor,
    master: Option<&MasterKey>,
    policy: &SmtpHostPolicy,
    wanted: &TenantMail,
) -> Result<TenantMail> {
    caller.require(Permission::TenantManage)?;
    let saved = set_tenant_settings(tx, master, policy, wanted).await?;
    let detail = serde_json::json!({
        "from": saved.from,
        "from_pending": saved.from_pending,
        "smtp": saved.smtp_url.as_deref().map(mask_url),
    });
    crate::audit::record(tx, actor, "settings.mail_updated", None, detail).await?;
    Ok(saved)
}

/// The tenant's mail settings, decrypting the SMTP URL with its data key.
pub async fn tenant_settings(tx: &mut TenantTx, master: Option<&MasterKey>) -> Result<TenantMail> {
    let (from, sealed, from_pending, verified): (
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        bool,
    ) = sqlx::query_as(
        "SELECT mail_from, mail_smtp_url, to_jsonb(s) ->> 'mail_from_pending', \
                (to_jsonb(s) ->> 'verified_at') IS NOT NULL FROM settings s",
    )
    .fetch_one(tx.conn())
    .await?;
    let smtp_url = match sealed {
        None => None,
        Some(bytes) => {
            let key = keys::data_key(tx, master, false).await?.ok_or_else(|| {
                Error::internal("the tenant's SMTP URL is sealed but it has no data key")
            })?;
            let plain = key
                .decrypt(&bytes, SMTP_URL_AAD)
                .map_err(|e| Error::internal(format!("cannot open the tenant's SMTP URL: {e}")))?;
            Some(String::from_utf8_lossy(&plain).into_owned())
        }
    };
    Ok(TenantMail {
        from,
        from_pending,
        smtp_url,
        verified,
    })
}

/// The bare address of a mailbox, lower case.
fn address(mailbox: &str) -> Option<String> {
    super::recipients::address_of(mailbox)
}

/// Replaces the tenant's mail settings (`None` = use the server's). The SMTP URL is checked
/// by building a transport from it and against the host policy, then stored encrypted under
/// the tenant's data key.
async fn set_tenant_settings(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    policy: &SmtpHostPolicy,
    wanted: &TenantMail,
) -> Result<TenantMail> {
    let mut errors = Vec::new();
    if let Some(from) = &wanted.from {
        if from.parse::<Mailbox>().is_err() {
            errors.push(crate::FieldError::new(
                "from",
                "invalid_address",
                "use a mailbox like 客服中心 <service@example.com>",
            ));
        }
    }
    if let Some(url) = &wanted.smtp_url {
        if let Err(e) = AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
            errors.push(crate::FieldError::new(
                "smtp_url",
                "invalid_url",
                format!("not a usable SMTP URL ({e}); use smtp://user:pass@host:587?tls=required, smtps://host:465 or smtp://host:25"),
            ));
        } else if let Err(e @ OutboundError::Refused(_)) = smtp_host::check(url, policy).await {
            // A name that does not resolve yet is let through: it is checked again before
            // every send.
            super::stats::refused("smtp_host");
            errors.push(crate::FieldError::new(
                "smtp_url",
                "host_refused",
                format!("{e}: the SMTP server must be a public host on port 25, 465 or 587"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    let current = tenant_settings(tx, master).await?;
    let wanted_address = wanted.from.as_deref().and_then(address);
    let (from, from_pending) = match &wanted_address {
        None => (None, None),
        // The confirmed address again (perhaps with another display name): at once.
        Some(a) if current.from.as_deref().and_then(address).as_ref() == Some(a) => {
            (wanted.from.clone(), None)
        }
        // Already waiting for this address: no second link.
        Some(a) if current.from_pending.as_deref().and_then(address).as_ref() == Some(a) => {
            (current.from.clone(), wanted.from.clone())
        }
        Some(a) => {
            verification::send_sender_confirmation(tx, a).await?;
            (current.from.clone(), wanted.from.clone())
        }
    };
    let sealed = match &wanted.smtp_url {
        None => None,
        Some(url) => {
            let key = keys::data_key(tx, master, true)
                .await?
                .ok_or_else(|| Error::internal("no data key after creating one"))?;
            Some(
                key.encrypt(url.as_bytes(), SMTP_URL_AAD)
                    .map_err(|e| Error::internal(format!("cannot seal the SMTP URL: {e}")))?,
            )
        }
    };
    sqlx::query(
        "UPDATE settings SET mail_from = $1, mail_from_pending = $2, mail_smtp_url = $3, \
         updated_at = now()",
    )
    .bind(&from)
    .bind(&from_pending)
    .bind(sealed)
    .execute(tx.conn())
    .await?;
    Ok(TenantMail {
        from,
        from_pending,
        smtp_url: wanted.smtp_url.clone(),
        verified: current.verified,
    })
}

/// `smtp://user:***@host:587` — an SMTP URL with its password hidden.
pub fn mask_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "***".into(),
    }
}
