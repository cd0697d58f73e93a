//! `/settings/mail`: a company's own sender and SMTP server for the mail it sends (ticket
//! replies, portal links, surveys, reminders), overriding the server's mail settings.

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::mail::{self, TenantMail};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

pub struct SettingsApi(pub AppState);

#[derive(Object)]
pub struct MailSettingsOut {
    /// The sender of the company's mail; absent: the server's `mail.from`.
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    pub from: Option<String>,
    /// The company's SMTP server, password hidden; absent: the server's transport.
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    pub smtp_url: Option<String>,
    /// Whether the company uses the server's transport.
    pub uses_server_transport: bool,
}

#[derive(Object)]
pub struct MailSettingsRequest {
    /// E.g. `客服中心 <service@example.com>`; null or absent: the server's.
    pub from: Option<String>,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://user:pass@host:465`; null or absent:
    /// the server's transport.
    pub smtp_url: Option<String>,
}

fn out(m: &TenantMail) -> MailSettingsOut {
    MailSettingsOut {
        from: m.from.clone(),
        smtp_url: m.smtp_url.as_deref().map(mail::mask_url),
        uses_server_transport: m.smtp_url.is_none(),
    }
}

#[OpenApi(tag = "Tag::Account")]
impl SettingsApi {
    /// The company's mail settings.
    #[oai(path = "/settings/mail", method = "get")]
    async fn get_mail(&self, auth: Auth) -> ApiResult<Json<MailSettingsOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let m = mail::settings_of(&mut tx, &caller, self.0.master_key.as_deref()).await?;
        tx.commit().await?;
        Ok(Json(out(&m)))
    }

    /// Replaces the company's mail settings (the SMTP URL is stored encrypted).
    #[oai(path = "/settings/mail", method = "put")]
    async fn put_mail(
        &self,
        auth: Auth,
        body: Json<MailSettingsRequest>,
    ) -> ApiResult<Json<MailSettingsOut>> {
        let blank = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let wanted = TenantMail {
            from: blank(body.0.from),
            smtp_url: blank(body.0.smtp_url),
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (actor, master) = (Actor::of(&ctx), self.0.master_key.as_deref());
        let saved = mail::change_settings(&mut tx, &caller, &actor, master, &wanted).await?;
        tx.commit().await?;
        Ok(Json(out(&saved)))
    }
}
