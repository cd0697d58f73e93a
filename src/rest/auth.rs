//! Turning a bearer credential into a [`RequestCtx`] and a [`Caller`]: the token names its
//! tenant, the tenant must be active (and match `X-Tenant` when sent), and the token must be
//! live in that tenant's own schema — checked inside the request's one tenant transaction,
//! before the work and in the same round trips (`AppState::begin`).

use super::error::{current_request_id, ApiError, ApiResult};
use crate::server::AppState;
use crm_core::authz::Caller;
use crm_core::context::{RequestCtx, RequestMeta};
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::identity::{api_keys, sessions, tokens, CredentialKind, Principal};
use crm_core::Error;
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;

/// A session token (`tcs_…`) or an API key (`tck_…`), as `Authorization: Bearer <token>`.
/// The security check only reads the token's form and its tenant (from the registry cache);
/// the credential itself is checked by [`AppState::begin`] inside the request's one tenant
/// transaction, together with the request's work.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "identify")]
pub struct Auth(pub Credential);

/// A well-formed bearer credential of an active tenant, not yet checked: nothing in it can
/// be used before [`AppState::begin`] has checked it.
pub struct Credential {
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

/// The checker of both bearer schemes ([`Auth`] and `setup_auth::SetupAuth`).
pub(super) async fn identify(req: &Request, bearer: Bearer) -> poem::Result<Credential> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError(Error::internal("application state missing")))?;
    Ok(credential(state, req, &bearer.token).await?)
}

async fn credential(state: &AppState, req: &Request, token: &str) -> ApiResult<Credential> {
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
    let credential = Credential {
        tenant: tenant.ctx()?,
        kind: parsed.kind,
        hash: parsed.hash,
        meta: request_meta(req, state),
    };
    if large_body(req) {
        // Never read a large body for an unchecked credential: check it now, in a transaction
        // of its own; `begin` checks it again with the work.
        let mut tx = state.db.tenant_tx(&credential.tenant).await?;
        check(state, &mut tx, &credential, Admit::Restricted).await?;
        tx.commit().await?;
    }
    Ok(credential)
}

/// Bodies larger than this (uploads) are read only after the credential has been checked.
const CHECK_BEFORE_BODIES_OVER: u64 = 64 * 1024;

fn large_body(req: &Request) -> bool {
    match req
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(length) => length > CHECK_BEFORE_BODIES_OVER,
        None => req.header("transfer-encoding").is_some(),
    }
}

/// The credential's principal, checked in `tx`: the session or API key must be live and its
/// user active; 401 `auth.invalid_token` otherwise.
/// Which sessions a check admits: every endpoint but the few a restricted session needs
/// (see `setup_auth`) refuses a restricted one with 403.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Unrestricted,
    Restricted,
}

async fn check(
    state: &AppState,
    tx: &mut TenantTx,
    credential: &Credential,
    admit: Admit,
) -> ApiResult<Principal> {
    let (ttl, max_age) = (state.session_ttl(), state.session_max_age());
    let principal = match credential.kind {
        CredentialKind::Session if admit == Admit::Restricted => {
            sessions::authenticate_any(tx, &credential.hash, ttl, max_age).await?
        }
        CredentialKind::Session => {
            sessions::authenticate(tx, &credential.hash, ttl, max_age).await?
        }
        CredentialKind::ApiKey => api_keys::authenticate(tx, &credential.hash).await?,
        // Feed, portal and survey tokens open their own routes, never the staff API.
        CredentialKind::Calendar
        | CredentialKind::PortalLink
        | CredentialKind::PortalSession
        | CredentialKind::Survey => None,
    };
    Ok(principal.ok_or_else(invalid_token)?)
}

pub use crm_tenants::registry::suspended as tenant_suspended;

impl AppState {
    /// Opens the request's one tenant transaction and, in it, checks the credential (the
    /// session or API key must be live, its user active) and builds the [`Caller`], whose
    /// enforcer and grants come from the authorizer's cache while the tenant's policy version
    /// is unchanged. The services called with that caller check its permissions and scopes
    /// themselves.
    pub async fn begin(&self, auth: &Auth) -> ApiResult<(TenantTx, Caller, RequestCtx)> {
        self.open(&auth.0, Admit::Unrestricted).await
    }

    /// [`AppState::begin`] for a credential, admitting restricted sessions or not.
    pub(super) async fn open(
        &self,
        credential: &Credential,
        admit: Admit,
    ) -> ApiResult<(TenantTx, Caller, RequestCtx)> {
        let mut tx = self.db.tenant_tx(&credential.tenant).await?;
        let principal = check(self, &mut tx, credential, admit).await?;
        let caller = self.authz.caller(&self.db, &mut tx, &principal).await?;
        let ctx = RequestCtx {
            tenant: credential.tenant.clone(),
            principal,
            meta: credential.meta.clone(),
        };
        Ok((tx, caller, ctx))
    }

    /// Checks the credential in a transaction of its own and returns the request's context,
    /// for the few operations whose service runs its own transactions (password change).
    pub async fn authenticated(&self, auth: &Auth) -> ApiResult<RequestCtx> {
        let (tx, _, ctx) = self.begin(auth).await?;
        tx.commit().await?;
        Ok(ctx)
    }
}
