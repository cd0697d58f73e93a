//! The one error type of the library crates. Each variant carries a stable machine code
//! (`user.not_found`, `auth.forbidden`, …) and a message that tells the caller what to do;
//! the server maps it once to RFC 9457 problem+json.

use serde::Serialize;

/// One invalid input field, reported inside a validation error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `email` or `roles[1]`.
    pub field: String,
    /// Stable code, e.g. `invalid`, `too_short`, `unknown`.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// Errors of TC CRM's services. The variant decides the HTTP status at the edge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422: the input is well-formed but not acceptable.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        fields: Vec<FieldError>,
    },
    /// 400: the request itself is malformed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid credential.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// 403: authenticated, but not allowed.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: absent, or not visible to the caller (never distinguishes the two).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: conflicts with the current state (duplicate, in use, protected).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 409 naming the existing record a new one would duplicate.
    #[error("{message}")]
    Duplicate {
        code: &'static str,
        message: String,
        existing_id: uuid::Uuid,
    },
    /// 409: a state change the workflow does not allow from the current state; `allowed`
    /// lists the states it does allow.
    #[error("{message}")]
    Transition {
        code: &'static str,
        message: String,
        allowed: Vec<String>,
    },
    /// 409: the record waits for an approval and may not change until it is decided.
    #[error("{message}")]
    Locked {
        code: &'static str,
        message: String,
        approval_id: uuid::Uuid,
    },
    /// 422: a rule's condition or script does not compile; where (1-based line and column).
    #[error("{message}")]
    Script {
        code: &'static str,
        message: String,
        part: Option<String>,
        line: Option<u32>,
        column: Option<u32>,
    },
    /// 412: the record changed since the caller read it (stale `If-Match`).
    #[error("{message}")]
    PreconditionFailed { code: &'static str, message: String },
    /// 429: throttled; retry after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 503: the server is at a capacity limit for this kind of work (password hashing, say);
    /// retry after the given number of seconds.
    #[error("{message}")]
    Busy {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 503: a dependency (the database) is not reachable.
    #[error("service temporarily unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected database failure; details go to the log, not the client.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// 500: anything else unexpected.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid; see `errors`", fields.len()),
        };
        Error::Invalid {
            code: "validation.failed",
            message,
            fields,
        }
    }

    pub fn invalid_field(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::invalid(vec![FieldError::new(field, code, message)])
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Error::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::BadRequest { code, .. }
            | Error::Unauthenticated { code, .. }
            | Error::Forbidden { code, .. }
            | Error::NotFound { code, .. }
            | Error::Conflict { code, .. }
            | Error::Duplicate { code, .. }
            | Error::Transition { code, .. }
            | Error::Locked { code, .. }
            | Error::Script { code, .. }
            | Error::PreconditionFailed { code, .. }
            | Error::TooManyRequests { code, .. }
            | Error::Busy { code, .. } => code,
            Error::Unavailable(_) => "service.unavailable",
            Error::Database(_) | Error::Internal(_) => "internal",
        }
    }
}

/// The name of the foreign key a database error violated, if it is one.
pub fn foreign_key_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => db.constraint(),
        _ => None,
    }
}

/// The name of the unique constraint a database error violated, if it is one.
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}

/// Fails with a 422 listing every entry of `wanted` (as `field[i]`) that is not in `known`.
pub fn ensure_known<T: PartialEq>(
    field: &str,
    wanted: &[T],
    known: &[T],
    code: &'static str,
    describe: impl Fn(&T) -> String,
) -> Result<()> {
    let errors: Vec<FieldError> = wanted
        .iter()
        .enumerate()
        .filter(|(_, w)| !known.contains(w))
        .map(|(i, w)| FieldError::new(format!("{field}[{i}]"), code, describe(w)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(errors))
    }
}
