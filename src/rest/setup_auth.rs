//! The credential of the few endpoints a restricted session may reach (see
//! `crm_core::identity::Restriction`): `/me`, logout, changing one's password and MFA
//! enrolment. [`SetupAuth`] is read like `Auth` and checked by [`AppState::begin_setup`] in
//! the request's one transaction, but admits a restricted session
//! (`sessions::authenticate_any`); `Auth`'s check refuses one with 403
//! (`sessions::authenticate`), so any endpoint not opting in here stays closed to it.

use super::auth::{Admit, Credential};
use super::error::ApiResult;
use crate::server::AppState;
use crm_core::authz::Caller;
use crm_core::context::RequestCtx;
use crm_core::db::TenantTx;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// A session token (`tcs_…`, restricted or not) or an API key (`tck_…`), as
/// `Authorization: Bearer <token>`; checked by [`AppState::begin_setup`].
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "identify")]
pub struct SetupAuth(pub Credential);

async fn identify(req: &Request, bearer: Bearer) -> poem::Result<Credential> {
    super::auth::identify(req, bearer).await
}

impl AppState {
    /// [`AppState::begin`] for [`SetupAuth`]: the request's one transaction, the credential
    /// checked in it (a restricted session admitted), the [`Caller`] built there.
    pub async fn begin_setup(&self, auth: &SetupAuth) -> ApiResult<(TenantTx, Caller, RequestCtx)> {
        self.open(&auth.0, Admit::Restricted).await
    }

    /// [`AppState::authenticated`] for [`SetupAuth`]: the context of a checked credential, for
    /// the use cases that run their own transactions.
    pub async fn authenticated_setup(&self, auth: &SetupAuth) -> ApiResult<RequestCtx> {
        let (tx, _, ctx) = self.begin_setup(auth).await?;
        tx.commit().await?;
        Ok(ctx)
    }
}
