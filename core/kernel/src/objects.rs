//! The tenant's catalogue of custom objects (`object_defs`): their keys, names and labels.
//! The kernel owns it because permissions and role scopes name custom objects and must be
//! checked against it; the record engine (crm-records) owns the objects' tables and fields
//! and calls these functions in the same transaction as its DDL. No permission checks here:
//! the services that call them check their `Caller` first.

use crate::db::TenantTx;
use crate::domain::ObjectName;
use crate::error::{unique_violation, Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A custom object as catalogued.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDef {
    pub key: ObjectName,
    /// Singular display name (`Policy`).
    pub name: String,
    /// Plural display name (`Policies`).
    pub name_plural: String,
    /// Display names per locale (`{"zh-CN": "保单"}`).
    pub labels: BTreeMap<String, String>,
    pub icon: Option<String>,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    name: String,
    name_plural: String,
    labels: Json<BTreeMap<String, String>>,
    icon: Option<String>,
    description: Option<String>,
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "key, name, name_plural, labels, icon, description, created_by, created_at, updated_at";

fn from_row(r: Row) -> Result<ObjectDef> {
    Ok(ObjectDef {
        key: ObjectName::parse("key", &r.key)
            .map_err(|_| Error::internal(format!("object_defs has a bad key '{}'", r.key)))?,
        name: r.name,
        name_plural: r.name_plural,
        labels: r.labels.0,
        icon: r.icon,
        description: r.description,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// Whether the tenant's schema has `table` (a tenant one version behind may not yet).
async fn has_table(tx: &mut TenantTx, table: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(tx.conn())
        .await?)
}

/// Every custom object, by key (none before schema v15).
pub async fn list(tx: &mut TenantTx) -> Result<Vec<ObjectDef>> {
    if !has_table(tx, "object_defs").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM object_defs ORDER BY key"))
        .fetch_all(tx.conn())
        .await?;
    rows.into_iter().map(from_row).collect()
}

/// One custom object, if the tenant has it.
pub async fn get(tx: &mut TenantTx, key: ObjectName) -> Result<Option<ObjectDef>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM object_defs WHERE key = $1"))
            .bind(key.as_str())
            .fetch_optional(tx.conn())
            .await?;
    row.map(from_row).transpose()
}

/// How many custom objects the tenant has.
pub async fn count(tx: &mut TenantTx) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM object_defs")
        .fetch_one(tx.conn())
        .await?)
}

/// The keys among `names` that the tenant has.
pub async fn existing(tx: &mut TenantTx, names: &[ObjectName]) -> Result<Vec<ObjectName>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<&str> = names.iter().map(ObjectName::as_str).collect();
    let found: Vec<String> = sqlx::query_scalar("SELECT key FROM object_defs WHERE key = ANY($1)")
        .bind(&raw)
        .fetch_all(tx.conn())
        .await?;
    Ok(names
        .iter()
        .copied()
        .filter(|n| found.iter().any(|f| f == n.as_str()))
        .collect())
}

/// A catalogue entry to add or the values to change (validated by the caller).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub name: String,
    pub name_plural: String,
    pub labels: BTreeMap<String, String>,
    pub icon: Option<String>,
    pub description: Option<String>,
}

/// Adds an object; a key the tenant already has is 409 `object.exists`.
pub async fn insert(
    tx: &mut TenantTx,
    key: ObjectName,
    entry: &Entry,
    created_by: Option<Uuid>,
) -> Result<ObjectDef> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO object_defs (key, name, name_plural, labels, icon, description, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(key.as_str())
    .bind(&entry.name)
    .bind(&entry.name_plural)
    .bind(Json(&entry.labels))
    .bind(&entry.icon)
    .bind(&entry.description)
    .bind(created_by)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict(
            "object.exists",
            format!("an object '{key}' exists already; choose another key or edit it"),
        ),
        None => e.into(),
    })?;
    from_row(row)
}

/// Replaces an object's names, labels, icon and description.
pub async fn update(tx: &mut TenantTx, key: ObjectName, entry: &Entry) -> Result<ObjectDef> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "UPDATE object_defs SET name = $2, name_plural = $3, labels = $4, icon = $5, \
         description = $6, updated_at = now() WHERE key = $1 RETURNING {COLUMNS}"
    ))
    .bind(key.as_str())
    .bind(&entry.name)
    .bind(&entry.name_plural)
    .bind(Json(&entry.labels))
    .bind(&entry.icon)
    .bind(&entry.description)
    .fetch_optional(tx.conn())
    .await?;
    from_row(row.ok_or_else(|| not_found(key.as_str()))?)
}

