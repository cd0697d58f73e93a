//! `/roles` and `/permissions`.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::Permission;
use crm_core::domain::RoleName;
use crm_core::roles::{self, Role, RolePatch};
use crm_core::Error;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::collections::BTreeMap;

pub struct RolesApi(pub AppState);

/// A role: permissions plus, per record object, which records it sees.
#[derive(Object)]
pub struct RoleOut {
    pub name: String,
    pub description: String,
    /// `object:action` permissions, e.g. `customers:read`.
    pub permissions: Vec<String>,
    /// Per object: `own`, `team` or `all`.
    pub scopes: BTreeMap<String, String>,
    /// Objects whose records this role may only create and edit of some record types.
    pub record_types: BTreeMap<String, Vec<String>>,
    /// Shipped with every tenant (still editable, except admin).
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Role> for RoleOut {
    fn from(r: Role) -> Self {
        RoleOut {
            name: r.name,
            description: r.description,
            permissions: r.permissions.iter().map(ToString::to_string).collect(),
            scopes: r
                .scopes
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        serde_json::to_value(v)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            record_types: r.record_types,
            builtin: r.builtin,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Object)]
pub struct CreateRoleRequest {
    /// 2-40 characters a-z, 0-9, '_', '-'.
    pub name: String,
    #[oai(default)]
    pub description: String,
    pub permissions: Vec<String>,
    /// Per object (customers, contacts, tickets, opportunities, activities, tasks):
    /// own, team or all. Unnamed objects default to all.
    #[oai(default)]
    pub scopes: BTreeMap<String, String>,
    /// Per object: the record types this role may create and edit (unnamed objects: all).
    pub record_types: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Object)]
pub struct PatchRoleRequest {
    pub description: Option<String>,
    /// Replaces the role's permissions.
    pub permissions: Option<Vec<String>>,
    /// Changes the named objects' scopes.
    pub scopes: Option<BTreeMap<String, String>>,
    /// Limits the named objects to some record types (`[]`: none; `null`: all again).
    pub record_types: Option<BTreeMap<String, Option<Vec<String>>>>,
}

/// A permission a role can hold.
#[derive(Object)]
pub struct PermissionOut {
    pub name: String,
    pub description: String,
}

fn parse_permissions(raw: &[String]) -> ApiResult<Vec<Permission>> {
    roles::parse_permissions("permissions", raw).map_err(|e| Error::invalid(e).into())
}

fn parse_scopes(
    raw: &BTreeMap<String, String>,
) -> ApiResult<BTreeMap<String, crm_core::authz::Scope>> {
    roles::parse_scopes("scopes", raw).map_err(|e| Error::invalid(e).into())
}

#[OpenApi(tag = "Tag::Roles")]
impl RolesApi {
    /// Every permission there is.
    #[oai(path = "/permissions", method = "get")]
    async fn permissions(&self, auth: Auth) -> ApiResult<Json<Vec<PermissionOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let permissions = roles::permissions(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(
            permissions
                .iter()
                .map(|p| PermissionOut {
                    name: p.to_string(),
                    description: p.description().into_owned(),
                })
                .collect(),
        ))
    }

    /// All roles.
    #[oai(path = "/roles", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<RoleOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = roles::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Create a role. You can only grant permissions you hold yourself.
    #[oai(path = "/roles", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreateRoleRequest>,
    ) -> ApiResult<Created<RoleOut>> {
        let name = RoleName::parse("name", &body.name)?;
        let permissions = parse_permissions(&body.permissions)?;
        let scopes = parse_scopes(&body.scopes)?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let role = roles::create(
            &mut tx,
            Some(&caller),
            &name,
            body.description.trim(),
            &permissions,
            scopes,
            false,
        )
        .await?;
        let role = match &body.record_types {
            Some(types) => {
                roles::update(
                    &mut tx,
                    &caller,
                    &role.name,
                    RolePatch {
                        record_types: Some(
                            types
                                .iter()
                                .map(|(o, t)| (o.clone(), Some(t.clone())))
                                .collect(),
                        ),
                        ..RolePatch::default()
                    },
                )
                .await?
            }
            None => role,
        };
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "role.created",
            Some(("role", role.name.clone())),
            serde_json::json!({ "permissions": role.permissions, "scopes": role.scopes,
                                "record_types": role.record_types }),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(role.into())))
    }

    /// One role.
    #[oai(path = "/roles/:name", method = "get")]
    async fn get(&self, auth: Auth, name: Path<String>) -> ApiResult<Json<RoleOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let role = roles::get(&mut tx, &caller, &name.0).await?;
        tx.commit().await?;
        Ok(Json(role.into()))
    }

    /// Change a role's description, permissions or scopes (takes effect at once).
    #[oai(path = "/roles/:name", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        name: Path<String>,
        body: Json<PatchRoleRequest>,
    ) -> ApiResult<Json<RoleOut>> {
        let permissions = body
            .permissions
            .as_deref()
            .map(parse_permissions)
            .transpose()?;
        let scopes = body.scopes.as_ref().map(parse_scopes).transpose()?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let role = roles::update(
            &mut tx,
            &caller,
            &name.0,
            RolePatch {
                description: body.description.as_deref().map(|d| d.trim().to_owned()),
                permissions,
                scopes,
                record_types: body.record_types.clone(),
            },
        )
        .await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "role.updated",
            Some(("role", role.name.clone())),
            serde_json::json!({ "permissions": role.permissions, "scopes": role.scopes,
                                "record_types": role.record_types }),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(role.into()))
    }

    /// Delete a role nobody holds.
    #[oai(path = "/roles/:name", method = "delete")]
    async fn delete(&self, auth: Auth, name: Path<String>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        roles::delete(&mut tx, &caller, &name.0).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "role.deleted",
            Some(("role", name.0.clone())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
