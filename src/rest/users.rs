//! `/users`: staff users of the tenant.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::page_size;
use crm_core::staff::{self, NewStaff, StaffPatch};
use crm_core::users::{User, UserQuery};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
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
    /// Set while the user is frozen by the read limit (every request answers 403
    /// `user.frozen`); lift it with POST /users/{id}/unfreeze.
    #[oai(skip_serializing_if_is_none)]
    pub frozen_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub frozen_reason: Option<String>,
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
            frozen_at: u.frozen_at,
            frozen_reason: u.frozen_reason,
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
        let query = UserQuery {
            cursor: cursor.0,
            limit: page_size(limit.0),
            q: q.0.filter(|s| !s.trim().is_empty()),
            status: status.0,
            role: role.0,
            team_id: team_id.0,
        };
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = staff::list(&mut tx, &caller, query).await?;
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
        let body = body.0;
        let mut team_ids = body.team_ids;
        if let Some(t) = body.team_id.filter(|t| !team_ids.contains(t)) {
            team_ids.insert(0, t);
        }
        let new = NewStaff {
            email: body.email,
            name: body.name,
            password: body.password,
            roles: body.roles,
            team_ids,
            locale: body.locale,
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let user = staff::create(&mut tx, &caller, &Actor::of(&ctx), new).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// One user.
    #[oai(path = "/users/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<UserOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let user = staff::get(&mut tx, &caller, id.0).await?;
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
        let body = body.0;
        let patch = StaffPatch {
            name: body.name,
            email: body.email,
            roles: body.roles,
            team_ids: body.team_ids,
            active: body.active,
            locale: body.locale,
            manager_id: match body.manager_id {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(m) => Some(Some(m)),
            },
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let user = staff::update(&mut tx, &caller, &Actor::of(&ctx), id.0, patch).await?;
        tx.commit().await?;
        Ok(Json(user.into()))
    }

    /// Deactivate a user: it can no longer log in and its sessions end; its records stay.
    #[oai(path = "/users/:id", method = "delete")]
    async fn deactivate(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        staff::deactivate(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
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
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        staff::reset_password(&mut tx, &caller, &actor, id.0, &body.new_password).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
