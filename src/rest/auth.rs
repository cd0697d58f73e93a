//! Turning a bearer credential into a [`RequestCtx`] and a [`Caller`]: the token names its
//! tenant, the tenant must be active (and match `X-Tenant` when sent), and the token must be
//! live in that tenant's own schema — checked inside the request's one tenant transaction,
//! before the work and in the same round trips (`AppState::begin`).

use super::error::{current_request_id, problem_from_poem, ApiError, ApiResult};
use crate::server::AppState;
use crm_core::authz::Caller;
use crm_core::context::{RequestCtx, RequestMeta};
use crm_core::db::{TenantCtx, TenantTx};
use crm_core::identity::{api_keys, sessions, tokens, CredentialKind, Principal};
use crm_core::Error;
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use std::sync::Arc;

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

impl Credential {
    /// The tenant the credential names (not yet checked).
    pub fn tenant_id(&self) -> uuid::Uuid {
        self.tenant.id
    }
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
        import_id: None,
    }
}

/// The checker of both bearer schemes ([`Auth`] and `setup_auth::SetupAuth`).
pub(super) async fn identify(req: &Request, bearer: Bearer) -> poem::Result<Credential> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError(Error::internal("application state missing")))?;
    Ok(credential(state, req, &bearer.token).await?)
}

/// The bearer token of a request to an endpoint outside the OpenAPI service (`/graphql`,
/// `/api/v1/ext`).
pub(crate) fn bearer(req: &Request) -> Option<String> {
    req.header(header::AUTHORIZATION)
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

/// 401 for such a request without one.
pub(crate) fn missing_credential() -> Error {
    Error::unauthenticated(
        "auth.missing_token",
        "send Authorization: Bearer <session token or API key>; log in at POST /api/v1/auth/login",
    )
}

/// A well-formed credential of an active tenant from a bearer token (for endpoints outside
/// the OpenAPI service, such as `/graphql`); [`AppState::open`] checks it.
pub(crate) async fn credential_of(
    state: &AppState,
    req: &Request,
    token: &str,
) -> ApiResult<Credential> {
    credential(state, req, token).await
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
pub(crate) enum Admit {
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
    pub(crate) async fn open(
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

/// The web app's session cookie: the session token, HttpOnly, sent only to the API.
pub const SESSION_COOKIE: &str = "crm_session";
/// The double-submit CSRF token: readable by the app, echoed in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "crm_csrf";
const CSRF_HEADER: &str = "x-csrf-token";
/// Sent by the app with login, MFA and sign-up to also get the cookies (API clients don't).
const COOKIE_OPT_IN: &str = "x-session-cookie";
/// The answers that carry a new session `token` the cookie may hold.
const SESSION_STARTS: &[&str] = &[
    "/api/v1/auth/login",
    "/api/v1/auth/login/mfa",
    "/api/v1/signup",
];

/// Cookie sessions for the web app, around `/api/v1` (documented in ARCHITECTURE.md).
///
/// The app keeps its token in memory and sends it as a bearer; for page loads (a reload, a
/// second tab) the server also sets, on a login or sign-up that asks for it
/// (`X-Session-Cookie: set`), an HttpOnly `SameSite=Strict` cookie holding the session token
/// (`Path=/api/v1`, `Secure` when the request came over https) and a readable CSRF cookie.
/// A request without `Authorization` but with the session cookie is authenticated by it as if
/// it were the bearer; unless it is GET/HEAD/OPTIONS it must echo the CSRF cookie in
/// `X-CSRF-Token` (403 `auth.csrf` otherwise). Logout, and a 401 for a cookie, clear both.
pub async fn cookie_session<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let path = req.original_uri().path().to_owned();
    let post = req.method() == Method::POST;
    let cookies = Cookies::of(&req);
    let by_cookie = match cookies.session.as_deref() {
        Some(token) if !req.headers().contains_key(header::AUTHORIZATION) => {
            let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
            if !safe && !csrf_matches(req.header(CSRF_HEADER), cookies.csrf.as_deref()) {
                return Ok(problem_from_poem(
                    ApiError(Error::forbidden(
                        "auth.csrf",
                        "a request authenticated by the session cookie must send the crm_csrf \
                         cookie's value in X-CSRF-Token; reload the page",
                    ))
                    .into(),
                ));
            }
            let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ApiError(invalid_token()))?;
            req.headers_mut().insert(header::AUTHORIZATION, bearer);
            true
        }
        _ => false,
    };
    let opt_in =
        post && SESSION_STARTS.contains(&path.as_str()) && req.header(COOKIE_OPT_IN) == Some("set");
    let secure = over_https(&req);
    let max_age = req
        .data::<AppState>()
        .map_or(3600, |s| s.config.session_max_hours.saturating_mul(3600));
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => problem_from_poem(e),
    };
    let status = resp.status();
    if opt_in && status.is_success() {
        let (parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await?;
        let token = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_owned));
        resp = Response::from_parts(parts, Body::from(bytes));
        if let Some(token) = token.filter(|t| cookie_safe(t)) {
            let csrf = random_hex();
            set_cookie(&mut resp, &session_cookie(&token, max_age, secure));
            set_cookie(&mut resp, &csrf_cookie(&csrf, max_age, secure));
        }
    } else if (post && path == "/api/v1/auth/logout")
        || (by_cookie && status == StatusCode::UNAUTHORIZED)
    {
        set_cookie(&mut resp, &session_cookie("", 0, secure));
        set_cookie(&mut resp, &csrf_cookie("", 0, secure));
    }
    Ok(resp)
}

