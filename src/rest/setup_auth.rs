//! The credential of the few endpoints a restricted session may reach (see
//! `crm_core::identity::Restriction`): `/me`, logout, changing one's password and MFA
//! enrolment. [`SetupAuth`] is read like `Auth` and checked by [`AppState::begin_setup`] in
//! the request's one transaction, but admits a restricted session
//! (`sessions::authenticate_any`); `Auth`'s check refuses one with 403
//! (`sessions::authenticate`), so any endpoint not opting in here stays closed to it.
//!
//! The token and tenant checks repeat `auth.rs`'s `credential` and `check`: when the two meet
//! in one place, the only difference must stay `authenticate_any` here, `authenticate` there.

use super::auth::{request_meta, tenant_suspended};
use super::error::{ApiError, ApiResult};
use crate::server::AppState;
use crm_core::authz::Caller;
use crm_core::context::{RequestCtx, RequestMeta};
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::identity::{api_keys, sessions, tokens, CredentialKind};
use crm_core::Error;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// A session token (`tcs_…`, restricted or not) or an API key (`tck_…`), as
/// `Authorization: Bearer <token>`; checked by [`AppState::begin_setup`].
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "identify")]
pub struct SetupAuth(pub SetupCredential);

/// A well-formed bearer credential of an active tenant, not yet checked.
pub struct SetupCredential {
    tenant: TenantCtx,
    kind: CredentialKind,
    hash: String,
    meta: RequestMeta,
}

fn invalid_token() -> Error {
    Error::unauthenticated(
        "auth.invalid_token",
        "the token is unknown, expired or revoked; log in again at POST /api/v1/auth/login",
    )
}

async fn identify(req: &Request, bearer: Bearer) -> poem::Result<SetupCredential> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError(Error::internal("application state missing")))?;
    Ok(credential(state, req, &bearer.token).await?)
}

async fn credential(state: &AppState, req: &Request, token: &str) -> ApiResult<SetupCredential> {
    let parsed = tokens::parse(token).ok_or_else(invalid_token)?;
    let tenant = state
        .tenants
        .by_id(parsed.tenant_id)
        .await?
        .ok_or_else(invalid_token)?;
    if let Some(claimed) = req.header("x-tenant") {
        if claimed != tenant.slug && claimed != tenant.id.to_string() {
            return Err(Error::forbidden(
                "tenant.mismatch",
                format!(
                    "X-Tenant names '{claimed}' but the credential belongs to another tenant; drop the header or use a credential of that tenant"
                ),
            )
            .into());
        }
    }
    if !tenant.is_active() {
        return Err(tenant_suspended().into());
    }
    Ok(SetupCredential {
        tenant: tenant.ctx()?,
        kind: parsed.kind,
        hash: parsed.hash,
        meta: request_meta(req, state),
    })
}

impl AppState {
    /// [`AppState::begin`] for [`SetupAuth`]: the request's one transaction, the credential
    /// checked in it (a restricted session admitted), the [`Caller`] built there.
    pub async fn begin_setup(&self, auth: &SetupAuth) -> ApiResult<(TenantTx, Caller, RequestCtx)> {
        let credential = &auth.0;
        let mut tx = self.db.tenant_tx(&credential.tenant).await?;
        let principal = match credential.kind {
            CredentialKind::Session => {
                sessions::authenticate_any(
                    &mut tx,
                    &credential.hash,
                    self.session_ttl(),
                    self.session_max_age(),
                )
                .await?
            }
            CredentialKind::ApiKey => api_keys::authenticate(&mut tx, &credential.hash).await?,
            CredentialKind::Calendar
            | CredentialKind::PortalLink
            | CredentialKind::PortalSession
            | CredentialKind::Survey => None,
        }
        .ok_or_else(invalid_token)?;
        let caller = self.authz.caller(&self.db, &mut tx, &principal).await?;
        let ctx = RequestCtx {
            tenant: credential.tenant.clone(),
            principal,
            meta: credential.meta.clone(),
        };
        Ok((tx, caller, ctx))
    }

    /// [`AppState::authenticated`] for [`SetupAuth`]: the context of a checked credential, for
    /// the use cases that run their own transactions.
    pub async fn authenticated_setup(&self, auth: &SetupAuth) -> ApiResult<RequestCtx> {
        let (tx, _, ctx) = self.begin_setup(auth).await?;
        tx.commit().await?;
        Ok(ctx)
    }
}
