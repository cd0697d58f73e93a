//! `/api/v1/ext/{install}/{path}`: plugin endpoints. The credential is checked as REST checks
//! it (bearer session token or API key); `crm_plugins::endpoints` checks the endpoint and
//! its declared permission in that request's transaction, which then ends; the plugin runs
//! after it. A plugin's failure is a problem+json (`plugin.timeout`, `plugin.trap`, …, or
//! the plugin's own error code with 502).

use crate::rest::auth::{bearer, credential_of, missing_credential, Admit};
use crate::rest::error::{ApiError, Problem};
use crate::server::AppState;
use crm_core::Error;
use crm_plugins::{endpoints, CallError, RequestIn};
use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::web::{Data, Path};
use poem::{handler, Body, Request, Response};
use uuid::Uuid;

fn problem(err: Error) -> Response {
    ApiError(err).problem().into_response()
}

/// Request headers a plugin sees: none that carry credentials.
fn forwarded(req: &Request) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "authorization" | "cookie" | "x-csrf-token" | "proxy-authorization"
            )
        })
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Response headers a plugin may set (no cookies, no security policy of the server's).
fn allowed_response_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !matches!(
        name.as_str(),
        "set-cookie"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "content-security-policy"
            | "x-content-type-options"
            | "strict-transport-security"
            | "access-control-allow-origin"
            | "access-control-allow-credentials"
    )
}

fn failure(e: &CallError) -> Response {
    let status = match e {
        CallError::Deadline => StatusCode::GATEWAY_TIMEOUT,
        CallError::InputTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        CallError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    };
    Problem::new(status, e.code(), e.message()).into_response()
}

#[handler]
pub async fn call(
    req: &Request,
    Path((install, path)): Path<(String, String)>,
    body: Body,
    state: Data<&AppState>,
) -> Response {
    let Some(token) = bearer(req) else {
        return problem(missing_credential());
    };
    let Ok(install) = Uuid::parse_str(&install) else {
        return problem(Error::not_found(
            "plugin.endpoint_not_found",
            "no such plugin endpoint: the path starts with the install's id",
        ));
    };
    let credential = match credential_of(&state, req, &token).await {
        Ok(c) => c,
        Err(e) => return problem(e.0),
    };
    let (mut tx, caller, ctx) = match state.open(&credential, Admit::Unrestricted).await {
        Ok(o) => o,
        Err(e) => return problem(e.0),
    };
    let method = req.method().as_str().to_owned();
    let path = path.trim_matches('/').to_owned();
    let opened =
        match endpoints::open(&state.plugins, &mut tx, &caller, install, &method, &path).await {
            Ok(o) => o,
            Err(e) => return problem(e),
        };
    if let Err(e) = tx.commit().await {
        return problem(e);
    }
    let body = match body.into_vec().await {
        Ok(b) => b,
        Err(e) => {
            return problem(Error::bad_request(
                "request.unreadable",
                format!("the request body could not be read: {e}"),
            ))
        }
    };
    let request = RequestIn {
        method,
        path,
        query: req.uri().query().unwrap_or_default().to_owned(),
        headers: forwarded(req),
        body,
        user_id: caller.user_id.map(|u| u.to_string()).unwrap_or_default(),
    };
    let answer = endpoints::call(
        &state.plugins,
        &ctx.tenant,
        opened,
        request,
        ctx.meta.request_id.clone(),
    )
    .await;
    let response = match answer {
        Err(e) => return problem(e),
        Ok(Err(e)) => return failure(&e),
        Ok(Ok(r)) => r,
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY);
    // A tenant's plugin answers on the platform's origin: whatever it sends is never run as
    // a page of that origin (no scripts, no sniffing into HTML).
    let mut out = Response::builder()
        .status(status)
        .header("content-security-policy", "sandbox; default-src 'none'")
        .header("x-content-type-options", "nosniff");
    for (name, value) in response.headers {
        if !allowed_response_header(&name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out = out.header(n, v);
        }
    }
    out.body(response.body)
}
