//! Roles: a named set of permissions (kept as casbin `p` rules) plus record scopes per object.

use crate::authz::{
    policy, Caller, DefaultRole, Grants, Permission, Scope, ADMIN_ROLE, SCOPED_OBJECTS,
};
use crate::db::TenantTx;
use crate::domain::{ObjectName, RoleName};
use crate::error::{unique_violation, Error, FieldError, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use std::collections::BTreeMap;

/// A role with its permissions and scopes.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub scopes: BTreeMap<String, Scope>,
    /// Objects whose records this role may only create and edit of some record types.
    pub record_types: BTreeMap<String, Vec<String>>,
    pub builtin: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct RoleRow {
    name: String,
    description: String,
    scopes: Json<BTreeMap<String, Scope>>,
    record_types: Json<BTreeMap<String, Vec<String>>>,
    builtin: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `record_types` through `to_jsonb`: a tenant before schema v15 has no such column.
const COLUMNS: &str = "name, description, scopes, \
    coalesce(to_jsonb(roles) -> 'record_types', '{}'::jsonb) AS record_types, builtin, created_at, updated_at";

async fn with_permissions(tx: &mut TenantTx, row: RoleRow) -> Result<Role> {
    let permissions = policy::role_permissions(tx, &row.name).await?;
    Ok(Role {
        name: row.name,
        description: row.description,
        permissions,
        scopes: row.scopes.0,
        record_types: row.record_types.0,
        builtin: row.builtin,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Parses permission names, reporting each unknown one.
pub fn parse_permissions(field: &str, raw: &[String]) -> Result<Vec<Permission>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        match Permission::parse(p) {
            Some(p) => out.push(p),
            None => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                "unknown_permission",
                format!(
                    "'{p}' is not a permission; known: {}, and <custom object>:read|create|update|delete|purge|export",
                    Permission::ALL
                        .iter()
                        .map(Permission::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    out.sort();
    out.dedup();
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses `{object: own|team|all}`, reporting unknown objects and scopes. Custom object keys
/// are accepted here; [`create`] and [`update`] check the tenant has them.
pub fn parse_scopes(
    field: &str,
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Scope>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (object, scope) in raw {
        let custom = ObjectName::parse("scopes", object).is_ok();
        if !SCOPED_OBJECTS.contains(&object.as_str()) && !custom {
            errors.push(FieldError::new(
                format!("{field}.{object}"),
                "unknown_object",
                format!(
                    "scopes apply to: {} and the company's custom objects",
                    SCOPED_OBJECTS.join(", ")
                ),
            ));
            continue;
        }
        match Scope::parse(scope) {
            Some(s) => {
                out.insert(object.clone(), s);
            }
            None => errors.push(FieldError::new(
                format!("{field}.{object}"),
                "invalid_scope",
                format!("'{scope}' is not a scope; use own, team or all"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// 422 `unknown_object` for custom objects named in permissions or scopes that the tenant
/// does not have (a typo would otherwise grant nothing, silently).
async fn ensure_objects_exist(
    tx: &mut TenantTx,
    permissions: &[Permission],
    scopes: &BTreeMap<String, Scope>,
) -> Result<()> {
    let mut named: Vec<(String, ObjectName)> = Vec::new();
    for (i, p) in permissions.iter().enumerate() {
        if let Some(object) = p.custom_object() {
            named.push((format!("permissions[{i}]"), object));
        }
    }
    for object in scopes.keys() {
        if SCOPED_OBJECTS.contains(&object.as_str()) {
            continue;
        }
        if let Ok(name) = ObjectName::parse("scopes", object) {
            named.push((format!("scopes.{object}"), name));
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    let names: Vec<ObjectName> = named.iter().map(|(_, n)| *n).collect();
    let known = crate::objects::existing(tx, &names).await?;
    let errors: Vec<FieldError> = named
        .into_iter()
        .filter(|(_, n)| !known.contains(n))
        .map(|(field, n)| {
            FieldError::new(
                field,
                "unknown_object",
                format!("there is no object '{n}'; list objects with GET /api/v1/objects"),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(errors))
    }
}

/// 422 naming each object or record type in a role's record type limits that the tenant
/// does not have.
async fn ensure_record_types_exist(
    tx: &mut TenantTx,
    changes: &BTreeMap<String, Option<Vec<String>>>,
) -> Result<()> {
    let mut errors = Vec::new();
    for (object, types) in changes {
        let field = format!("record_types.{object}");
        let known_object = SCOPED_OBJECTS.contains(&object.as_str())
            || match ObjectName::parse("record_types", object) {
                Ok(name) => crate::objects::get(tx, name).await?.is_some(),
                Err(_) => false,
            };
        if !known_object {
            errors.push(FieldError::new(
                field,
                "unknown_object",
                format!("there is no object '{object}'; list objects with GET /api/v1/objects"),
            ));
            continue;
        }
        let defined: Vec<String> = crate::objects::record_types(tx, object)
            .await?
            .into_iter()
            .map(|t| t.key)
            .collect();
        for (i, t) in types.iter().flatten().enumerate() {
            if !defined.contains(t) {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    "unknown_record_type",
                    format!(
                        "{object} has no record type '{t}'; it has: {}",
                        if defined.is_empty() {
                            "none".to_owned()
                        } else {
                            defined.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(errors))
    }
}

/// A new custom object's permissions: the admin role gets every action on it, and every other
/// role the actions it holds on customers (custom objects belong to the customer relationship
/// until an administrator narrows them). Its scope in each role is the role's customer scope.
pub async fn object_created(tx: &mut TenantTx, object: ObjectName) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    let actions: Vec<&str> = crate::authz::ObjectAction::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) \
         SELECT 'p', v0, v1, $1, v3 FROM casbin_rule \
           WHERE ptype = 'p' AND v1 = $2 AND v2 = 'customers' AND v3 = ANY($3) \
         UNION SELECT 'p', $4, $2, $1, a FROM unnest($3::text[]) AS a \
         ON CONFLICT DO NOTHING",
    )
    .bind(object.as_str())
    .bind(&domain)
    .bind(&actions)
    .bind(ADMIN_ROLE)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "UPDATE roles SET scopes = scopes || jsonb_build_object($1::text, coalesce(scopes -> 'customers', '\"all\"'::jsonb)), \
         updated_at = now()",
    )
    .bind(object.as_str())
    .execute(tx.conn())
    .await?;
    policy::bump_version(tx).await
}

/// A deleted custom object leaves no permission or scope behind (a later object with the same
/// key starts from the defaults again).
pub async fn object_removed(tx: &mut TenantTx, object: ObjectName) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    sqlx::query("DELETE FROM casbin_rule WHERE ptype = 'p' AND v1 = $1 AND v2 = $2")
        .bind(&domain)
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE roles SET scopes = scopes - $1::text WHERE scopes ? $1::text")
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    policy::bump_version(tx).await
}

/// Fills objects a role did not mention with `all`, so every role scopes every object.
fn complete_scopes(mut scopes: BTreeMap<String, Scope>) -> BTreeMap<String, Scope> {
    for object in SCOPED_OBJECTS {
        scopes.entry((*object).to_owned()).or_insert(Scope::All);
    }
    scopes
}

/// Creates a role (needs `roles:manage`). `granter` is the creating caller (`None`: the
/// system seeding defaults); a role granting more than the caller holds is 403
/// `auth.escalation`.
pub async fn create(
    tx: &mut TenantTx,
    granter: Option<&Caller>,
    name: &RoleName,
    description: &str,
    permissions: &[Permission],
    scopes: BTreeMap<String, Scope>,
    builtin: bool,
) -> Result<Role> {
    let scopes = complete_scopes(scopes);
    ensure_objects_exist(tx, permissions, &scopes).await?;
    if let Some(granter) = granter {
        granter.require(Permission::RolesManage)?;
        granter
            .grants
            .ensure_may_grant(&Grants::of_role(permissions.to_vec(), &scopes))?;
    }
    let row: RoleRow = sqlx::query_as(&format!(
        "INSERT INTO roles (name, description, scopes, builtin) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(name.as_str())
    .bind(description)
    .bind(Json(scopes))
    .bind(builtin)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict(
            "role.exists",
            format!("a role named '{name}' exists already; choose another name or edit it"),
        ),
        None => e.into(),
    })?;
    policy::set_role_permissions(tx, name.as_str(), permissions).await?;
    with_permissions(tx, row).await
}

/// Seeds the default roles of a new tenant.
pub async fn seed_defaults(tx: &mut TenantTx, roles: Vec<DefaultRole>) -> Result<()> {
    for role in roles {
        let name = RoleName::parse("name", role.name)
            .map_err(|e| Error::internal(format!("default role name: {}", e.message)))?;
        create(
            tx,
            None,
            &name,
            role.description,
            &role.permissions,
            role.scopes,
            true,
        )
        .await?;
    }
    Ok(())
}

/// Every permission there is, for granting in roles (`roles:read`): the built-in ones, then
/// each custom object's.
pub async fn permissions(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Permission>> {
    caller.require(Permission::RolesRead)?;
    let mut all = Permission::ALL.to_vec();
    for object in crate::objects::list(tx).await? {
        all.extend(
            crate::authz::ObjectAction::ALL
                .iter()
                .map(|a| Permission::Object(object.key, *a)),
        );
    }
    Ok(all)
}

/// All roles, by name.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Role>> {
    caller.require(Permission::RolesRead)?;
    let rows: Vec<RoleRow> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM roles ORDER BY name"))
        .fetch_all(tx.conn())
        .await?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in rows {
        roles.push(with_permissions(tx, row).await?);
    }
    Ok(roles)
}

fn not_found(name: &str) -> Error {
    Error::not_found("role.not_found", format!("no role named '{name}'"))
}

/// One role.
pub async fn get(tx: &mut TenantTx, caller: &Caller, name: &str) -> Result<Role> {
    caller.require(Permission::RolesRead)?;
    load(tx, name).await
}

async fn load(tx: &mut TenantTx, name: &str) -> Result<Role> {
    let row: Option<RoleRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM roles WHERE name = $1"))
            .bind(name)
            .fetch_optional(tx.conn())
            .await?;
    with_permissions(tx, row.ok_or_else(|| not_found(name))?).await
}

/// What may change on a role.
#[derive(Debug, Default)]
pub struct RolePatch {
    pub description: Option<String>,
    pub permissions: Option<Vec<Permission>>,
    pub scopes: Option<BTreeMap<String, Scope>>,
    /// Replaces the named objects' record type limits (an empty list: none of its types;
    /// `null` for an object: all of them again).
    pub record_types: Option<BTreeMap<String, Option<Vec<String>>>>,
}

/// Edits a role. The admin role keeps every permission and scope `all`. A change of
/// permissions or scopes must leave the role within what `granter` holds (403
/// `auth.escalation`): nobody widens a role, their own included, beyond their own grants.
pub async fn update(
    tx: &mut TenantTx,
    granter: &Caller,
    name: &str,
    patch: RolePatch,
) -> Result<Role> {
    granter.require(Permission::RolesManage)?;
    let current = load(tx, name).await?;
    if name == ADMIN_ROLE
        && (patch.permissions.is_some() || patch.scopes.is_some() || patch.record_types.is_some())
    {
        return Err(Error::conflict(
            "role.protected",
            "the admin role always holds every permission with scope 'all'; create another role instead",
        ));
    }
    let changes_power =
        patch.permissions.is_some() || patch.scopes.is_some() || patch.record_types.is_some();
    let mut record_types = current.record_types.clone();
    if let Some(changes) = &patch.record_types {
        ensure_record_types_exist(tx, changes).await?;
        for (object, types) in changes {
            match types {
                Some(types) => {
                    let mut types = types.clone();
                    types.sort();
                    types.dedup();
                    record_types.insert(object.clone(), types);
                }
                None => {
                    record_types.remove(object);
                }
            }
        }
    }
    let scopes = patch
        .scopes
        .map(|s| {
            let mut merged = current.scopes.clone();
            merged.extend(s);
            merged
        })
        .unwrap_or(current.scopes);
    let scopes = complete_scopes(scopes);
    if changes_power {
        let permissions = patch.permissions.as_deref().unwrap_or(&current.permissions);
        ensure_objects_exist(tx, permissions, &scopes).await?;
        granter.grants.ensure_may_grant(
            &Grants::of_role(permissions.to_vec(), &scopes).with_record_types(record_types.clone()),
        )?;
    }
    sqlx::query(
        "UPDATE roles SET description = $2, scopes = $3, record_types = $4, updated_at = now() \
         WHERE name = $1",
    )
    .bind(name)
    .bind(patch.description.unwrap_or(current.description))
    .bind(Json(scopes))
    .bind(Json(&record_types))
    .execute(tx.conn())
    .await?;
    if let Some(permissions) = patch.permissions {
        policy::set_role_permissions(tx, name, &permissions).await?;
    } else {
        policy::bump_version(tx).await?;
    }
    load(tx, name).await
}

/// Deletes a role that nobody holds. The admin role cannot be deleted.
pub async fn delete(tx: &mut TenantTx, caller: &Caller, name: &str) -> Result<()> {
    caller.require(Permission::RolesManage)?;
    load(tx, name).await?;
    if name == ADMIN_ROLE {
        return Err(Error::conflict(
            "role.protected",
            "the admin role cannot be deleted",
        ));
    }
    let holders = policy::role_holders(tx, name).await?;
    if holders > 0 {
        return Err(Error::conflict(
            "role.in_use",
            format!(
                "role '{name}' is held by {holders} user(s) or API key(s); assign them another role first"
            ),
        ));
    }
    sqlx::query("DELETE FROM roles WHERE name = $1")
        .bind(name)
        .execute(tx.conn())
        .await?;
    policy::remove_role(tx, name).await
}

/// Parses a list of role names given as `field`: the bad ones go to `errors` as
/// `field[i]`, the good ones come back sorted and without duplicates.
pub fn parse_names(field: &str, raw: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut roles = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        match RoleName::parse(&format!("{field}[{i}]"), name) {
            Ok(r) => roles.push(r.as_str().to_owned()),
            Err(e) => errors.push(e),
        }
    }
    roles.sort();
    roles.dedup();
    roles
}

/// Checks that every named role exists; a 422 naming the unknown ones otherwise.
pub async fn ensure_exist(tx: &mut TenantTx, field: &str, names: &[String]) -> Result<()> {
    let known: Vec<String> = sqlx::query_scalar("SELECT name FROM roles WHERE name = ANY($1)")
        .bind(names)
        .fetch_all(tx.conn())
        .await?;
    crate::error::ensure_known(field, names, &known, "unknown_role", |n| {
        format!("there is no role '{n}'; list roles with GET /api/v1/roles")
    })
}
