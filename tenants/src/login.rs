//! Password login, the use case: the tenant by slug, throttling per account and per address
//! (unknown tenants count against the address), argon2 with no connection held, the tenant's
//! and the user's status, then either a new session or, for a user with MFA, a challenge the
//! second step ([`crate::mfa::login_with_code`]) answers; the audit trail of every outcome.
//!
//! A new session is restricted ([`Restriction`]) when the password has expired under the
//! tenant's policy or a role of the user requires MFA the user has not set up.

use crate::registry;
use crate::throttle::{self, ThrottlePolicy};
use chrono::{DateTime, Duration, Utc};
use crm_core::audit::{self, Actor};
use crm_core::context::RequestMeta;
use crm_core::db::Db;
use crm_core::db::TenantTx;
use crm_core::domain::Email;
use crm_core::identity::{self, sessions, Restriction};
use crm_core::mfa::{self, Factor};
use crm_core::security;
use crm_core::users::{self, User};
use crm_core::{Error, Result};
use uuid::Uuid;

/// A password check; when it did not run at all (503 `auth.busy`: every hashing slot taken),
/// the attempt counted for it is given back, so a busy server never locks anyone out.
async fn checked(
    pool: &sqlx::PgPool,
    keys: &[String],
    verification: impl std::future::Future<Output = Result<bool>>,
) -> Result<bool> {
    match verification.await {
        Err(busy @ Error::Busy { .. }) => {
            for key in keys {
                throttle::give_back(pool, key).await?;
            }
            Err(busy)
        }
        other => other,
    }
}

/// What a login attempt says.
pub struct Credentials<'a> {
    /// The tenant's slug.
    pub tenant: &'a str,
    pub email: &'a Email,
    pub password: &'a str,
}

/// A successful login.
pub struct LoggedIn {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
    /// What the session must do before it opens the whole API.
    pub restriction: Option<Restriction>,
}

/// Where a login stands after the password.
pub enum LoginStep {
    /// Logged in.
    Session(Box<LoggedIn>),
    /// The password was right; the user has MFA: send a code with this token to
    /// `POST /api/v1/auth/login/mfa` before it expires.
    MfaRequired {
        mfa_token: String,
        expires_at: DateTime<Utc>,
    },
}

/// How an attempt ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Wrong tenant, e-mail or password.
    Failed,
    /// Too many failures: refused before checking the password.
    Throttled,
    /// Right password, but the user is deactivated or the tenant suspended.
    Refused,
    /// Right password; the second factor is asked for.
    MfaRequired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Throttled => "throttled",
            Outcome::Refused => "refused",
            Outcome::MfaRequired => "mfa_required",
        }
    }
}

/// The attempt's outcome and what to answer with.
pub struct Attempt<T = LoginStep> {
    pub outcome: Outcome,
    pub result: Result<T>,
}

impl<T> Attempt<T> {
    pub(crate) fn refused(outcome: Outcome, error: Error) -> Attempt<T> {
        Attempt {
            outcome,
            result: Err(error),
        }
    }
}

/// 401 for any wrong tenant, e-mail or password (never saying which).
pub fn invalid_credentials() -> Error {
    Error::unauthenticated(
        "auth.invalid_credentials",
        "the tenant, e-mail or password is wrong",
    )
}

/// 429 while an account or address is locked out.
pub fn throttled(secs: u64) -> Error {
    Error::TooManyRequests {
        code: "auth.throttled",
        message: format!("too many failed password attempts; try again in {secs} seconds"),
        retry_after_secs: secs,
    }
}

