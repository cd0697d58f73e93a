//! The MFA use cases that share the login's throttling: the second step of a login (the
//! challenge token from the password step plus a TOTP or recovery code; a wrong code counts
//! like a wrong password, per account and per address) and turning one's own MFA off (the
//! current password and a code, both counted).

use crate::login::{self, throttled, Attempt, LoggedIn, Outcome};
use crate::password::{check_current, own_user};
use crate::registry;
use crate::throttle::{self, ThrottlePolicy};
use chrono::Duration;
use crm_core::audit::{self, Actor, ActorKind};
use crm_core::context::RequestMeta;
use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantCtx};
use crm_core::identity::{tokens, Principal};
use crm_core::{mfa, security, users};
use crm_core::{Error, Result};

/// 401 for an unknown, expired or used challenge token.
pub fn invalid_challenge() -> Error {
    Error::unauthenticated(
        "auth.mfa_token_invalid",
        "the MFA token is unknown, expired or used; log in again with your password",
    )
}

/// 401 for a wrong, replayed or used-up code at login.
pub fn invalid_code() -> Error {
    Error::unauthenticated(
        "auth.invalid_code",
        "the code is wrong or was used already; enter the current 6-digit code of your authenticator app, or an unused recovery code",
    )
}

/// The second step of a login: opens the session if `code` is a current TOTP code or an
/// unused recovery code of the challenge's user.
pub async fn login_with_code(
    db: &Db,
    master: Option<&MasterKey>,
    policy: ThrottlePolicy,
    session_ttl: Duration,
    mfa_token: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<Attempt<LoggedIn>> {
    let pool = &db.pool;
    let failed = || Attempt::refused(Outcome::Failed, invalid_challenge());
    let Some((tenant_id, token_hash)) = tokens::parse_mfa_challenge(mfa_token.trim()) else {
        return Ok(failed());
    };
    let Some(tenant) = registry::by_id(pool, tenant_id).await? else {
        return Ok(failed());
    };
    let ctx = tenant.ctx()?;
    let mut tx = db.tenant_tx(&ctx).await?;
    let Some(user_id) = mfa::challenge_user(&mut tx, &token_hash).await? else {
        return Ok(failed());
    };
    let user = users::get(&mut tx, user_id).await?;
    tx.commit().await?;
    let actor = Actor {
        kind: ActorKind::User,
        id: Some(user.id),
        name: Some(user.name.clone()),
        meta: meta.clone(),
    };
    let account_key = throttle::account_key(tenant.id, &user.email);
    let ip_key = throttle::ip_key(meta.ip.as_deref().unwrap_or("unknown"));
    let keys = [account_key.clone(), ip_key.clone()];
    let target = Some(("user", user.id.to_string()));
    if let Err(secs) = throttle::begin_attempt(pool, &keys, policy).await? {
        let mut tx = db.tenant_tx(&ctx).await?;
        let detail = serde_json::json!({ "email": user.email, "retry_after": secs, "step": "mfa" });
        audit::record(&mut tx, &actor, "auth.login_throttled", target, detail).await?;
        tx.commit().await?;
        return Ok(Attempt::refused(Outcome::Throttled, throttled(secs)));
    }
    let mut tx = db.tenant_tx(&ctx).await?;
    let Some(factor) = mfa::verify(&mut tx, master, user.id, code).await? else {
        let detail = serde_json::json!({ "email": user.email, "reason": "invalid_code" });
        audit::record(&mut tx, &actor, "auth.login_failed", target, detail).await?;
        tx.commit().await?;
        throttle::attempt_failed(pool, &keys, policy).await?;
        return Ok(Attempt::refused(Outcome::Failed, invalid_code()));
    };
    if !tenant.is_active() || user.status != "active" || user.frozen_at.is_some() {
        // Deactivated or frozen since the password step: the code is spent, the login refused.
        tx.commit().await?;
        let error = if !tenant.is_active() {
            registry::suspended()
        } else if user.status != "active" {
            Error::forbidden(
                "auth.user_disabled",
                "this user is deactivated; ask your administrator to reactivate it",
            )
        } else {
            crm_core::read_limit::frozen_error()
        };
        return Ok(Attempt::refused(Outcome::Refused, error));
    }
    if !mfa::close_challenge(&mut tx, &token_hash).await? {
        // A parallel request finished this login first.
        return Ok(failed());
    }
    let done = login::open_session(&mut tx, user.id, session_ttl, &actor, Some(factor)).await?;
    tx.commit().await?;
    throttle::attempt_succeeded(pool, &account_key, &ip_key).await?;
    Ok(Attempt {
        outcome: Outcome::Ok,
        result: Ok(done),
    })
}

/// Turns the principal's own MFA off after checking its current password and a code (both
/// counted in the account's throttle). 409 `mfa.required_by_role` when a role of the user
/// requires MFA: an administrator resets it instead. Audited.
#[allow(clippy::too_many_arguments)]
pub async fn disable_own(
    db: &Db,
    tenant: &TenantCtx,
    master: Option<&MasterKey>,
    principal: &Principal,
    actor: &Actor,
    password: &str,
    code: &str,
    policy: ThrottlePolicy,
) -> Result<()> {
    let user_id = own_user(principal)?;
    let mut tx = db.tenant_tx(tenant).await?;
    if !mfa::is_enrolled(&mut tx, user_id).await? {
        return Err(Error::conflict(
            "mfa.not_enrolled",
            "two-factor authentication is not on for you; nothing to turn off",
        ));
    }
    if security::mfa_required_for(&mut tx, user_id).await? {
        return Err(Error::conflict(
            "mfa.required_by_role",
            "a role of yours requires two-factor authentication, so it cannot be turned off; to move it to a new device ask an administrator to reset it",
        ));
    }
    let email = users::get(&mut tx, user_id).await?.email;
    tx.commit().await?;
    check_current(db, tenant, user_id, "password", password, policy).await?;
    let account_key = throttle::account_key(tenant.id, &email);
    let account = std::slice::from_ref(&account_key);
    if let Err(secs) = throttle::begin_attempt(&db.pool, account, policy).await? {
        return Err(throttled(secs));
    }
    let mut tx = db.tenant_tx(tenant).await?;
    if mfa::verify(&mut tx, master, user_id, code).await?.is_none() {
        tx.commit().await?;
        throttle::attempt_failed(&db.pool, account, policy).await?;
        return Err(mfa::invalid_code("code"));
    }
    mfa::remove(&mut tx, user_id).await?;
    let target = Some(("user", user_id.to_string()));
    audit::record(
        &mut tx,
        actor,
        "user.mfa_disabled",
        target,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    throttle::give_back(&db.pool, &account_key).await
}
