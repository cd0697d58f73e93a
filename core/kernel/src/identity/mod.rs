//! Who is calling: argon2id passwords, opaque session tokens and API keys (both stored as
//! SHA-256 hashes), and the [`Principal`] a credential resolves to.

pub mod api_keys;
mod on_behalf;
pub mod sessions;
pub mod tokens;
pub mod totp;

pub use on_behalf::principal_of;
pub use tokens::{CredentialKind, ParsedToken};

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use uuid::Uuid;

/// argon2id with the default parameters takes 19 MiB per hash: at most one hash per core
/// runs at once, a short line waits for a slot, and beyond it a new one is refused at once
/// (503 `auth.busy` with `Retry-After`), so a burst of logins or sign-ups costs bounded memory
/// and CPU instead of one blocking thread and 19 MiB each.
fn hashing() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Gate::new(cores, 8 * cores, std::time::Duration::from_secs(5))
    })
}

/// Bounded slots for blocking work, with a bounded line in front of them.
struct Gate {
    slots: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: std::time::Duration,
}

fn busy() -> Error {
    Error::Busy {
        code: "auth.busy",
        message: "the server is checking many passwords at this moment; retry in a second"
            .to_owned(),
        retry_after_secs: 1,
    }
}

/// Counts a waiter in its gate's line for as long as it lives.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    fn new(slots: usize, max_waiting: usize, max_wait: std::time::Duration) -> Gate {
        Gate {
            slots: tokio::sync::Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Runs `work` in a slot, off the async threads; 503 `auth.busy` when the line is full
    /// or the slot does not come within `max_wait`.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _slot = match self.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
                let _in_line = InLine(&self.waiting);
                if ahead >= self.max_waiting {
                    return Err(busy());
                }
                tokio::time::timeout(self.max_wait, self.slots.acquire())
                    .await
                    .map_err(|_| busy())?
                    .map_err(|e| Error::internal(format!("password hashing closed: {e}")))?
            }
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::internal(format!("hashing task: {e}")))?
    }
}

async fn in_slot<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    hashing().run(work).await
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
    /// A plugin install: no credential of its own, only the grants its admin gave it.
    Plugin,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api_key",
            PrincipalKind::Plugin => "plugin",
        }
    }

    /// The kind [`PrincipalKind::as_str`] wrote.
    pub fn parse(raw: &str) -> Option<PrincipalKind> {
        [
            PrincipalKind::User,
            PrincipalKind::ApiKey,
            PrincipalKind::Plugin,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
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
    /// Set when the session may only put the account in order (see [`Restriction`]).
    pub restriction: Option<Restriction>,
    /// The tenant's read limit and read-access log, read with the credential.
    pub reads: crate::read_limit::ReadPolicy,
}

/// What a restricted session must do before it becomes a full one. Set at login; only the
/// endpoints that fix it (and `/me`, logout) admit such a session, every other one answers
/// 403 with [`Restriction::error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// The password is older than the tenant's expiry: change it first.
    PasswordChange,
    /// A role of the user requires MFA and the user has none: enrol first.
    MfaEnrollment,
}

impl Restriction {
    pub fn as_str(self) -> &'static str {
        match self {
            Restriction::PasswordChange => "password_change",
            Restriction::MfaEnrollment => "mfa_enrollment",
        }
    }

    pub fn parse(raw: &str) -> Option<Restriction> {
        match raw {
            "password_change" => Some(Restriction::PasswordChange),
            "mfa_enrollment" => Some(Restriction::MfaEnrollment),
            _ => None,
        }
    }

    /// The 403 a restricted session gets anywhere else, saying what to do.
    pub fn error(self) -> Error {
        match self {
            Restriction::PasswordChange => Error::forbidden(
                "auth.password_expired",
                "your password has expired; change it with POST /api/v1/me/password, then this session works everywhere",
            ),
            Restriction::MfaEnrollment => Error::forbidden(
                "auth.mfa_enrollment_required",
                "your role requires two-factor authentication; enrol with POST /api/v1/account/mfa/enroll and POST /api/v1/account/mfa/confirm, then this session works everywhere",
            ),
        }
    }
}

impl Principal {
    /// The casbin subject.
    pub fn subject(&self) -> String {
        match self.kind {
            PrincipalKind::User => crate::authz::policy::user_subject(self.id),
            PrincipalKind::ApiKey => crate::authz::policy::api_key_subject(self.id),
            PrincipalKind::Plugin => format!("p:{}", self.id),
        }
    }

    /// 403 for a restricted session (see [`Restriction`]); the gate every endpoint but the
    /// account-repair ones passes through.
    pub fn ensure_unrestricted(&self) -> Result<()> {
        self.restriction.map_or(Ok(()), |r| Err(r.error()))
    }

    /// 403 for a session restricted to something else than `allowed` (an endpoint that fixes
    /// `allowed` admits a session restricted to it, and full ones).
    pub fn admits(&self, allowed: Restriction) -> Result<()> {
        match self.restriction {
            Some(r) if r != allowed => Err(r.error()),
            _ => Ok(()),
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

    #[tokio::test]
    async fn a_full_line_is_refused_at_once_and_a_short_one_waits_its_turn() {
        let gate = std::sync::Arc::new(Gate::new(1, 1, std::time::Duration::from_secs(30)));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        // One piece of work holds the only slot until told to finish.
        let holder = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.run(move || {
                    let _ = started.send(());
                    let _ = held.blocking_recv();
                    Ok(1)
                })
                .await
            }
        });
        running.await.expect("the holder runs");
        // The second waits in line (the line holds one)…
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(|| Ok(2)).await }
        });
        while gate.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        // …and a third finds the line full: refused at once with 503 auth.busy.
        let refused = gate.run(|| Ok(3)).await;
        assert!(
            matches!(
                &refused,
                Err(Error::Busy {
                    code: "auth.busy",
                    retry_after_secs: 1,
                    ..
                })
            ),
            "{refused:?}"
        );
        let _ = release.send(());
        assert!(matches!(holder.await, Ok(Ok(1))));
        assert!(matches!(waiter.await, Ok(Ok(2))));
        assert_eq!(
            gate.waiting.load(Ordering::Acquire),
            0,
            "the line is empty again"
        );
    }
}
