//! Outgoing mail, built with lettre. Every message is sent by a durable `mail.send` job (see
//! [`crate::jobs`]): a request or another job renders the message and enqueues it in its own
//! transaction, so nothing is lost when the mail server is down, and failures stay visible.
//!
//! Two transports: `file` (the default) writes each message as `<dir>/<tenant slug>/<job id>.eml`
//! — a re-run overwrites the same file, so a job retried after a crash never leaves two —
//! and `smtp` (plain, STARTTLS or implicit TLS, from a URL).

use crate::authz::{Caller, Permission};
use crate::crypto::MasterKey;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::jobs::{ClaimedJob, JobFailure, JobHandler, NewJob};
use crate::keys;
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

enum Transport {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends rendered messages through the configured transport.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    base_url: String,
}

impl Mailer {
    /// Builds the transport; errors name the setting that is wrong.
    pub fn new(settings: &MailSettings, data_dir: &Path) -> Result<Mailer> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            Error::invalid_field(
                "mail.from",
                "invalid_address",
                format!("mail.from '{}' is not a mailbox: {e}", settings.from),
            )
        })?;
        let transport = match settings.transport.as_str() {
            "file" => Transport::File(
                settings
                    .dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("mail")),
            ),
            "smtp" => {
                let url = settings.smtp_url.as_deref().ok_or_else(|| {
                    Error::invalid_field(
                        "mail.smtp_url",
                        "required",
                        "mail.transport is smtp: set mail.smtp_url (smtp://user:pass@host:587?tls=required)",
                    )
                })?;
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
                    Error::invalid_field(
                        "mail.smtp_url",
                        "invalid_url",
                        format!("mail.smtp_url is not a usable SMTP URL: {e}"),
                    )
                })?;
                Transport::Smtp(
                    builder
                        .timeout(Some(Duration::from_secs(settings.timeout_secs.max(1))))
                        .build(),
                )
            }
            other => {
                return Err(Error::invalid_field(
                    "mail.transport",
                    "unknown_transport",
                    format!("mail.transport '{other}' is unknown; use 'file' or 'smtp'"),
                ))
            }
        };
        let base_url = settings
            .base_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_owned();
        Ok(Mailer {
            transport,
            from,
            base_url,
        })
    }

    /// Sends `mail` as message `id` of tenant `tenant_slug` (the id makes the Message-ID and,
    /// for the file transport, the file name, so a repeated send is recognisable).
    pub async fn send(
        &self,
        tenant_slug: &str,
        id: &str,
        mail: &OutgoingMail,
    ) -> std::result::Result<(), JobFailure> {
        let message = self.build(tenant_slug, id, mail)?;
        match &self.transport {
            Transport::File(dir) => write_eml(&dir.join(tenant_slug), id, &message.formatted())
                .await
                .map_err(|e| JobFailure::Retry(format!("cannot write mail file: {e}"))),
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(JobFailure::Permanent(format!(
                    "SMTP refused the message: {e}"
                ))),
                Err(e) => Err(JobFailure::Retry(format!("SMTP send failed: {e}"))),
            },
        }
    }

    fn build(
        &self,
        tenant_slug: &str,
        id: &str,
        mail: &OutgoingMail,
    ) -> std::result::Result<Message, JobFailure> {
        let domain = self.from.email.domain().to_owned();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{tenant_slug}.{id}@{domain}>")));
        if mail.to.is_empty() {
            return Err(JobFailure::Permanent("the message has no recipient".into()));
        }
        for to in &mail.to {
            let mailbox: Mailbox = to.parse().map_err(|e| {
                JobFailure::Permanent(format!("recipient '{to}' is not an address: {e}"))
            })?;
            builder = builder.to(mailbox);
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.replace("{{base_url}}", &self.base_url))
            .map_err(|e| JobFailure::Permanent(format!("cannot build the message: {e}")))
    }
}

/// Writes `bytes` to `<dir>/<id>.eml` atomically (temp file + rename).
async fn write_eml(dir: &Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
}

