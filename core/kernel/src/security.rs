//! The tenant's security settings as a caller reads and changes them (`tenant:manage`): the
//! roles whose users must use MFA and the password policy; and what a new session of a user
//! must do first under them ([`session_restriction`]).

use crate::audit::{self, Actor};
use crate::authz::{policy, Caller, Permission};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::identity::Restriction;
use crate::mfa;
use crate::password_policy::PasswordPolicy;
use uuid::Uuid;

/// What `/settings/security` shows and takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// Users holding any of these roles must enrol in MFA at their next login.
    pub mfa_required_roles: Vec<String>,
    pub password_policy: PasswordPolicy,
}

/// The roles that require MFA (none on a tenant one schema version behind).
pub async fn mfa_required_roles(tx: &mut TenantTx) -> Result<Vec<String>> {
    let roles: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY(SELECT jsonb_array_elements_text( \
           coalesce(to_jsonb(s) -> 'mfa_required_roles', '[]'))) FROM settings s",
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(roles.unwrap_or_default())
}

/// The settings (`tenant:manage`).
pub async fn get(tx: &mut TenantTx, caller: &Caller) -> Result<SecuritySettings> {
    caller.require(Permission::TenantManage)?;
    Ok(SecuritySettings {
        mfa_required_roles: mfa_required_roles(tx).await?,
        password_policy: PasswordPolicy::load(tx).await?,
    })
}

/// Replaces the settings (`tenant:manage`); the roles must exist. Applies from the next
/// login (MFA) and the next password change (policy). Audited.
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    wanted: SecuritySettings,
) -> Result<SecuritySettings> {
    caller.require(Permission::TenantManage)?;
    let mut errors = wanted.password_policy.validate("password_policy");
    let roles = crate::roles::parse_names(
        "mfa_required_roles",
        &wanted.mfa_required_roles,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    crate::roles::ensure_exist(tx, "mfa_required_roles", &roles).await?;
    sqlx::query("UPDATE settings SET mfa_required_roles = $1, updated_at = now()")
        .bind(&roles)
        .execute(tx.conn())
        .await?;
    wanted.password_policy.save(tx).await?;
    let saved = SecuritySettings {
        mfa_required_roles: roles,
        password_policy: wanted.password_policy,
    };
    let detail = serde_json::json!({
        "mfa_required_roles": saved.mfa_required_roles,
        "password_policy": saved.password_policy,
    });
    audit::record(tx, actor, "settings.security_updated", None, detail).await?;
    Ok(saved)
}

/// What a session of `user_id` must do before it is a full one: change a password older
/// than the policy's expiry first, then enrol in MFA if one of the user's roles requires it.
pub async fn session_restriction(tx: &mut TenantTx, user_id: Uuid) -> Result<Option<Restriction>> {
    let policy = PasswordPolicy::load(tx).await?;
    if let Some(days) = policy.expiry_days {
        let expired: Option<bool> = sqlx::query_scalar(
            "SELECT password_changed_at < now() - make_interval(days => $2) FROM users WHERE id = $1",
        )
        .bind(user_id)
        .bind(days)
        .fetch_optional(tx.conn())
        .await?;
        if expired == Some(true) {
            return Ok(Some(Restriction::PasswordChange));
        }
    }
    if mfa_required_for(tx, user_id).await? && !mfa::is_enrolled(tx, user_id).await? {
        return Ok(Some(Restriction::MfaEnrollment));
    }
    Ok(None)
}

/// Whether one of the user's roles requires MFA.
pub async fn mfa_required_for(tx: &mut TenantTx, user_id: Uuid) -> Result<bool> {
    let required = mfa_required_roles(tx).await?;
    if required.is_empty() {
        return Ok(false);
    }
    let roles = policy::subject_roles(tx, &policy::user_subject(user_id)).await?;
    Ok(roles.iter().any(|r| required.contains(r)))
}
