//! Two-factor authentication: the second step of a login, enrolling and confirming (a
//! restricted session may), turning one's own MFA off, and an administrator's reset.

use super::account::LoginResponse;
use super::auth::{request_meta, Auth};
use super::error::ApiResult;
use super::setup_auth::SetupAuth;
use super::{NoContent, Tag};
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::{mfa, staff};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct MfaApi(pub AppState);

#[derive(Object)]
pub struct MfaLoginRequest {
    /// The `mfa_token` of the password step.
    pub mfa_token: String,
    /// The current 6-digit code of the authenticator app, or an unused recovery code.
    pub code: String,
}

/// What the authenticator app needs.
#[derive(Object)]
pub struct MfaEnrollment {
    /// The secret in base32, to type in.
    pub secret: String,
    /// `otpauth://totp/…`: show it as a QR code for the app to scan.
    pub otpauth_uri: String,
}

#[derive(Object)]
pub struct MfaCodeRequest {
    /// A 6-digit code of the authenticator app.
    pub code: String,
}

/// Shown once: keep them somewhere safe.
#[derive(Object)]
pub struct RecoveryCodes {
    /// Each logs in once instead of a code, for when the phone is lost.
    pub recovery_codes: Vec<String>,
}

#[derive(Object)]
pub struct DisableMfaRequest {
    /// The current password.
    pub password: String,
    /// A code of the authenticator app, or a recovery code.
    pub code: String,
}

#[OpenApi(tag = "Tag::Account")]
impl MfaApi {
    /// The second step of a login for a user with MFA: the `mfa_token` of the password step
    /// and a code. A wrong code counts like a wrong password (429 after repeated failures).
    #[oai(path = "/auth/login/mfa", method = "post")]
    async fn login_mfa(
        &self,
        req: &Request,
        body: Json<MfaLoginRequest>,
    ) -> ApiResult<Json<LoginResponse>> {
        let state = &self.0;
        let meta = request_meta(req, state);
        let attempt = crm_tenants::mfa::login_with_code(
            &state.db,
            state.master_key.as_deref(),
            state.config.throttle_policy(),
            state.session_ttl(),
            &body.mfa_token,
            &body.code,
            &meta,
        )
        .await?;
        state.metrics.login(attempt.outcome.as_str());
        Ok(Json(attempt.result?.into()))
    }

    /// Start setting up MFA: a new secret for the authenticator app, active once a code of it
    /// is confirmed with `POST /account/mfa/confirm`. 409 when MFA is on already.
    #[oai(path = "/account/mfa/enroll", method = "post")]
    async fn enroll(&self, auth: SetupAuth) -> ApiResult<Json<MfaEnrollment>> {
        let (mut tx, _, ctx) = self.0.begin_setup(&auth).await?;
        let issuer = format!("TC CRM {}", ctx.tenant.slug);
        let master = self.0.master_key.as_deref();
        let started = mfa::enroll(&mut tx, master, &ctx.principal, &issuer).await?;
        tx.commit().await?;
        Ok(Json(MfaEnrollment {
            secret: started.secret,
            otpauth_uri: started.otpauth_uri,
        }))
    }

    /// Finish setting up MFA with a first code; answers the ten recovery codes, shown once.
    #[oai(path = "/account/mfa/confirm", method = "post")]
    async fn confirm(
        &self,
        auth: SetupAuth,
        body: Json<MfaCodeRequest>,
    ) -> ApiResult<Json<RecoveryCodes>> {
        let (mut tx, _, ctx) = self.0.begin_setup(&auth).await?;
        let (actor, master) = (Actor::of(&ctx), self.0.master_key.as_deref());
        let codes = mfa::confirm(&mut tx, master, &actor, &ctx.principal, &body.code).await?;
        tx.commit().await?;
        Ok(Json(RecoveryCodes {
            recovery_codes: codes,
        }))
    }

    /// Turn one's own MFA off, with the current password and a code. 409 when a role of the
    /// user requires MFA.
    #[oai(path = "/account/mfa", method = "delete")]
    async fn disable(&self, auth: Auth, body: Json<DisableMfaRequest>) -> ApiResult<NoContent> {
        let state = &self.0;
        let ctx = state.authenticated(&auth).await?;
        crm_tenants::mfa::disable_own(
            &state.db,
            &ctx.tenant,
            state.master_key.as_deref(),
            &ctx.principal,
            &Actor::of(&ctx),
            &body.password,
            &body.code,
            state.config.throttle_policy(),
        )
        .await?;
        Ok(NoContent::NoContent)
    }

    /// Reset a user's MFA (a lost phone): the user logs in with the password alone next time.
    /// Needs `users:manage`; audited.
    #[oai(path = "/users/:id/mfa/reset", method = "post", tag = "Tag::Users")]
    async fn reset(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        staff::reset_mfa(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
