//! RFC 9457 problem+json: the one place errors become HTTP responses. Service errors keep
//! their stable `code`; errors raised by the framework (bad JSON, unknown route, missing
//! credentials, oversized body) are given codes here so clients never see plain text.

use crm_core::Error;
use poem::http::{header, StatusCode};
use poem::Response;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, for problem bodies and logs.
    pub static REQUEST_ID: String;
}

/// The current request id, if inside a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// One invalid field.
#[derive(Debug, Clone, Serialize, Object)]
pub struct ProblemField {
    /// Path of the field, e.g. `email` or `roles[1]`.
    pub field: String,
    /// Stable code, e.g. `invalid_email`.
    pub code: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Object)]
pub struct Problem {
    /// URI reference naming the problem type.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// What happened and what to do about it.
    pub detail: String,
    /// Stable machine-readable code, e.g. `auth.forbidden`.
    pub code: String,
    /// The request id (also in the `x-request-id` header); quote it when reporting problems.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For validation problems: every invalid field.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ProblemField>>,
    /// For duplicates (409 `customer.duplicate`): the record that already exists.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<uuid::Uuid>,
    /// For 409 `ticket.invalid_transition`: the states the record may move to.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// For 409 `record.pending_approval`: the approval the record waits for.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<uuid::Uuid>,
    /// For 422 `compile.*` on rules: `condition` or `script`, and the 1-based line and column.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// For 429: seconds to wait (also in `Retry-After`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            type_: format!("/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            request_id: current_request_id(),
            errors: None,
            existing_id: None,
            approval_id: None,
            part: None,
            line: None,
            column: None,
            allowed: None,
            retry_after: None,
        }
    }

    pub fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .body(body);
        if let Some(secs) = self.retry_after {
            if let Ok(v) = secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// A service error on its way out of a handler.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub Error);

impl ApiError {
    /// A query met a table or column the tenant's schema does not have yet (42P01, 42703): it
    /// is one version behind.
    fn schema_behind(&self) -> bool {
        matches!(&self.0, Error::Database(db)
            if matches!(db.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref(), Some("42P01" | "42703")))
    }

    /// A statement ran past the tenant transaction's `statement_timeout` (57014).
    fn too_slow(&self) -> bool {
        matches!(&self.0, Error::Database(db)
            if db.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref() == Some("57014"))
    }

    /// Postgres refused a text value (a NUL byte, invalid UTF-8): the caller sent it.
    fn unstorable_text(&self) -> bool {
        matches!(&self.0, Error::Database(db)
            if db.as_database_error().and_then(sqlx::error::DatabaseError::code).as_deref() == Some("22021"))
    }

    fn status_code(&self) -> StatusCode {
        if self.schema_behind() || self.too_slow() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        if self.unstorable_text() {
            return StatusCode::BAD_REQUEST;
        }
        match &self.0 {
            Error::Invalid { .. } | Error::Script { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            // An upload over `uploads.max_bytes` (UploadPolicy::check).
            Error::BadRequest {
                code: "file.too_large",
                ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            // The server lacks the CJK font PDFs need (`[export] pdf_font`): its operator's to fix.
            Error::BadRequest {
                code: "export.pdf_font_missing",
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. }
            | Error::Duplicate { .. }
            | Error::Transition { .. }
            | Error::Locked { .. } => StatusCode::CONFLICT,
            Error::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document (logs internal errors: call once per response).
    pub fn problem(&self) -> Problem {
        let err = &self.0;
        let status = self.status_code();
        if self.unstorable_text() {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "request.invalid_text",
                "the request contains a character text cannot hold (such as a NUL byte); remove it",
            );
        }
        if self.too_slow() {
            tracing::warn!(error = %err, "statement timeout");
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request.too_slow",
                "the request took longer than the server allows (statement_timeout): narrow it \
                 down (fewer rows, more filters) or retry when the data is less busy",
            );
            problem.retry_after = Some(5);
            return problem;
        }
        if self.schema_behind() {
            // A tenant still on the previous schema version reached a newer feature while
            // `crm migrate` (or the server's background upgrade) is on its way to it.
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant.upgrading",
                "this company's data is being upgraded to the new version; retry in a minute",
            );
            problem.retry_after = Some(60);
            tracing::warn!(error = %err, "tenant schema behind the code");
            return problem;
        }
        let detail = match err {
            Error::Database(_) | Error::Internal(_) => {
                tracing::error!(error = %err, "internal error");
                "something went wrong on our side; it has been logged — quote the request id if it persists".to_owned()
            }
            Error::Unavailable(_) => {
                tracing::warn!(error = %err, "dependency unavailable");
                "the service is temporarily unavailable; retry in a few seconds".to_owned()
            }
            other => other.to_string(),
        };
        let mut problem = Problem::new(status, err.code(), detail);
        if let Error::Invalid { fields, .. } = err {
            problem.errors = Some(
                fields
                    .iter()
                    .map(|f| ProblemField {
                        field: f.field.clone(),
                        code: f.code.to_owned(),
                        message: f.message.clone(),
                    })
                    .collect(),
            );
        }
        if let Error::Duplicate { existing_id, .. } = err {
            problem.existing_id = Some(*existing_id);
        }
        if let Error::Locked { approval_id, .. } = err {
            problem.approval_id = Some(*approval_id);
        }
        if let Error::Script {
            part, line, column, ..
        } = err
        {
            problem.part = part.clone();
            problem.line = *line;
            problem.column = *column;
        }
        if let Error::Transition { allowed, .. } = err {
            problem.allowed = Some(allowed.clone());
        }
        if let Error::TooManyRequests {
            retry_after_secs, ..
        }
        | Error::Busy {
            retry_after_secs, ..
        } = err
        {
            problem.retry_after = Some(*retry_after_secs);
        }
        problem
    }
}

impl From<crm_core::FieldError> for ApiError {
    fn from(e: crm_core::FieldError) -> Self {
        ApiError(Error::invalid(vec![e]))
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status_code()
    }

    fn as_response(&self) -> Response {
        self.problem().into_response()
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        let response = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: "application/problem+json",
                schema: Problem::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                response(400, "Malformed request"),
                response(401, "Missing, unknown, expired or revoked credential"),
                response(
                    403,
                    "The credential's role lacks the permission (code auth.forbidden)",
                ),
                response(404, "Not found (or not visible to this tenant)"),
                response(
                    409,
                    "Conflicts with the current state (also: the record waits for an approval)",
                ),
                response(412, "The record changed since it was read (If-Match)"),
                response(413, "The request body is larger than the server accepts"),
                response(
                    415,
                    "The body is not JSON (send Content-Type: application/json)",
                ),
                response(422, "Invalid fields; see `errors`"),
                response(429, "Throttled; see Retry-After"),
                response(500, "Something went wrong on the server; it has been logged"),
                response(
                    503,
                    "The database or the rule sandbox is unavailable, or the tenant is being upgraded; retry later",
                ),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Turns any error that escaped a handler into problem+json.
pub fn problem_from_poem(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.problem().into_response();
    }
    let status = err.status();
    let (code, detail) = match status {
        StatusCode::UNAUTHORIZED => (
            "auth.unauthenticated",
            "send 'Authorization: Bearer <token>' with a session token from POST /api/v1/auth/login or an API key".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("route.not_found", "no such endpoint; see /api/docs".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "route.method_not_allowed",
            "this endpoint does not accept that HTTP method; see /api/docs".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "request.too_large",
            "the request body is larger than the server accepts".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "request.unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'".to_owned(),
        ),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled server error");
            ("internal", "something went wrong on our side; it has been logged".to_owned())
        }
        _ => ("request.invalid", format!("the request could not be read: {err}")),
    };
    Problem::new(status, code, detail).into_response()
}

/// The body of a panic response: the server keeps serving, the client gets a 500 problem.
pub fn panic_response() -> Response {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something went wrong on our side; it has been logged",
    )
    .into_response()
}

/// Result type of REST handlers.
pub type ApiResult<T> = Result<T, ApiError>;