/// Logs a user in with a password. Errors of the database are `Err`; every refusal is an
/// [`Attempt`] carrying its outcome.
pub async fn login(
    db: &Db,
    policy: ThrottlePolicy,
    session_ttl: Duration,
    credentials: Credentials<'_>,
    meta: &RequestMeta,
) -> Result<Attempt> {
    let pool = &db.pool;
    let email = credentials.email;
    let ip_key = throttle::ip_key(meta.ip.as_deref().unwrap_or("unknown"));
    let Some(tenant) = registry::by_slug(pool, credentials.tenant.trim()).await? else {
        // Count it against the address, so unknown tenants cannot be probed for free.
        let address = std::slice::from_ref(&ip_key);
        if let Err(secs) = throttle::begin_attempt(pool, address, policy).await? {
            return Ok(Attempt::refused(Outcome::Throttled, throttled(secs)));
        }
        let _ = checked(
            pool,
            address,
            identity::verify_password(credentials.password, None),
        )
        .await?;
        throttle::attempt_failed(pool, address, policy).await?;
        return Ok(Attempt::refused(Outcome::Failed, invalid_credentials()));
    };
    let account_key = throttle::account_key(tenant.id, email.as_str());
    let keys = [account_key.clone(), ip_key.clone()];
    let ctx = tenant.ctx()?;
    let actor = Actor::anonymous(meta);

    // Counted before the password is checked: parallel guesses cannot pass the limit.
    if let Err(secs) = throttle::begin_attempt(pool, &keys, policy).await? {
        let mut tx = db.tenant_tx(&ctx).await?;
        audit::record(
            &mut tx,
            &actor,
            "auth.login_throttled",
            None,
            serde_json::json!({ "email": email.as_str(), "retry_after": secs }),
        )
        .await?;
        tx.commit().await?;
        return Ok(Attempt::refused(Outcome::Throttled, throttled(secs)));
    }

    // No connection is held while argon2 runs.
    let mut tx = db.tenant_tx(&ctx).await?;
    let candidate = users::find_for_login(&mut tx, email).await?;
    tx.commit().await?;
    let stored = candidate.as_ref().map(|c| c.password_hash.clone());
    let password_ok = checked(
        pool,
        &keys,
        identity::verify_password(credentials.password, stored),
    )
    .await?;
    let mut tx = db.tenant_tx(&ctx).await?;
    let Some(user) = candidate.filter(|_| password_ok) else {
        audit::record(
            &mut tx,
            &actor,
            "auth.login_failed",
            None,
            serde_json::json!({ "email": email.as_str(), "reason": "invalid_credentials" }),
        )
        .await?;
        tx.commit().await?;
        throttle::attempt_failed(pool, &keys, policy).await?;
        return Ok(Attempt::refused(Outcome::Failed, invalid_credentials()));
    };
    let user_actor = Actor {
        kind: crm_core::audit::ActorKind::User,
        id: Some(user.id),
        name: Some(user.name.clone()),
        meta: meta.clone(),
    };
    if !tenant.is_active() || !user.active || user.frozen {
        let (reason, error) = if !tenant.is_active() {
            ("tenant_suspended", registry::suspended())
        } else if !user.active {
            (
                "user_disabled",
                Error::forbidden(
                    "auth.user_disabled",
                    "this user is deactivated; ask your administrator to reactivate it",
                ),
            )
        } else {
            ("user_frozen", crm_core::read_limit::frozen_error())
        };
        audit::record(
            &mut tx,
            &user_actor,
            "auth.login_failed",
            Some(("user", user.id.to_string())),
            serde_json::json!({ "email": email.as_str(), "reason": reason }),
        )
        .await?;
        tx.commit().await?;
        return Ok(Attempt::refused(Outcome::Refused, error));
    }
    if mfa::is_enrolled(&mut tx, user.id).await? {
        let (mfa_token, expires_at) = mfa::open_challenge(&mut tx, user.id).await?;
        audit::record(
            &mut tx,
            &user_actor,
            "auth.mfa_challenged",
            Some(("user", user.id.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        // The password was right, so this attempt is no failure; but the account's count is
        // not forgotten: wrong codes add to it, and a right password must not wipe them.
        throttle::give_back(pool, &account_key).await?;
        throttle::give_back(pool, &ip_key).await?;
        return Ok(Attempt {
            outcome: Outcome::MfaRequired,
            result: Ok(LoginStep::MfaRequired {
                mfa_token,
                expires_at,
            }),
        });
    }
    let done = open_session(&mut tx, user.id, session_ttl, &user_actor, None).await?;
    tx.commit().await?;
    throttle::attempt_succeeded(pool, &account_key, &ip_key).await?;
    Ok(Attempt {
        outcome: Outcome::Ok,
        result: Ok(LoginStep::Session(Box::new(done))),
    })
}

/// Opens the session of a login that passed every check, restricted as the tenant's settings
/// require; notes and audits the login (with the second factor used, if any).
pub(crate) async fn open_session(
    tx: &mut TenantTx,
    user_id: Uuid,
    session_ttl: Duration,
    actor: &Actor,
    factor: Option<Factor>,
) -> Result<LoggedIn> {
    let meta = &actor.meta;
    let session = sessions::create(
        tx,
        user_id,
        session_ttl,
        meta.ip.as_deref(),
        meta.user_agent.as_deref(),
    )
    .await?;
    let restriction = security::session_restriction(tx, user_id).await?;
    if restriction.is_some() {
        sessions::restrict(tx, session.id, restriction).await?;
    }
    users::record_login(tx, user_id).await?;
    audit::record(
        tx,
        actor,
        "auth.login",
        Some(("user", user_id.to_string())),
        serde_json::json!({
            "session_id": session.id,
            "mfa": factor.map(Factor::as_str),
            "restriction": restriction.map(Restriction::as_str),
        }),
    )
    .await?;
    let profile = users::get(tx, user_id).await?;
    Ok(LoggedIn {
        token: session.token,
        expires_at: session.expires_at,
        user: profile,
        restriction,
    })
}