/// Enqueues `mail` for sending, once per `dedupe_key`, in the caller's transaction.
pub async fn enqueue(
    tx: &mut TenantTx,
    mail: &OutgoingMail,
    dedupe_key: String,
    subject: Option<uuid::Uuid>,
) -> Result<Option<i64>> {
    let mut job = NewJob::of(mail)?.dedupe(dedupe_key);
    job.subject_id = subject;
    crate::jobs::enqueue(tx, job).await
}

/// A tenant's own mail settings (override the server's): sender and SMTP server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TenantMail {
    pub from: Option<String>,
    /// Decrypted; shown to admins only with the password masked ([`mask_url`]).
    pub smtp_url: Option<String>,
}

impl std::fmt::Debug for TenantMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMail")
            .field("from", &self.from)
            .field("smtp_url", &self.smtp_url.as_deref().map(mask_url))
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

/// Replaces the company's mail settings (`tenant:manage`; the SMTP URL is stored encrypted),
/// audited with the URL's password masked.
pub async fn change_settings(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &crate::audit::Actor,
    master: Option<&MasterKey>,
    wanted: &TenantMail,
) -> Result<TenantMail> {
    caller.require(Permission::TenantManage)?;
    let saved = set_tenant_settings(tx, master, wanted).await?;
    let detail = serde_json::json!({
        "from": saved.from,
        "smtp": saved.smtp_url.as_deref().map(mask_url),
    });
    crate::audit::record(tx, actor, "settings.mail_updated", None, detail).await?;
    Ok(saved)
}

