//! Confirmation links of mail (`crm_core::mail::verification`): the sign-up address and a
//! wanted sender address. The link in the mail opens `GET /auth/verify-email?token=…`;
//! `POST` does the same for a client. Both need no sign-in: the `tce_…` token names its
//! tenant and is the proof.

use super::auth::{tenant_suspended, Auth};
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use crm_core::identity::tokens;
use crm_core::mail::verification::{self, invalid_link, Confirmed};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

pub struct MailVerificationApi(pub AppState);

#[derive(Object)]
pub struct VerifyEmailRequest {
    /// The `tce_…` token from the link.
    pub token: String,
}

/// What a link confirmed.
#[derive(Object)]
pub struct VerifyEmailResponse {
    /// `signup` (the company is now verified) or `sender` (the address is now its sender).
    pub purpose: String,
    pub address: String,
    /// Whether the company is verified.
    pub verified: bool,
}

/// Where the link was sent again.
#[derive(Object)]
pub struct ResendResponse {
    pub sent_to: String,
}

impl MailVerificationApi {
    async fn confirm(&self, token: &str) -> ApiResult<Json<VerifyEmailResponse>> {
        let (tenant_id, hash) =
            tokens::parse_mail_confirmation(token.trim()).ok_or_else(invalid_link)?;
        let tenant = self
            .0
            .tenants
            .by_id(tenant_id)
            .await?
            .ok_or_else(invalid_link)?;
        if !tenant.is_active() {
            return Err(tenant_suspended().into());
        }
        let mut tx = self.0.db.tenant_tx(&tenant.ctx()?).await?;
        let Confirmed { purpose, address } = verification::confirm(&mut tx, &hash).await?;
        let verified = verification::is_verified(&mut tx).await?;
        tx.commit().await?;
        Ok(Json(VerifyEmailResponse {
            purpose,
            address,
            verified,
        }))
    }
}

#[OpenApi(tag = "Tag::Account")]
impl MailVerificationApi {
    /// Use a confirmation link's token (once, within 72 hours): verifies the company's
    /// sign-up address, or makes a pending sender address the company's sender.
    #[oai(path = "/auth/verify-email", method = "post")]
    async fn verify_email(
        &self,
        body: Json<VerifyEmailRequest>,
    ) -> ApiResult<Json<VerifyEmailResponse>> {
        self.confirm(&body.0.token).await
    }

    /// The link in a confirmation mail: the same as the POST.
    #[oai(path = "/auth/verify-email", method = "get")]
    async fn verify_email_link(
        &self,
        token: Query<String>,
    ) -> ApiResult<Json<VerifyEmailResponse>> {
        self.confirm(&token.0).await
    }

    /// Mail the sign-up verification link again, to the calling administrator's own address
    /// (`tenant:manage`; 409 `mail.already_verified`).
    #[oai(path = "/auth/verify-email/resend", method = "post")]
    async fn resend(&self, auth: Auth) -> ApiResult<Json<ResendResponse>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let sent_to = verification::resend(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(ResendResponse { sent_to }))
    }
}
