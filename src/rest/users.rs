//! `/users`: staff users of the tenant.

use super::auth::Auth;
use super::error::ApiResult;
use super::{checked, Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Grants, Permission};
use crm_core::context::page_size;
use crm_core::db::TenantTx;
use crm_core::domain::{DisplayName, Email, Password, Validator};
use crm_core::identity::{self, sessions};
use crm_core::users::{self, NewUser, User, UserPatch, UserQuery};
use crm_core::{roles, teams, Error, FieldError};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct UsersApi(pub AppState);

/// A staff user.
#[derive(Object)]
pub struct UserOut {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// `active` or `disabled`.
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub locale: Option<String>,
    pub roles: Vec<String>,
    pub team_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// Whom the user reports to.
    #[oai(skip_serializing_if_is_none)]
    pub manager_id: Option<Uuid>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut {
            id: u.id,
            email: u.email,
            name: u.name,
            status: u.status,
            locale: u.locale,
            roles: u.roles,
            team_ids: u.team_ids,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            manager_id: u.manager_id,
        }
    }
}

#[derive(Object)]
pub struct UserPage {
    pub items: Vec<UserOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct CreateUserRequest {
    pub email: String,
    pub name: String,
    /// At least 10 characters.
    pub password: String,
    /// Role names, e.g. ["sales"].
    #[oai(default)]
    pub roles: Vec<String>,
    /// A team to add the user to.
    pub team_id: Option<Uuid>,
    /// Teams to add the user to.
    #[oai(default)]
    pub team_ids: Vec<Uuid>,
    /// `zh-CN` or `en`.
    pub locale: Option<String>,
}

#[derive(Object)]
pub struct PatchUserRequest {
    pub name: Option<String>,
    pub email: Option<String>,
    /// Replaces the user's roles.
    pub roles: Option<Vec<String>>,
    /// Replaces the user's teams.
    pub team_ids: Option<Vec<Uuid>>,
    /// false deactivates (and logs out), true reactivates.
    pub active: Option<bool>,
    /// Whom the user reports to (approvals can go to a record owner's manager); null clears.
    #[oai(default)]
    pub manager_id: poem_openapi::types::MaybeUndefined<Uuid>,
    pub locale: Option<String>,
}

#[derive(Object)]
pub struct ResetPasswordRequest {
    pub new_password: String,
}

/// Refuses roles that grant more (permissions or scopes) than the caller holds.
async fn ensure_may_grant(
    tx: &mut TenantTx,
    caller: &Caller,
    role_names: &[String],
) -> ApiResult<()> {
    roles::ensure_exist(tx, "roles", role_names).await?;
    let granted = Grants::of_roles(tx, role_names).await?;
    Ok(caller.grants.ensure_may_grant(&granted)?)
}

/// Refuses to touch a user who holds more than the caller (404 if absent); returns the user.
async fn ensure_may_manage(tx: &mut TenantTx, caller: &Caller, user_id: Uuid) -> ApiResult<User> {
    let target = users::get(tx, user_id).await?;
    let theirs = Grants::of_roles(tx, &target.roles).await?;
    caller.grants.ensure_outranks(&theirs)?;
    Ok(target)
}

fn parse_roles(field: &str, raw: &[String], v: &mut Validator) -> Vec<String> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            v.check(crm_core::domain::RoleName::parse(
                &format!("{field}[{i}]"),
                r,
            ))
            .map(|r| r.as_str().to_owned())
        })
        .collect()
}

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// List users (filter by `q` on name/e-mail, `status`, `role`, `team_id`).
    #[oai(path = "/users", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
        q: Query<Option<String>>,
        status: Query<Option<String>>,
        role: Query<Option<String>>,
        team_id: Query<Option<Uuid>>,
    ) -> ApiResult<Json<UserPage>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::UsersRead).await?;
        if let Some(s) = status.0.as_deref() {
            if !matches!(s, "active" | "disabled") {
                return Err(
                    Error::invalid_field("status", "invalid", "use active or disabled").into(),
                );
            }
        }
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let page = users::list(
            &mut tx,
            UserQuery {
                cursor: cursor.0,
                limit: page_size(limit.0),
                q: q.0.filter(|s| !s.trim().is_empty()),
                status: status.0,
                role: role.0,
                team_id: team_id.0,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Json(UserPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Create a user with roles and teams.
    #[oai(path = "/users", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreateUserRequest>,
    ) -> ApiResult<Created<UserOut>> {
        let state = &self.0;
        let ctx = auth.0;
        state.require(&ctx, Permission::UsersManage).await?;
        let mut v = Validator::new();
        let email = v.check(Email::parse("email", &body.email));
        let name = v.check(DisplayName::parse("name", &body.name));
        let password = v.check(Password::parse("password", &body.password));
        let role_names = parse_roles("roles", &body.roles, &mut v);
        let locale = body
            .locale
            .as_deref()
            .and_then(|l| v.check(users::parse_locale("locale", l)));
        v.finish()?;
        let mut team_ids = body.team_ids.clone();
        if let Some(t) = body.team_id {
            if !team_ids.contains(&t) {
                team_ids.insert(0, t);
            }
        }
        let password_hash = identity::hash_password(checked(password)?.expose()).await?;
        let (mut tx, caller) = state.begin(&ctx).await?;
        ensure_may_grant(&mut tx, &caller, &role_names).await?;
        teams::ensure_may_join(&mut tx, &caller, &team_ids, None).await?;
        let user = users::create(
            &mut tx,
            NewUser {
                email: checked(email)?,
                name: checked(name)?,
                password_hash,
                roles: role_names,
                team_ids,
                locale,
            },
        )
        .await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "user.created",
            Some(("user", user.id.to_string())),
            serde_json::json!({ "email": user.email, "roles": user.roles }),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// One user.
    #[oai(path = "/users/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<UserOut>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::UsersRead).await?;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let user = users::get(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(Json(user.into()))
    }

    /// Change name, e-mail, roles, teams, locale; `active: false` deactivates.
    #[oai(path = "/users/:id", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PatchUserRequest>,
    ) -> ApiResult<Json<UserOut>> {
        let state = &self.0;
        let ctx = auth.0;
        state.require(&ctx, Permission::UsersManage).await?;
        let mut v = Validator::new();
        let name = body
            .name
            .as_deref()
            .and_then(|n| v.check(DisplayName::parse("name", n)));
        let email = body
            .email
            .as_deref()
            .and_then(|e| v.check(Email::parse("email", e)));
        let role_names = body
            .roles
            .as_deref()
            .map(|r| parse_roles("roles", r, &mut v));
        let locale = body
            .locale
            .as_deref()
            .and_then(|l| v.check(users::parse_locale("locale", l)));
        if body.active == Some(false) && ctx.principal.user_id() == Some(id.0) {
            v.push(FieldError::new(
                "active",
                "self",
                "you cannot deactivate yourself",
            ));
        }
        v.finish()?;
        let (mut tx, caller) = state.begin(&ctx).await?;
        let target = ensure_may_manage(&mut tx, &caller, id.0).await?;
        if let Some(r) = &role_names {
            ensure_may_grant(&mut tx, &caller, r).await?;
        }
        if let Some(wanted) = &body.team_ids {
            let joined: Vec<Uuid> = wanted
                .iter()
                .filter(|t| !target.team_ids.contains(t))
                .copied()
                .collect();
            teams::ensure_may_join(&mut tx, &caller, &joined, Some(id.0)).await?;
        }
        let user = users::update(
            &mut tx,
            id.0,
            UserPatch {
                name,
                email,
                roles: role_names,
                team_ids: body.team_ids.clone(),
                active: body.active,
                locale,
                manager_id: match body.manager_id {
                    poem_openapi::types::MaybeUndefined::Undefined => None,
                    poem_openapi::types::MaybeUndefined::Null => Some(None),
                    poem_openapi::types::MaybeUndefined::Value(m) => Some(Some(m)),
                },
            },
        )
        .await?;
        let action = match body.active {
            Some(false) => "user.deactivated",
            Some(true) => "user.reactivated",
            None => "user.updated",
        };
        audit::record(&mut tx, &Actor::of(&ctx), action, Some(("user", user.id.to_string())),
            serde_json::json!({ "roles": body.roles, "team_ids": body.team_ids, "email": body.email, "name": body.name })).await?;
        tx.commit().await?;
        Ok(Json(user.into()))
    }

    /// Deactivate a user: it can no longer log in and its sessions end; its records stay.
    #[oai(path = "/users/:id", method = "delete")]
    async fn deactivate(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::UsersManage).await?;
        if ctx.principal.user_id() == Some(id.0) {
            return Err(Error::conflict("user.self", "you cannot deactivate yourself").into());
        }
        let (mut tx, caller) = self.0.begin(&ctx).await?;
        ensure_may_manage(&mut tx, &caller, id.0).await?;
        users::update(
            &mut tx,
            id.0,
            UserPatch {
                active: Some(false),
                ..Default::default()
            },
        )
        .await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "user.deactivated",
            Some(("user", id.0.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Set a user's password (administrator reset); the user's sessions end.
    #[oai(path = "/users/:id/password", method = "post")]
    async fn reset_password(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<ResetPasswordRequest>,
    ) -> ApiResult<NoContent> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::UsersManage).await?;
        let password = Password::parse("new_password", &body.new_password)?;
        let hash = identity::hash_password(password.expose()).await?;
        let (mut tx, caller) = self.0.begin(&ctx).await?;
        ensure_may_manage(&mut tx, &caller, id.0).await?;
        users::set_password(&mut tx, id.0, &hash).await?;
        let keep = ctx
            .principal
            .session_id
            .filter(|_| ctx.principal.user_id() == Some(id.0));
        sessions::revoke_all_of_user(&mut tx, id.0, keep).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "user.password_reset",
            Some(("user", id.0.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