/// Removes an object from the catalogue.
pub async fn remove(tx: &mut TenantTx, key: ObjectName) -> Result<()> {
    sqlx::query("DELETE FROM object_defs WHERE key = $1")
        .bind(key.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// 404 `object.not_found` for a key the tenant does not have.
pub fn not_found(key: &str) -> Error {
    Error::not_found(
        "object.not_found",
        format!("there is no object '{key}'; list objects with GET /api/v1/objects"),
    )
}

/// A kind of record of one object (the coaching business's "adult" and "child" students):
/// the fields its form shows, the ones it requires, the values it starts with. Roles may be
/// limited to some record types of an object.
#[derive(Debug, Clone, Serialize)]
pub struct RecordType {
    pub object: String,
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Field paths the form shows, in order (empty: all).
    pub fields: Vec<String>,
    /// Field paths a record of this type must have.
    pub required: Vec<String>,
    /// Field path → value a new record of this type starts with.
    pub defaults: serde_json::Map<String, serde_json::Value>,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TypeRow {
    object: String,
    key: String,
    name: String,
    labels: Json<BTreeMap<String, String>>,
    description: Option<String>,
    fields: Json<Vec<String>>,
    required: Json<Vec<String>>,
    defaults: Json<serde_json::Map<String, serde_json::Value>>,
    position: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const TYPE_COLUMNS: &str = "object, key, name, labels, description, fields, required, defaults, \
    position, created_at, updated_at";

impl From<TypeRow> for RecordType {
    fn from(r: TypeRow) -> Self {
        RecordType {
            object: r.object,
            key: r.key,
            name: r.name,
            labels: r.labels.0,
            description: r.description,
            fields: r.fields.0,
            required: r.required.0,
            defaults: r.defaults.0,
            position: r.position,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The record types of an object, in display order (none before schema v15).
pub async fn record_types(tx: &mut TenantTx, object: &str) -> Result<Vec<RecordType>> {
    if !has_table(tx, "record_types").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<TypeRow> = sqlx::query_as(&format!(
        "SELECT {TYPE_COLUMNS} FROM record_types WHERE object = $1 ORDER BY position, key"
    ))
    .bind(object)
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(RecordType::from).collect())
}

/// A record type to add or the values to replace (validated by the caller).
#[derive(Debug, Clone, Default)]
pub struct TypeEntry {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub description: Option<String>,
    pub fields: Vec<String>,
    pub required: Vec<String>,
    pub defaults: serde_json::Map<String, serde_json::Value>,
    pub position: i32,
}

/// Adds a record type; an existing key is 409 `record_type.exists`.
pub async fn insert_record_type(
    tx: &mut TenantTx,
    object: &str,
    key: &str,
    entry: &TypeEntry,
) -> Result<RecordType> {
    let row: TypeRow = sqlx::query_as(&format!(
        "INSERT INTO record_types (object, key, name, labels, description, fields, required, defaults, position) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {TYPE_COLUMNS}"
    ))
    .bind(object)
    .bind(key)
    .bind(&entry.name)
    .bind(Json(&entry.labels))
    .bind(&entry.description)
    .bind(Json(&entry.fields))
    .bind(Json(&entry.required))
    .bind(Json(&entry.defaults))
    .bind(entry.position)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict(
            "record_type.exists",
            format!("{object} already has a record type '{key}'; choose another key or edit it"),
        ),
        None => e.into(),
    })?;
    Ok(row.into())
}

/// Replaces a record type's values.
pub async fn update_record_type(
    tx: &mut TenantTx,
    object: &str,
    key: &str,
    entry: &TypeEntry,
) -> Result<RecordType> {
    let row: Option<TypeRow> = sqlx::query_as(&format!(
        "UPDATE record_types SET name = $3, labels = $4, description = $5, fields = $6, \
         required = $7, defaults = $8, position = $9, updated_at = now() \
         WHERE object = $1 AND key = $2 RETURNING {TYPE_COLUMNS}"
    ))
    .bind(object)
    .bind(key)
    .bind(&entry.name)
    .bind(Json(&entry.labels))
    .bind(&entry.description)
    .bind(Json(&entry.fields))
    .bind(Json(&entry.required))
    .bind(Json(&entry.defaults))
    .bind(entry.position)
    .fetch_optional(tx.conn())
    .await?;
    row.map(RecordType::from)
        .ok_or_else(|| record_type_not_found(object, key))
}

/// Removes a record type (and every role's mention of it).
pub async fn remove_record_type(tx: &mut TenantTx, object: &str, key: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM record_types WHERE object = $1 AND key = $2")
        .bind(object)
        .bind(key)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(record_type_not_found(object, key));
    }
    sqlx::query(
        "UPDATE roles SET record_types = jsonb_set(record_types, ARRAY[$1], \
           coalesce((SELECT jsonb_agg(t) FROM jsonb_array_elements_text(record_types -> $1) t WHERE t <> $2), '[]'::jsonb)) \
         WHERE record_types ? $1",
    )
    .bind(object)
    .bind(key)
    .execute(tx.conn())
    .await?;
    crate::authz::policy::bump_version(tx).await
}

/// Forgets every record type of a deleted object.
pub async fn forget_record_types(tx: &mut TenantTx, object: &str) -> Result<()> {
    sqlx::query("DELETE FROM record_types WHERE object = $1")
        .bind(object)
        .execute(tx.conn())
        .await?;
    sqlx::query("UPDATE roles SET record_types = record_types - $1 WHERE record_types ? $1")
        .bind(object)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// 404 `record_type.not_found`.
pub fn record_type_not_found(object: &str, key: &str) -> Error {
    Error::not_found(
        "record_type.not_found",
        format!("{object} has no record type '{key}'; list them with GET /api/v1/objects/{object}/record-types"),
    )
}
