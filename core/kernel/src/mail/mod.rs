//! Outgoing mail, built with lettre. Every message is sent by a durable `mail.send` job (see
//! [`crate::jobs`]): a request or another job renders the message and enqueues it in its own
//! transaction, so nothing is lost when the mail server is down, and failures stay visible.
//!
//! Mail that cannot be forged. A tenant admin may be an attacker, so:
//!
//! - [`enqueue`] is the only way a `mail.send` job is made (`jobs::enqueue` refuses the kind).
//!   It checks the recipients ([`recipients`]): until the company is verified (its sign-up
//!   address confirmed, [`verification`]) mail goes only to its own users and to the e-mail
//!   addresses of its own records' contacts and customers (403 `mail.unverified_tenant`).
//!   Then it takes one from the tenant's hourly and daily quota ([`quota`], 429
//!   `mail.quota_exceeded`).
//! - The sender is the platform's (`mail.from`), shown as "<company> via <platform name>",
//!   unless the company confirmed its own address through a link mailed to it
//!   ([`tenant`]: a new `from` is only pending until then).
//! - A company's own SMTP server must be a public host on port 25, 465 or 587
//!   ([`smtp_host`], the outbound address policy of [`crate::outbound`]), checked when saved
//!   and again before every send.
//!
//! Two transports ([`transport`]): `file` (the default) writes each message as
//! `<dir>/<tenant slug>/<job id>.eml` — a re-run overwrites the same file, so a job retried
//! after a crash never leaves two — and `smtp` (plain, STARTTLS or implicit TLS, from a URL).

pub mod quota;
pub mod recipients;
pub mod smtp_host;
pub mod stats;
pub mod tenant;
pub mod transport;
pub mod verification;

pub use quota::MailQuota;
pub use smtp_host::SmtpHostPolicy;
pub use tenant::{change_settings, mask_url, settings_of, tenant_settings, TenantMail};
pub use transport::{Mailer, SendMailJob};

use crate::db::TenantTx;
use crate::error::Result;
use crate::jobs::NewJob;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The job kind that sends one message.
pub const SEND_JOB: &str = "mail.send";

/// How mail leaves the server (part of the server configuration).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    /// `file` (write .eml files under `dir`) or `smtp` (send to `smtp_url`).
    pub transport: String,
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS), or
    /// `smtp://host:25` (plain, for a local relay).
    pub smtp_url: Option<String>,
    /// Sender, e.g. `TC CRM <no-reply@example.com>`.
    pub from: String,
    /// Directory of the file transport; default `<data_dir>/mail`.
    pub dir: Option<PathBuf>,
    /// Give up on an SMTP conversation after this long (the job retries later).
    pub timeout_secs: u64,
    /// Replaces `{{base_url}}` in messages (links to the portal and surveys); the server
    /// fills it from `public_url` when unset.
    pub base_url: Option<String>,
    /// Messages one company may enqueue per clock hour (UTC); 0: unlimited.
    pub quota_per_hour: u32,
    /// Messages one company may enqueue per day (UTC); 0: unlimited.
    pub quota_per_day: u32,
    /// Ports a company's own SMTP server may use besides 25, 465 and 587.
    pub tenant_smtp_ports: Vec<u16>,
    /// Let a company's SMTP server be a loopback, private or link-local address. Only for
    /// development and tests: it opens the platform's own network to every tenant.
    pub tenant_smtp_allow_private: bool,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("transport", &self.transport)
            .field("smtp_url", &self.smtp_url.as_deref().map(mask_url))
            .field("from", &self.from)
            .field("dir", &self.dir)
            .field("timeout_secs", &self.timeout_secs)
            .field("base_url", &self.base_url)
            .field("quota_per_hour", &self.quota_per_hour)
            .field("quota_per_day", &self.quota_per_day)
            .field("tenant_smtp_ports", &self.tenant_smtp_ports)
            .field("tenant_smtp_allow_private", &self.tenant_smtp_allow_private)
            .finish()
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: "file".into(),
            smtp_url: None,
            from: "TC CRM <no-reply@tc-crm.localhost>".into(),
            dir: None,
            timeout_secs: 30,
            base_url: None,
            quota_per_hour: MailQuota::default().per_hour,
            quota_per_day: MailQuota::default().per_day,
            tenant_smtp_ports: Vec::new(),
            tenant_smtp_allow_private: false,
        }
    }
}

impl MailSettings {
    /// The per-company quota these settings set.
    pub fn quota(&self) -> MailQuota {
        MailQuota {
            per_hour: self.quota_per_hour,
            per_day: self.quota_per_day,
        }
    }

    /// What a company's own SMTP server may be.
    pub fn tenant_smtp_policy(&self) -> SmtpHostPolicy {
        SmtpHostPolicy {
            extra_ports: self.tenant_smtp_ports.clone(),
            allow_private: self.tenant_smtp_allow_private,
        }
    }
}

impl crate::jobs::Payload for OutgoingMail {
    const KIND: &'static str = SEND_JOB;
}

/// A rendered message, as stored in a `mail.send` job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// Why it was sent (`task.reminder`, `ticket.reply`, …), for the job list and headers.
    pub purpose: String,
}

/// Enqueues `mail` for sending, once per `dedupe_key`, in the caller's transaction — after
/// the recipient rule of an unverified company and the company's quota (see the module
/// header). A repeated `dedupe_key` enqueues nothing and takes no quota.
pub async fn enqueue(
    tx: &mut TenantTx,
    mail: &OutgoingMail,
    dedupe_key: String,
    subject: Option<uuid::Uuid>,
) -> Result<Option<i64>> {
    let state = quota::SenderState::read(tx).await?;
    if !state.verified {
        if let Err(e) = recipients::require_known(tx, &mail.to).await {
            stats::refused("unverified_tenant");
            return Err(e);
        }
    }
    // The sign-up verification mail goes to the company's own administrator and must get
    // through even when the company used up its quota.
    let counted = state.has_quota_table && mail.purpose != verification::VERIFY_PURPOSE;
    if counted {
        let quota = tx.mail_quota();
        quota::take(tx, quota).await?;
    }
    let mut job = NewJob::of(mail)?.dedupe(dedupe_key);
    job.subject_id = subject;
    let id = crate::jobs::insert(tx, job).await?;
    match id {
        Some(_) => stats::enqueued(),
        None if counted => quota::give_back(tx).await?,
        None => {}
    }
    Ok(id)
}

/// The two languages of our messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

impl Lang {
    /// From a user's or tenant's locale (`zh-CN`, `en`, …); Chinese unless it is English.
    pub fn of(locale: Option<&str>) -> Lang {
        match locale {
            Some(l) if l.to_ascii_lowercase().starts_with("en") => Lang::En,
            _ => Lang::ZhCn,
        }
    }
}

/// `2026-11-24 09:30 (Asia/Shanghai)`.
pub fn local_time(at: chrono::DateTime<chrono::Utc>, timezone: &str) -> String {
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => format!(
            "{} ({timezone})",
            at.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        ),
        Err(_) => format!("{} (UTC)", at.format("%Y-%m-%d %H:%M")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lang_defaults_to_chinese() {
        assert_eq!(Lang::of(Some("en")), Lang::En);
        assert_eq!(Lang::of(Some("en-US")), Lang::En);
        assert_eq!(Lang::of(Some("zh-CN")), Lang::ZhCn);
        assert_eq!(Lang::of(None), Lang::ZhCn);
    }
}