/// The tenant's mail settings, decrypting the SMTP URL with its data key.
pub async fn tenant_settings(tx: &mut TenantTx, master: Option<&MasterKey>) -> Result<TenantMail> {
    let (from, sealed): (Option<String>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT mail_from, mail_smtp_url FROM settings")
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
    Ok(TenantMail { from, smtp_url })
}

/// Replaces the tenant's mail settings (`None` = use the server's). The SMTP URL is checked
/// by building a transport from it and stored encrypted under the tenant's data key.
async fn set_tenant_settings(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    settings: &TenantMail,
) -> Result<TenantMail> {
    let mut errors = Vec::new();
    if let Some(from) = &settings.from {
        if from.parse::<Mailbox>().is_err() {
            errors.push(crate::FieldError::new(
                "from",
                "invalid_address",
                "use a mailbox like 客服中心 <service@example.com>",
            ));
        }
    }
    if let Some(url) = &settings.smtp_url {
        if let Err(e) = AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
            errors.push(crate::FieldError::new(
                "smtp_url",
                "invalid_url",
                format!("not a usable SMTP URL ({e}); use smtp://user:pass@host:587?tls=required, smtps://host:465 or smtp://host:25"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    let sealed = match &settings.smtp_url {
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
    sqlx::query("UPDATE settings SET mail_from = $1, mail_smtp_url = $2, updated_at = now()")
        .bind(&settings.from)
        .bind(sealed)
        .execute(tx.conn())
        .await?;
    Ok(settings.clone())
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

/// A tenant's (sender, SMTP URL), naming its cached transport.
type MailerKey = (Option<String>, Option<String>);

/// The `mail.send` job: the tenant's own SMTP server and sender when it set them, else the
/// server's transport.
pub struct SendMailJob {
    mailer: Arc<Mailer>,
    settings: MailSettings,
    data_dir: PathBuf,
    master: Option<Arc<MasterKey>>,
    /// Transports of tenants with their own settings, by (from, URL).
    tenant_mailers: std::sync::Mutex<std::collections::HashMap<MailerKey, Arc<Mailer>>>,
}

impl SendMailJob {
    pub fn new(
        settings: MailSettings,
        data_dir: &Path,
        master: Option<Arc<MasterKey>>,
    ) -> Result<Self> {
        Ok(SendMailJob {
            mailer: Arc::new(Mailer::new(&settings, data_dir)?),
            settings,
            data_dir: data_dir.to_owned(),
            master,
            tenant_mailers: Default::default(),
        })
    }

    fn mailer_for(&self, tenant: TenantMail) -> Result<Arc<Mailer>> {
        if tenant == TenantMail::default() {
            return Ok(self.mailer.clone());
        }
        let key = (tenant.from.clone(), tenant.smtp_url.clone());
        let mut cache = self
            .tenant_mailers
            .lock()
            .map_err(|_| Error::internal("mailer cache poisoned"))?;
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let mut settings = self.settings.clone();
        if let Some(from) = tenant.from {
            settings.from = from;
        }
        if let Some(url) = tenant.smtp_url {
            settings.transport = "smtp".into();
            settings.smtp_url = Some(url);
        }
        let mailer = Arc::new(Mailer::new(&settings, &self.data_dir)?);
        if cache.len() > 1000 {
            cache.clear();
        }
        cache.insert(key, mailer.clone());
        Ok(mailer)
    }
}

#[async_trait::async_trait]
impl JobHandler for SendMailJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let mail: OutgoingMail = job.payload_as()?;
        let tenant = tenant_settings(tx, self.master.as_deref()).await?;
        let mailer = self.mailer_for(tenant)?;
        let slug = tx.tenant().slug.clone();
        mailer.send(&slug, &job.id.to_string(), &mail).await
    }
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

    fn file_mailer(dir: &Path) -> Mailer {
        Mailer::new(
            &MailSettings {
                dir: Some(dir.to_owned()),
                ..MailSettings::default()
            },
            dir,
        )
        .expect("file mailer")
    }

    #[tokio::test]
    async fn file_transport_writes_one_eml_per_id() {
        let dir = std::env::temp_dir().join(format!("crm-mail-{}", uuid::Uuid::new_v4()));
        let mailer = file_mailer(&dir);
        let mail = OutgoingMail {
            to: vec!["王芳 <wang@example.com>".into()],
            subject: "任务提醒：回访客户".into(),
            text: "您好，请记得回访。".into(),
            purpose: "task.reminder".into(),
        };
        mailer.send("acme", "42", &mail).await.expect("sent");
        mailer.send("acme", "42", &mail).await.expect("sent again");
        let files: Vec<_> = std::fs::read_dir(dir.join("acme"))
            .expect("dir")
            .filter_map(std::result::Result::ok)
            .collect();
        assert_eq!(files.len(), 1, "a repeated send overwrites");
        let eml = std::fs::read_to_string(dir.join("acme/42.eml")).expect("eml");
        assert!(
            eml.contains("To: =?utf-8?b?"),
            "encoded display name: {eml}"
        );
        assert!(eml.contains("wang@example.com"));
        assert!(eml.contains("Message-ID: <acme.42@tc-crm.localhost>"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn bad_recipients_are_permanent_failures() {
        let dir = std::env::temp_dir().join(format!("crm-mail-{}", uuid::Uuid::new_v4()));
        let mailer = file_mailer(&dir);
        let mut mail = OutgoingMail {
            to: vec!["not an address".into()],
            subject: "x".into(),
            text: "y".into(),
            purpose: "test".into(),
        };
        assert!(matches!(
            mailer.send("acme", "1", &mail).await,
            Err(JobFailure::Permanent(_))
        ));
        mail.to.clear();
        assert!(matches!(
            mailer.send("acme", "1", &mail).await,
            Err(JobFailure::Permanent(_))
        ));
    }

    #[test]
    fn settings_errors_name_the_setting() {
        let dir = std::env::temp_dir();
        let smtp_without_url = MailSettings {
            transport: "smtp".into(),
            ..MailSettings::default()
        };
        let err = Mailer::new(&smtp_without_url, &dir).err().expect("refused");
        assert!(err.to_string().contains("mail.smtp_url"));
        let unknown = MailSettings {
            transport: "pigeon".into(),
            ..MailSettings::default()
        };
        assert!(Mailer::new(&unknown, &dir).is_err());
        let bad_from = MailSettings {
            from: "nobody".into(),
            ..MailSettings::default()
        };
        assert!(Mailer::new(&bad_from, &dir).is_err());
    }

    #[test]
    fn lang_defaults_to_chinese() {
        assert_eq!(Lang::of(Some("en")), Lang::En);
        assert_eq!(Lang::of(Some("en-US")), Lang::En);
        assert_eq!(Lang::of(Some("zh-CN")), Lang::ZhCn);
        assert_eq!(Lang::of(None), Lang::ZhCn);
    }
}
