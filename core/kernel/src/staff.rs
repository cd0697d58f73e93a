//! Managing staff users as a [`Caller`]: the use cases behind `/users` — validate the input,
//! check the caller's permission and that it outranks the user and every role it grants,
//! write through [`crate::users`], end sessions where needed, audit.

use crate::audit::{self, Actor};
use crate::authz::{Caller, Grants, Permission};
use crate::context::Page;
use crate::db::TenantTx;
use crate::domain::{DisplayName, Email, Password, RoleName, Validator};
use crate::error::{Error, FieldError, Result};
use crate::identity::{self, sessions};
use crate::mfa;
use crate::password_policy::PasswordPolicy;
use crate::users::{self, NewUser, User, UserPatch, UserQuery};
use crate::{roles, teams};
use uuid::Uuid;

/// A new user as the caller wrote it.
pub struct NewStaff {
    pub email: String,
    pub name: String,
    pub password: String,
    pub roles: Vec<String>,
    pub team_ids: Vec<Uuid>,
    pub locale: Option<String>,
}

/// Changes to a user as the caller wrote them (`None`: unchanged).
#[derive(Default)]
pub struct StaffPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub roles: Option<Vec<String>>,
    pub team_ids: Option<Vec<Uuid>>,
    pub active: Option<bool>,
    pub locale: Option<String>,
    /// `Some(None)` clears the manager.
    pub manager_id: Option<Option<Uuid>>,
}

/// Users in creation order (`users:read`).
pub async fn list(tx: &mut TenantTx, caller: &Caller, q: UserQuery) -> Result<Page<User>> {
    caller.require(Permission::UsersRead)?;
    if let Some(s) = q.status.as_deref() {
        if !matches!(s, "active" | "disabled") {
            return Err(Error::invalid_field(
                "status",
                "invalid",
                "use active or disabled",
            ));
        }
    }
    users::list(tx, q).await
}

/// One user (`users:read`).
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<User> {
    caller.require(Permission::UsersRead)?;
    users::get(tx, id).await
}

/// Creates a user with roles and teams (`users:manage`; only roles and teams the caller may
/// grant).
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    new: NewStaff,
) -> Result<User> {
    caller.require(Permission::UsersManage)?;
    let mut v = Validator::new();
    let email = v.check(Email::parse("email", &new.email));
    let name = v.check(DisplayName::parse("name", &new.name));
    let password = v.check(Password::parse("password", &new.password));
    let role_names = parse_roles("roles", &new.roles, &mut v);
    let locale = new
        .locale
        .as_deref()
        .and_then(|l| v.check(users::parse_locale("locale", l)));
    v.finish()?;
    let (Some(email), Some(name), Some(_)) = (email, name, password) else {
        return Err(Error::internal("validated value missing"));
    };
    let policy = PasswordPolicy::load(tx).await?;
    let password = policy.vet("password", &new.password, &[]).await?;
    ensure_may_grant(tx, caller, &role_names).await?;
    teams::ensure_may_join(tx, caller, &new.team_ids, None).await?;
    let password_hash = identity::hash_password(password.expose()).await?;
    let user = users::create(
        tx,
        NewUser {
            email,
            name,
            password_hash,
            roles: role_names,
            team_ids: new.team_ids,
            locale,
        },
    )
    .await?;
    audit::record(
        tx,
        actor,
        "user.created",
        Some(("user", user.id.to_string())),
        serde_json::json!({ "email": user.email, "roles": user.roles }),
    )
    .await?;
    Ok(user)
}

/// Changes a user (`users:manage`, and the caller must outrank the user and every role it
/// grants); `active: false` deactivates (never oneself).
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    patch: StaffPatch,
) -> Result<User> {
    caller.require(Permission::UsersManage)?;
    let mut v = Validator::new();
    let name = patch
        .name
        .as_deref()
        .and_then(|n| v.check(DisplayName::parse("name", n)));
    let email = patch
        .email
        .as_deref()
        .and_then(|e| v.check(Email::parse("email", e)));
    let role_names = patch
        .roles
        .as_deref()
        .map(|r| parse_roles("roles", r, &mut v));
    let locale = patch
        .locale
        .as_deref()
        .and_then(|l| v.check(users::parse_locale("locale", l)));
    if patch.active == Some(false) && caller.principal.user_id() == Some(id) {
        v.push(FieldError::new(
            "active",
            "self",
            "you cannot deactivate yourself",
        ));
    }
    v.finish()?;
    let target = ensure_may_manage(tx, caller, id).await?;
    if let Some(r) = &role_names {
        ensure_may_grant(tx, caller, r).await?;
    }
    if let Some(wanted) = &patch.team_ids {
        let joined: Vec<Uuid> = wanted
            .iter()
            .filter(|t| !target.team_ids.contains(t))
            .copied()
            .collect();
        teams::ensure_may_join(tx, caller, &joined, Some(id)).await?;
    }
    let detail = serde_json::json!({
        "roles": patch.roles, "team_ids": patch.team_ids,
        "email": patch.email, "name": patch.name,
    });
    let user = users::update(
        tx,
        id,
        UserPatch {
            name,
            email,
            roles: role_names,
            team_ids: patch.team_ids,
            active: patch.active,
            locale,
            manager_id: patch.manager_id,
        },
    )
    .await?;
    let action = match patch.active {
        Some(false) => "user.deactivated",
        Some(true) => "user.reactivated",
        None => "user.updated",
    };
    audit::record(tx, actor, action, Some(("user", id.to_string())), detail).await?;
    Ok(user)
}

