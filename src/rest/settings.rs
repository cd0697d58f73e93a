//! `/settings/mail`: a company's own sender and SMTP server for the mail it sends (ticket
//! replies, portal links, surveys, reminders), overriding the server's mail settings. A new
//! sender waits for the link mailed to it; the SMTP host must pass the outbound address
//! policy (`crm_core::mail`).
//! `/settings/security`: the roles that require MFA and the password policy.

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::mail::{self, TenantMail};
use crm_core::password_policy::PasswordPolicy;
use crm_core::security::{self, SecuritySettings};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

pub struct SettingsApi(pub AppState);

#[derive(Object)]
pub struct MailSettingsOut {
    /// The confirmed sender of the company's mail; absent: the server's `mail.from`, shown
    /// as "<company> via <platform>".
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    pub from: Option<String>,
    /// A sender waiting for the confirmation link mailed to it; not used until confirmed.
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    pub from_pending: Option<String>,
    /// Whether the company's sign-up address is verified: until then its mail goes only to
    /// its own users and its records' contacts and customers.
    pub verified: bool,
    /// The company's SMTP server, password hidden; absent: the server's transport.
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    pub smtp_url: Option<String>,
    /// Whether the company uses the server's transport.
    pub uses_server_transport: bool,
}

#[derive(Object)]
pub struct MailSettingsRequest {
    /// E.g. `客服中心 <service@example.com>`; null or absent: the server's. A new address is
    /// used once confirmed through the link mailed to it.
    pub from: Option<String>,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://user:pass@host:465`; null or absent:
    /// the server's transport.
    pub smtp_url: Option<String>,
}

/// The rules a new password must meet.
#[derive(Object)]
pub struct PasswordPolicyDto {
    /// 8 to 128 characters (default 10).
    pub min_length: i32,
    pub require_upper: bool,
    pub require_lower: bool,
    pub require_digit: bool,
    /// Anything neither a letter nor a digit, spaces included.
    pub require_symbol: bool,
    /// Refuse well-known common passwords (default true).
    #[oai(default = "default_true")]
    pub reject_common: bool,
    /// Days after which the password must be changed at the next login; null: never.
    #[oai(nullable)]
    pub expiry_days: Option<i32>,
    /// A change may not reuse any of the user's latest N passwords, 0 to 24 (default 0).
    pub history: i32,
}

fn default_true() -> bool {
    true
}

/// The company's security settings.
#[derive(Object)]
pub struct SecuritySettingsDto {
    /// Users with any of these roles must set up MFA at their next login.
    pub mfa_required_roles: Vec<String>,
    pub password_policy: PasswordPolicyDto,
}

impl From<SecuritySettings> for SecuritySettingsDto {
    fn from(s: SecuritySettings) -> Self {
        let p = s.password_policy;
        SecuritySettingsDto {
            mfa_required_roles: s.mfa_required_roles,
            password_policy: PasswordPolicyDto {
                min_length: p.min_length,
                require_upper: p.require_upper,
                require_lower: p.require_lower,
                require_digit: p.require_digit,
                require_symbol: p.require_symbol,
                reject_common: p.reject_common,
                expiry_days: p.expiry_days,
                history: p.history,
            },
        }
    }
}

impl From<SecuritySettingsDto> for SecuritySettings {
    fn from(s: SecuritySettingsDto) -> Self {
        let p = s.password_policy;
        SecuritySettings {
            mfa_required_roles: s.mfa_required_roles,
            password_policy: PasswordPolicy {
                min_length: p.min_length,
                require_upper: p.require_upper,
                require_lower: p.require_lower,
                require_digit: p.require_digit,
                require_symbol: p.require_symbol,
                reject_common: p.reject_common,
                expiry_days: p.expiry_days,
                history: p.history,
            },
        }
    }
}

fn out(m: &TenantMail) -> MailSettingsOut {
    MailSettingsOut {
        from: m.from.clone(),
        from_pending: m.from_pending.clone(),
        verified: m.verified,
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

    /// Replaces the company's mail settings (the SMTP URL is stored encrypted; its host must
    /// be public and its port 25, 465 or 587, else 422 naming the refusal). A new sender is
    /// mailed a confirmation link and stays pending until it is used (an unverified company
    /// can only ask for its own users' addresses: 403 `mail.unverified_tenant`).
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
            ..TenantMail::default()
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (actor, master) = (Actor::of(&ctx), self.0.master_key.as_deref());
        let policy = self.0.config.mail.tenant_smtp_policy();
        let saved =
            mail::change_settings(&mut tx, &caller, &actor, master, &policy, &wanted).await?;
        tx.commit().await?;
        Ok(Json(out(&saved)))
    }

    /// The roles that require MFA and the password policy (`tenant:manage`).
    #[oai(path = "/settings/security", method = "get")]
    async fn get_security(&self, auth: Auth) -> ApiResult<Json<SecuritySettingsDto>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let settings = security::get(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(settings.into()))
    }

    /// Replaces the security settings (`tenant:manage`, audited). MFA requirements apply
    /// from each user's next login, the password policy from the next password set.
    #[oai(path = "/settings/security", method = "put")]
    async fn put_security(
        &self,
        auth: Auth,
        body: Json<SecuritySettingsDto>,
    ) -> ApiResult<Json<SecuritySettingsDto>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let saved = security::update(&mut tx, &caller, &actor, body.0.into()).await?;
        tx.commit().await?;
        Ok(Json(saved.into()))
    }
}
