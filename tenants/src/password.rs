//! Changing one's own password: the current password checked with the same throttling as a
//! login (a stolen session must not become a password oracle), argon2 with no connection
//! held, every other session of the user ended, audited.

use crate::login::throttled;
use crate::throttle::{self, ThrottlePolicy};
use crm_core::audit::{self, Actor};
use crm_core::db::{Db, TenantCtx};
use crm_core::domain::Password;
use crm_core::identity::{self, sessions, Principal};
use crm_core::users;
use crm_core::{Error, Result};

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
    let user_id = principal
        .user_id()
        .ok_or_else(|| Error::bad_request("auth.not_a_user", "API keys have no password"))?;
    let new_password = Password::parse("new_password", new).map_err(|e| Error::invalid(vec![e]))?;
    if new == current {
        return Err(Error::invalid_field(
            "new_password",
            "unchanged",
            "must differ from the current password",
        ));
    }
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
            "current_password",
            "incorrect",
            "the current password is wrong",
        ));
    }
    throttle::give_back(&db.pool, &account_key).await?;
    let hash = identity::hash_password(new_password.expose()).await?;
    let mut tx = db.tenant_tx(tenant).await?;
    users::set_password(&mut tx, user_id, &hash).await?;
    sessions::revoke_all_of_user(&mut tx, user_id, principal.session_id).await?;
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
