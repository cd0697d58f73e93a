//! Who is calling: argon2id passwords, opaque session tokens and API keys (both stored as
//! SHA-256 hashes), and the [`Principal`] a credential resolves to.

pub mod api_keys;
pub mod sessions;
pub mod tokens;

pub use tokens::{CredentialKind, ParsedToken};

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use serde::Serialize;
use std::sync::OnceLock;
use uuid::Uuid;

/// argon2id with the default parameters takes 19 MiB per hash: at most this many hashes run
/// at once (one per core), the rest wait their turn, so a burst of logins or sign-ups costs
/// bounded memory and CPU instead of one blocking thread and 19 MiB each.
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs one argon2 computation in a hashing slot, off the async threads.
async fn in_slot<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _slot = hashing_slots()
        .acquire()
        .await
        .map_err(|e| Error::internal(format!("password hashing closed: {e}")))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("hashing task: {e}")))?
}

/// Hashes a password with argon2id (default parameters) in a hashing slot.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    in_slot(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("hashing password: {e}")))
    })
    .await
}

/// Checks a password against a stored hash. With `None` (unknown user) it still spends the
/// same time on a dummy hash, so response times do not reveal which accounts exist.
pub async fn verify_password(password: &str, stored: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    in_slot(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| Error::internal(format!("stored password hash unreadable: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not-a-real-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// What kind of caller a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ApiKey,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
        }
    }
}

/// An authenticated caller inside one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user id, or the API key id.
    pub id: Uuid,
    /// User name, or key name.
    pub name: String,
    /// The session id (for logout) when authenticated by a session.
    pub session_id: Option<Uuid>,
    /// The tenant's policy version seen when authenticating (enforcer and grants cache key).
    pub policy_version: i64,
    /// The tenant's metadata version seen when authenticating (object schema cache key).
    pub metadata_version: i64,
}

impl Principal {
    /// The casbin subject.
    pub fn subject(&self) -> String {
        match self.kind {
            PrincipalKind::User => crate::authz::policy::user_subject(self.id),
            PrincipalKind::ApiKey => crate::authz::policy::api_key_subject(self.id),
        }
    }

    /// The user behind this principal, if it is a user.
    pub fn user_id(&self) -> Option<Uuid> {
        (self.kind == PrincipalKind::User).then_some(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let hash = hash_password("correct horse battery").await.ok();
        assert!(hash.as_deref().is_some_and(|h| h.starts_with("$argon2id$")));
        assert!(matches!(
            verify_password("correct horse battery", hash.clone()).await,
            Ok(true)
        ));
        assert!(matches!(
            verify_password("wrong horse battery", hash).await,
            Ok(false)
        ));
        assert!(matches!(
            verify_password("not-a-real-password", None).await,
            Ok(false)
        ));
    }
}