/// Deactivates a user (`users:manage`, never oneself): it can no longer log in and its
/// sessions end; its records stay.
pub async fn deactivate(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    if caller.principal.user_id() == Some(id) {
        return Err(Error::conflict(
            "user.self",
            "you cannot deactivate yourself",
        ));
    }
    ensure_may_manage(tx, caller, id).await?;
    users::update(
        tx,
        id,
        UserPatch {
            active: Some(false),
            ..Default::default()
        },
    )
    .await?;
    audit::record(
        tx,
        actor,
        "user.deactivated",
        Some(("user", id.to_string())),
        serde_json::json!({}),
    )
    .await
}

/// Sets a user's password (`users:manage`, an administrator reset); the user's sessions end,
/// except the caller's own when they reset their own password.
pub async fn reset_password(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    new_password: &str,
) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    ensure_may_manage(tx, caller, id).await?;
    // The policy's rules, not its history: an administrator does not know (and must not
    // probe) the user's earlier passwords.
    let policy = PasswordPolicy::load(tx).await?;
    let password = policy.vet("new_password", new_password, &[]).await?;
    let hash = identity::hash_password(password.expose()).await?;
    users::set_password(tx, id, &hash).await?;
    let keep = caller
        .principal
        .session_id
        .filter(|_| caller.principal.user_id() == Some(id));
    sessions::revoke_all_of_user(tx, id, keep).await?;
    audit::record(
        tx,
        actor,
        "user.password_reset",
        Some(("user", id.to_string())),
        serde_json::json!({}),
    )
    .await
}

/// Turns a user's MFA off (`users:manage`, and the caller must outrank the user): for a lost
/// phone. The user logs in with the password alone next time (and enrols again if a role
/// requires it). Audited, saying whether MFA was on.
pub async fn reset_mfa(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    ensure_may_manage(tx, caller, id).await?;
    let was_enrolled = mfa::remove(tx, id).await?;
    audit::record(
        tx,
        actor,
        "user.mfa_reset",
        Some(("user", id.to_string())),
        serde_json::json!({ "was_enrolled": was_enrolled }),
    )
    .await
}

/// Lifts a read-limit freeze (`users:manage`, and the caller must outrank the user): the
/// user may log in again and starts a fresh read window. 404 for an unknown user, 409
/// `user.not_frozen`. Audited `user.unfrozen`.
pub async fn unfreeze(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<User> {
    caller.require(Permission::UsersManage)?;
    ensure_may_manage(tx, caller, id).await?;
    let frozen_at = crate::read_limit::unfreeze_user(tx, id).await?;
    audit::record(
        tx,
        actor,
        "user.unfrozen",
        Some(("user", id.to_string())),
        serde_json::json!({ "frozen_at": frozen_at }),
    )
    .await?;
    users::get(tx, id).await
}

/// Refuses roles that grant more (permissions or scopes) than the caller holds.
async fn ensure_may_grant(tx: &mut TenantTx, caller: &Caller, role_names: &[String]) -> Result<()> {
    roles::ensure_exist(tx, "roles", role_names).await?;
    let granted = Grants::of_roles(tx, role_names).await?;
    caller.grants.ensure_may_grant(&granted)
}

/// Refuses to touch a user who holds more than the caller (404 if absent); returns the user.
async fn ensure_may_manage(tx: &mut TenantTx, caller: &Caller, user_id: Uuid) -> Result<User> {
    let target = users::get(tx, user_id).await?;
    let theirs = Grants::of_roles(tx, &target.roles).await?;
    caller.grants.ensure_outranks(&theirs)?;
    Ok(target)
}

fn parse_roles(field: &str, raw: &[String], v: &mut Validator) -> Vec<String> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            v.check(RoleName::parse(&format!("{field}[{i}]"), r))
                .map(|r| r.as_str().to_owned())
        })
        .collect()
}
