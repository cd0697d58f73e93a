//! Policy rows in the tenant's `casbin_rule` table, written in the caller's transaction
//! together with the change that needs them (role edit, user roles, API key).

use super::Permission;
use crate::db::TenantTx;
use crate::error::Result;
use sqlx::Row;

/// Subject of a user in policies.
pub fn user_subject(id: uuid::Uuid) -> String {
    format!("u:{id}")
}

/// Subject of an API key in policies.
pub fn api_key_subject(id: uuid::Uuid) -> String {
    format!("k:{id}")
}

/// Marks the tenant's policies as changed, so every process reloads its cached enforcer.
pub async fn bump_version(tx: &mut TenantTx) -> Result<()> {
    sqlx::query("UPDATE settings SET policy_version = policy_version + 1")
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The tenant's policy version (what cached enforcers are keyed by).
pub async fn version(tx: &mut TenantTx) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT policy_version FROM settings")
        .fetch_one(tx.conn())
        .await?)
}

/// Sets the policy version above both its own value and `floor`: after a restore brought back
/// an older version, no enforcer cached for a version in between may be taken for current.
pub async fn bump_version_past(tx: &mut TenantTx, floor: i64) -> Result<()> {
    sqlx::query("UPDATE settings SET policy_version = GREATEST(policy_version, $1) + 1")
        .bind(floor)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Moves the policies of tenant `from` into this transaction's tenant (a restore into a new
/// tenant brings rows whose domain is the tenant the backup was taken of).
pub async fn move_domain(tx: &mut TenantTx, from: uuid::Uuid) -> Result<u64> {
    let to = tx.tenant().id.to_string();
    let from = from.to_string();
    let moved = sqlx::query(
        "UPDATE casbin_rule SET \
           v1 = CASE WHEN ptype LIKE 'p%' AND v1 = $1 THEN $2 ELSE v1 END, \
           v2 = CASE WHEN ptype LIKE 'g%' AND v2 = $1 THEN $2 ELSE v2 END \
         WHERE (ptype LIKE 'p%' AND v1 = $1) OR (ptype LIKE 'g%' AND v2 = $1)",
    )
    .bind(&from)
    .bind(&to)
    .execute(tx.conn())
    .await?;
    bump_version(tx).await?;
    Ok(moved.rows_affected())
}

/// Replaces the roles of a subject.
pub async fn set_subject_roles(tx: &mut TenantTx, subject: &str, roles: &[String]) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    sqlx::query("DELETE FROM casbin_rule WHERE ptype = 'g' AND v0 = $1 AND v2 = $2")
        .bind(subject)
        .bind(&domain)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) \
         SELECT 'g', $1, role, $2, '' FROM unnest($3::text[]) AS role ON CONFLICT DO NOTHING",
    )
    .bind(subject)
    .bind(&domain)
    .bind(roles)
    .execute(tx.conn())
    .await?;
    bump_version(tx).await
}

/// The roles of a subject, sorted.
pub async fn subject_roles(tx: &mut TenantTx, subject: &str) -> Result<Vec<String>> {
    let domain = tx.tenant().id.to_string();
    let rows = sqlx::query(
        "SELECT v1 FROM casbin_rule WHERE ptype = 'g' AND v0 = $1 AND v2 = $2 ORDER BY v1",
    )
    .bind(subject)
    .bind(&domain)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

/// Replaces the permissions of a role.
pub async fn set_role_permissions(
    tx: &mut TenantTx,
    role: &str,
    permissions: &[Permission],
) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    sqlx::query("DELETE FROM casbin_rule WHERE ptype = 'p' AND v0 = $1 AND v1 = $2")
        .bind(role)
        .bind(&domain)
        .execute(tx.conn())
        .await?;
    let (objects, actions): (Vec<&str>, Vec<&str>) =
        permissions.iter().map(Permission::object_action).unzip();
    sqlx::query(
        "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) \
         SELECT 'p', $1, $2, o, a FROM unnest($3::text[], $4::text[]) AS t(o, a) \
         ON CONFLICT DO NOTHING",
    )
    .bind(role)
    .bind(&domain)
    .bind(&objects)
    .bind(&actions)
    .execute(tx.conn())
    .await?;
    bump_version(tx).await
}

/// The permissions of a role, in [`Permission::ALL`] order.
pub async fn role_permissions(tx: &mut TenantTx, role: &str) -> Result<Vec<Permission>> {
    let domain = tx.tenant().id.to_string();
    let rows = sqlx::query(
        "SELECT v2 || ':' || v3 FROM casbin_rule WHERE ptype = 'p' AND v0 = $1 AND v1 = $2",
    )
    .bind(role)
    .bind(&domain)
    .fetch_all(tx.conn())
    .await?;
    let mut held: Vec<Permission> = rows
        .into_iter()
        .filter_map(|r| Permission::parse(&r.get::<String, _>(0)))
        .collect();
    held.sort();
    Ok(held)
}

/// Removes a role's permissions and every assignment of it.
pub async fn remove_role(tx: &mut TenantTx, role: &str) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    sqlx::query(
        "DELETE FROM casbin_rule WHERE (ptype = 'p' AND v0 = $1 AND v1 = $2) \
         OR (ptype = 'g' AND v1 = $1 AND v2 = $2)",
    )
    .bind(role)
    .bind(&domain)
    .execute(tx.conn())
    .await?;
    bump_version(tx).await
}

/// Subjects holding a role, e.g. to refuse deleting a role still in use.
pub async fn role_holders(tx: &mut TenantTx, role: &str) -> Result<i64> {
    let domain = tx.tenant().id.to_string();
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM casbin_rule WHERE ptype = 'g' AND v1 = $1 AND v2 = $2",
    )
    .bind(role)
    .bind(&domain)
    .fetch_one(tx.conn())
    .await?;
    Ok(count)
}
