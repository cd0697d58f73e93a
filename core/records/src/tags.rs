//! The tenant's tag catalogue. Records carry tag names in a `tags` array; every name used on
//! a record is also in the catalogue, so pickers can offer it.

use chrono::{DateTime, Utc};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::{unique_violation, Error, Result};
use serde::Serialize;
use sqlx::FromRow;

/// A tag with how many live records carry it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Tag {
    pub name: String,
    pub color: Option<String>,
    pub customers: i64,
    pub contacts: i64,
    pub created_at: DateTime<Utc>,
}

/// Every tag, by name.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Tag>> {
    caller.require(Permission::CustomersRead)?;
    catalogue(tx).await
}

async fn catalogue(tx: &mut TenantTx) -> Result<Vec<Tag>> {
    Ok(sqlx::query_as(
        "SELECT t.name, t.color, \
           (SELECT count(*) FROM customers c WHERE c.deleted_at IS NULL AND c.tags @> ARRAY[t.name]) AS customers, \
           (SELECT count(*) FROM contacts c WHERE c.deleted_at IS NULL AND c.tags @> ARRAY[t.name]) AS contacts, \
           t.created_at \
         FROM tags t ORDER BY t.name",
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Adds a tag to the catalogue (409 if it exists).
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    name: &str,
    color: Option<&str>,
) -> Result<Tag> {
    caller.require(Permission::CustomersUpdate)?;
    sqlx::query("INSERT INTO tags (name, color) VALUES ($1, $2)")
        .bind(name)
        .bind(color)
        .execute(tx.conn())
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => Error::conflict("tag.exists", format!("the tag '{name}' exists already")),
            None => e.into(),
        })?;
    catalogue(tx)
        .await?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::internal("created tag vanished"))
}

/// Makes sure tags used on a record are in the catalogue.
pub async fn register(tx: &mut TenantTx, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO tags (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
        .bind(names)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Checks a colour like `#1677ff`.
pub fn valid_color(color: &str) -> bool {
    color.len() == 7 && color.starts_with('#') && color[1..].chars().all(|c| c.is_ascii_hexdigit())
}
