//! Turning a bearer credential into a [`RequestCtx`]: the token names its tenant, the tenant
//! must be active (and match `X-Tenant` when sent), and the token must be live in that
//! tenant's own schema.

use super::error::{current_request_id, ApiError, ApiResult};
use crate::server::AppState;
use crm_core::authz::{Caller, Permission};
use crm_core::context::{RequestCtx, RequestMeta};
use crm_core::db::TenantTx;
use crm_core::identity::{api_keys, sessions, tokens, CredentialKind};
use crm_core::Error;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// A session token (`tcs_…`) or an API key (`tck_…`), as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "authenticate")]
pub struct Auth(pub RequestCtx);

fn invalid_token() -> Error {
    Error::unauthenticated(
        "auth.invalid_token",
        "the token is unknown, expired or revoked; log in again at POST /api/v1/auth/login",
    )
}

/// Facts about the request for audit entries.
pub fn request_meta(req: &Request, state: &AppState) -> RequestMeta {
    let forwarded = state
        .config
        .trust_forwarded_for
        .then(|| req.header("x-forwarded-for"))
        .flatten()
        // The proxy appends the address it saw: the last entry is the one it vouches for;
        // earlier entries come from the client and can be forged.
        .and_then(|v| v.rsplit(',').next())
        .map(|ip| ip.trim().to_owned());
    let ip = forwarded.or_else(|| {
        req.remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
    });
    RequestMeta {
        request_id: current_request_id().unwrap_or_default(),
        ip,
        user_agent: req
            .header("user-agent")
            .map(|ua| ua.chars().take(300).collect()),
        rule_depth: 0,
    }
}

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<RequestCtx> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError(Error::internal("application state missing")))?;
    Ok(resolve(state, req, &bearer.token).await?)
}

async fn resolve(state: &AppState, req: &Request, token: &str) -> ApiResult<RequestCtx> {
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
    let ctx = tenant.ctx()?;
    let mut tx = state.db.tenant_tx(&ctx).await?;
    let principal = match parsed.kind {
        CredentialKind::Session => {
            sessions::authenticate(
                &mut tx,
                &parsed.hash,
                state.session_ttl(),
                state.session_max_age(),
            )
            .await?
        }
        CredentialKind::ApiKey => api_keys::authenticate(&mut tx, &parsed.hash).await?,
        // Feed, portal and survey tokens open their own routes, never the staff API.
        CredentialKind::Calendar
        | CredentialKind::PortalLink
        | CredentialKind::PortalSession
        | CredentialKind::Survey => None,
    }
    .ok_or_else(invalid_token)?;
    tx.commit().await?;
    Ok(RequestCtx {
        tenant: ctx,
        principal,
        meta: request_meta(req, state),
    })
}

pub use crm_tenants::registry::suspended as tenant_suspended;

impl AppState {
    /// Opens the request's tenant transaction and builds its [`Caller`] in it, with the
    /// tenant's casbin enforcer deciding its permissions; the services called with that
    /// caller check its permissions and scopes themselves.
    pub async fn begin(&self, ctx: &RequestCtx) -> ApiResult<(TenantTx, Caller)> {
        let principal = &ctx.principal;
        let enforcement = (self.authz)
            .enforcement(&self.db, &ctx.tenant, principal.policy_version)
            .await?;
        let mut tx = self.db.tenant_tx(&ctx.tenant).await?;
        let caller = Caller::load(&mut tx, principal)
            .await?
            .enforced_by(enforcement);
        Ok((tx, caller))
    }

    /// Every permission the caller holds.
    pub async fn permissions_of(&self, ctx: &RequestCtx) -> ApiResult<Vec<Permission>> {
        Ok(self
            .authz
            .permissions(
                &self.db,
                &ctx.tenant,
                ctx.principal.policy_version,
                &ctx.principal.subject(),
            )
            .await?)
    }
}
