//! Changing one's own password: the current password checked with the same throttling as a
//! login (a stolen session must not become a password oracle), the tenant's password policy
//! (history included) with argon2 run with no connection held, every other session of the
//! user ended, the session's own restriction lifted, audited.

use crate::login::throttled;
use crate::throttle::{self, ThrottlePolicy};
use crm_core::audit::{self, Actor};
use crm_core::db::{Db, TenantCtx};
use crm_core::identity::{self, sessions, Principal};
use crm_core::password_policy::PasswordPolicy;
use crm_core::{security, users};
use crm_core::{Error, Result};
use uuid::Uuid;

/// The user behind a principal, or 400 for an API key (keys have no password).
pub(crate) fn own_user(principal: &Principal) -> Result<Uuid> {
    principal
        .user_id()
        .ok_or_else(|| Error::bad_request("auth.not_a_user", "API keys have no password"))
}

/// Checks the user's current password, counted in the account's login throttle: a wrong one
/// is a failure (422 on `field`), a locked account is 429.
pub(crate) async fn check_current(
    db: &Db,
    tenant: &TenantCtx,
    user_id: Uuid,
    field: &str,
    current: &str,
    policy: ThrottlePolicy,
) -> Result<()> {
    let mut tx = db.tenant_tx(tenant).await?;
    let profile = users::get(&mut tx, user_id).await?;
    let stored = users::password_hash(&mut tx, user_id).await?;
    tx.commit().await?;
    let account_key = throttle::account_key(tenant.id, &profile.email);
    let account = std::slice::from_ref(&account_key);
    if let Err(secs) = throttle::begin_attempt(&db.pool, account, policy).await? {
        return Err(throttled(secs));
    }
    if !identity::verify_password(current, Some(stored)).await? {
        throttle::attempt_failed(&db.pool, account, policy).await?;
        return Err(Error::invalid_field(
            field,
            "incorrect",
            "the current password is wrong",
        ));
    }
    throttle::give_back(&db.pool, &account_key).await
}

/// Replaces the principal's own password after checking `current`.
pub async fn change_own(
    db: &Db,
    tenant: &TenantCtx,
    principal: &Principal,
    actor: &Actor,
    current: &str,
    new: &str,
    policy: ThrottlePolicy,
) -> Result<()> {
    let user_id = own_user(principal)?;
    if new == current {
        return Err(Error::invalid_field(
            "new_password",
            "unchanged",
            "must differ from the current password",
        ));
    }
    check_current(db, tenant, user_id, "current_password", current, policy).await?;
    let mut tx = db.tenant_tx(tenant).await?;
    let rules = PasswordPolicy::load(&mut tx).await?;
    let history = users::recent_password_hashes(&mut tx, user_id, rules.history).await?;
    tx.commit().await?;
    let new_password = rules.vet("new_password", new, &history).await?;
    let hash = identity::hash_password(new_password.expose()).await?;
    let mut tx = db.tenant_tx(tenant).await?;
    users::set_password(&mut tx, user_id, &hash).await?;
    sessions::revoke_all_of_user(&mut tx, user_id, principal.session_id).await?;
    if let Some(session) = principal.session_id {
        // An expired password is fixed now; what is left (MFA to set up) stays.
        let left = security::session_restriction(&mut tx, user_id).await?;
        sessions::restrict(&mut tx, session, left).await?;
    }
    let target = Some(("user", user_id.to_string()));
    audit::record(
        &mut tx,
        actor,
        "user.password_changed",
        target,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await
}