/// The two cookies of [`cookie_session`], as the request carries them.
#[derive(Default)]
struct Cookies {
    session: Option<String>,
    csrf: Option<String>,
}

impl Cookies {
    fn of(req: &Request) -> Self {
        let mut found = Cookies::default();
        for value in req.headers().get_all(header::COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            for pair in value.split(';') {
                match pair.trim().split_once('=') {
                    Some((SESSION_COOKIE, v)) if !v.is_empty() => found.session = Some(v.into()),
                    Some((CSRF_COOKIE, v)) if !v.is_empty() => found.csrf = Some(v.into()),
                    _ => {}
                }
            }
        }
        found
    }
}

/// Both present and equal, compared in constant time.
fn csrf_matches(sent: Option<&str>, cookie: Option<&str>) -> bool {
    let (Some(sent), Some(cookie)) = (sent, cookie) else {
        return false;
    };
    sent.len() == cookie.len()
        && sent
            .bytes()
            .zip(cookie.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Tokens are `tcs_<uuid>_<base64url>`: nothing a cookie value must not hold.
fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn over_https(req: &Request) -> bool {
    let Some(state) = req.data::<AppState>() else {
        return false;
    };
    req.uri().scheme_str() == Some("https")
        || state
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
        || (state.config.trust_forwarded_for && req.header("x-forwarded-proto") == Some("https"))
}

fn session_cookie(token: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/api/v1; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn csrf_cookie(value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{CSRF_COOKIE}={value}; Path=/; Max-Age={max_age}; SameSite=Strict{secure}")
}

fn set_cookie(resp: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn random_hex() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn csrf_tokens_must_be_sent_and_equal() {
        assert!(csrf_matches(Some("abc"), Some("abc")));
        assert!(!csrf_matches(Some("abd"), Some("abc")));
        assert!(!csrf_matches(Some("ab"), Some("abc")));
        assert!(!csrf_matches(None, Some("abc")));
        assert!(!csrf_matches(Some("abc"), None));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let c = session_cookie("tcs_x", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("; Secure"));
        assert!(!session_cookie("tcs_x", 60, false).contains("Secure"));
        assert!(!csrf_cookie("ab", 60, false).contains("HttpOnly"));
        assert!(!cookie_safe("tcs_a; Path=/"));
        assert!(cookie_safe("tcs_0190a_Zz-9"));
    }
}
