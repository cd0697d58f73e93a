//! The two transports and the `mail.send` job. `file` writes each message as
//! `<dir>/<tenant slug>/<job id>.eml` (a re-run overwrites the same file); `smtp` sends
//! through an SMTP URL. The job sends with the company's own SMTP server when it set one
//! (checked against [`super::smtp_host`] before every send) and From the company's confirmed
//! address, else From the platform's address as "<company> via <platform name>".

use super::smtp_host::{self, SmtpHostPolicy};
use super::tenant::{tenant_settings, TenantMail};
use super::{stats, MailSettings, OutgoingMail};
use crate::crypto::MasterKey;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::jobs::{ClaimedJob, JobFailure, JobHandler};
use crate::outbound::OutboundError;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

    /// The sender configured for this transport.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends `mail` as message `id` of tenant `tenant_slug` from `from` (the id makes the
    /// Message-ID and, for the file transport, the file name, so a repeated send is
    /// recognisable).
    pub async fn send(
        &self,
        tenant_slug: &str,
        id: &str,
        mail: &OutgoingMail,
        from: &Mailbox,
    ) -> std::result::Result<(), JobFailure> {
        let message = self.build(tenant_slug, id, mail, from)?;
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
        from: &Mailbox,
    ) -> std::result::Result<Message, JobFailure> {
        let domain = from.email.domain().to_owned();
        let mut builder = Message::builder()
            .from(from.clone())
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
            .header(Purpose(mail.purpose.clone()))
            .body(mail.text.replace("{{base_url}}", &self.base_url))
            .map_err(|e| JobFailure::Permanent(format!("cannot build the message: {e}")))
    }
}

/// `X-CRM-Purpose: ticket.reply`: why a message was sent, for filters and support.
#[derive(Clone)]
struct Purpose(String);

impl Header for Purpose {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-CRM-Purpose")
    }

    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Purpose(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        // Purposes are our own ASCII identifiers; anything else is dropped, not encoded.
        let value: String = self
            .0
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .collect();
        HeaderValue::new(Self::name(), value)
    }
}

/// Writes `bytes` to `<dir>/<id>.eml` atomically (temp file + rename).
async fn write_eml(dir: &Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
}

/// The `mail.send` job: the tenant's own SMTP server when it set one, else the server's
/// transport; From the tenant's confirmed address, else the platform's.
pub struct SendMailJob {
    mailer: Arc<Mailer>,
    settings: MailSettings,
    policy: SmtpHostPolicy,
    data_dir: PathBuf,
    master: Option<Arc<MasterKey>>,
    /// Transports of tenants with their own SMTP server, by URL.
    tenant_mailers: std::sync::Mutex<std::collections::HashMap<String, Arc<Mailer>>>,
}

impl SendMailJob {
    pub fn new(
        settings: MailSettings,
        data_dir: &Path,
        master: Option<Arc<MasterKey>>,
    ) -> Result<Self> {
        Ok(SendMailJob {
            mailer: Arc::new(Mailer::new(&settings, data_dir)?),
            policy: settings.tenant_smtp_policy(),
            settings,
            data_dir: data_dir.to_owned(),
            master,
            tenant_mailers: Default::default(),
        })
    }

    fn mailer_for(&self, smtp_url: Option<String>) -> Result<Arc<Mailer>> {
        let Some(url) = smtp_url else {
            return Ok(self.mailer.clone());
        };
        let mut cache = self
            .tenant_mailers
            .lock()
            .map_err(|_| Error::internal("mailer cache poisoned"))?;
        if let Some(m) = cache.get(&url) {
            return Ok(m.clone());
        }
        let mut settings = self.settings.clone();
        settings.transport = "smtp".into();
        settings.smtp_url = Some(url.clone());
        let mailer = Arc::new(Mailer::new(&settings, &self.data_dir)?);
        if cache.len() > 1000 {
            cache.clear();
        }
        cache.insert(url, mailer.clone());
        Ok(mailer)
    }

    /// The From of a tenant's mail: its confirmed address, else the platform's address under
    /// "<tenant> via <platform name>".
    fn sender(&self, tenant: &TenantMail, slug: &str) -> Mailbox {
        if let Some(own) = tenant
            .from
            .as_deref()
            .and_then(|f| f.parse::<Mailbox>().ok())
        {
            return own;
        }
        let platform = &self.mailer.from;
        let name = platform.name.as_deref().unwrap_or("TC CRM");
        Mailbox::new(Some(format!("{slug} via {name}")), platform.email.clone())
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
        if let Some(url) = tenant.smtp_url.as_deref() {
            match smtp_host::check(url, &self.policy).await {
                Ok(()) => {}
                Err(e @ OutboundError::Refused(_)) => {
                    stats::refused("smtp_host");
                    return Err(JobFailure::Permanent(format!(
                        "the company's SMTP server is not allowed ({e}); change it in the mail settings"
                    )));
                }
                Err(e) => {
                    return Err(JobFailure::Retry(format!(
                        "the company's SMTP server cannot be found ({e})"
                    )))
                }
            }
        }
        let slug = tx.tenant().slug.clone();
        let from = self.sender(&tenant, &slug);
        let mailer = self.mailer_for(tenant.smtp_url)?;
        mailer.send(&slug, &job.id.to_string(), &mail, &from).await
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
        mailer
            .send("acme", "42", &mail, mailer.from())
            .await
            .expect("sent");
        mailer
            .send("acme", "42", &mail, mailer.from())
            .await
            .expect("sent again");
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
        assert!(eml.contains("X-CRM-Purpose: task.reminder"), "{eml}");
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
            mailer.send("acme", "1", &mail, mailer.from()).await,
            Err(JobFailure::Permanent(_))
        ));
        mail.to.clear();
        assert!(matches!(
            mailer.send("acme", "1", &mail, mailer.from()).await,
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
}
