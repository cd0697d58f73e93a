//! Custom fields: a metadata row in `field_defs` plus a real typed column `cf_<key>` on the
//! object's table, created, changed and dropped in the same transaction. Column and index
//! names come only from an [`ObjectKey`] and a [`FieldKey`].

mod checks;
mod lookups;
mod patch;

pub use checks::{OnDelete, LABEL_MAX_CHARS, OPTION_MAX_CHARS};
pub(crate) use lookups::{forget_object, referencing, relations_to};
pub(crate) use patch::update;
pub use patch::FieldPatch;

use crate::meta::{FieldKey, FieldType, ObjectKey};
use crate::values;
use checks::{
    check_default, check_label, check_option_labels, check_options, check_portal_editable,
    check_searchable, trgm_index,
};
use chrono::{DateTime, Utc};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Default: at most this many custom fields per object (Salesforce Enterprise level).
pub const MAX_CUSTOM_FIELDS: i64 = 500;

/// A custom field's definition.
#[derive(Debug, Clone, Serialize)]
pub struct FieldDef {
    pub object: ObjectKey,
    pub key: FieldKey,
    pub label: String,
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    pub default: Option<Value>,
    pub options: Vec<String>,
    pub option_labels: Value,
    /// For `relation`: the object it points to.
    pub target: Option<ObjectKey>,
    /// For `relation`: what deleting the target does here (`None`: fields made before
    /// custom objects, which only their foreign key guards).
    pub on_delete: Option<OnDelete>,
    /// For `rollup`: its definition (see [`crate::rollups`]).
    pub rollup: Option<Value>,
    /// Searched by `q` (served by a trigram index): text fields unless turned off; long
    /// text, e-mail, phone and URL fields when turned on.
    pub searchable: bool,
    pub sensitive: bool,
    pub encrypted: bool,
    /// Ticket fields only: a customer may fill it in on the portal.
    pub portal_editable: bool,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FieldRow {
    object: String,
    key: String,
    label: String,
    labels: sqlx::types::Json<BTreeMap<String, String>>,
    #[sqlx(rename = "type")]
    ty: String,
    required: bool,
    is_unique: bool,
    indexed: bool,
    default_value: Option<Value>,
    options: sqlx::types::Json<Vec<String>>,
    option_labels: Value,
    target: Option<String>,
    on_delete: Option<String>,
    rollup: Option<Value>,
    searchable: Option<bool>,
    sensitive: bool,
    encrypted: bool,
    portal_editable: bool,
    position: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "object, key, label, labels, type, required, is_unique, indexed, default_value, \
    options, option_labels, target, to_jsonb(field_defs) ->> 'on_delete' AS on_delete, \
    to_jsonb(field_defs) -> 'rollup' AS rollup, \
    (to_jsonb(field_defs) ->> 'searchable')::boolean AS searchable, sensitive, encrypted, portal_editable, position, created_at, updated_at";

/// Whether a field of this type is searched when nobody said: text fields are.
fn searchable_by_default(ty: FieldType, encrypted: bool) -> bool {
    ty == FieldType::Text && !encrypted
}

fn from_row(r: FieldRow) -> Result<FieldDef> {
    let corrupt = |what: &str| Error::internal(format!("field_defs row has a bad {what}"));
    let ty = FieldType::parse_custom(&r.ty).ok_or_else(|| corrupt("type"))?;
    Ok(FieldDef {
        object: ObjectKey::named(&r.object).ok_or_else(|| corrupt("object"))?,
        key: FieldKey::parse("key", &r.key).map_err(|_| corrupt("key"))?,
        label: r.label,
        labels: r.labels.0,
        ty,
        searchable: r
            .searchable
            .unwrap_or_else(|| searchable_by_default(ty, r.encrypted)),
        required: r.required,
        unique: r.is_unique,
        indexed: r.indexed,
        default: r.default_value,
        options: r.options.0,
        option_labels: r.option_labels,
        target: r.target.as_deref().and_then(ObjectKey::named),
        on_delete: r.on_delete.as_deref().and_then(OnDelete::parse),
        rollup: r.rollup,
        sensitive: r.sensitive,
        encrypted: r.encrypted,
        portal_editable: r.portal_editable,
        position: r.position,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// The custom fields of an object, in display order.
pub(crate) async fn list(tx: &mut TenantTx, object: ObjectKey) -> Result<Vec<FieldDef>> {
    let rows: Vec<FieldRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM field_defs WHERE object = $1 ORDER BY position, key"
    ))
    .bind(object.as_str())
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(from_row).collect()
}

fn not_found(object: ObjectKey, key: &str) -> Error {
    Error::not_found(
        "field.not_found",
        format!("{object} has no custom field '{key}'"),
    )
}

/// One custom field.
pub(crate) async fn get(tx: &mut TenantTx, object: ObjectKey, key: &str) -> Result<FieldDef> {
    let row: Option<FieldRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM field_defs WHERE object = $1 AND key = $2"
    ))
    .bind(object.as_str())
    .bind(key)
    .fetch_optional(tx.conn())
    .await?;
    from_row(row.ok_or_else(|| not_found(object, key))?)
}

/// A new custom field as requested.
#[derive(Debug, Default, Clone)]
pub struct NewField {
    pub key: String,
    pub label: String,
    pub labels: BTreeMap<String, String>,
    pub ty: String,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    pub default: Option<Value>,
    pub options: Vec<String>,
    pub option_labels: Option<Value>,
    pub target: Option<String>,
    /// For relation fields: restrict (default), set_null or cascade.
    pub on_delete: Option<String>,
    /// For rollup fields: `{relation, fn, field?, filter?}`.
    pub rollup: Option<Value>,
    /// Searched by `q` (default: text fields yes, others no).
    pub searchable: Option<bool>,
    pub sensitive: bool,
    pub encrypted: bool,
    /// Ticket fields only: customers may fill it in on the portal.
    pub portal_editable: bool,
}

/// Creates a custom field: metadata row and column (and indexes) in one transaction.
pub(crate) async fn create(
    tx: &mut TenantTx,
    object: ObjectKey,
    new: NewField,
    max_fields: i64,
) -> Result<FieldDef> {
    let mut v = Validator::new();
    let key = v.check(FieldKey::parse("key", &new.key));
    if object.is_custom() && object.builtins().iter().any(|b| b.key == new.key) {
        // A custom object's fields sit beside its built-in ones at the top level.
        v.push(FieldError::new(
            "key",
            "reserved_key",
            format!(
                "'{}' is a built-in field of {object}; choose another key",
                new.key
            ),
        ));
    }
    let ty = FieldType::parse_custom(&new.ty);
    if ty.is_none() {
        v.push(FieldError::new(
            "type",
            "unknown_type",
            format!(
                "'{}' is not a field type; use one of: {}",
                new.ty,
                FieldType::CUSTOM
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    check_label(&mut v, "label", &new.label);
    for (locale, label) in &new.labels {
        check_label(&mut v, &format!("labels.{locale}"), label);
    }
    let target = match (ty, new.target.as_deref()) {
        (Some(FieldType::Relation), Some(t)) => {
            let parsed = match ObjectKey::named(t) {
                Some(ObjectKey::Custom(name)) => crm_core::objects::get(tx, name)
                    .await?
                    .map(|_| ObjectKey::Custom(name)),
                other => other,
            };
            if parsed.is_none() {
                v.push(FieldError::new(
                    "target",
                    "unknown_object",
                    format!("'{t}' is not an object; use customers, contacts, opportunities, activities, tasks, tickets or one of your objects (GET /api/v1/objects)"),
                ));
            }
            parsed
        }
        (Some(FieldType::Relation), None) => {
            v.push(FieldError::new(
                "target",
                "required",
                "relation fields name the object they point to, e.g. \"customers\"",
            ));
            None
        }
        (_, Some(_)) => {
            v.push(FieldError::new(
                "target",
                "not_allowed",
                "only relation fields have a target",
            ));
            None
        }
        (_, None) => None,
    };
    let on_delete = match (ty, new.on_delete.as_deref()) {
        (Some(FieldType::Relation), None) => Some(OnDelete::Restrict),
        (Some(FieldType::Relation), Some(raw)) => {
            let parsed = OnDelete::parse(raw);
            if parsed.is_none() {
                v.push(FieldError::new(
                    "on_delete",
                    "invalid",
                    format!("'{raw}' is not a choice; use restrict, set_null or cascade"),
                ));
            }
            parsed
        }
        (_, Some(_)) => {
            v.push(FieldError::new(
                "on_delete",
                "not_allowed",
                "only relation fields have on_delete",
            ));
            None
        }
        (_, None) => None,
    };
    let rollup = match ty {
        Some(FieldType::Rollup) => {
            if new.required || new.unique || new.encrypted || new.default.is_some() {
                v.push(FieldError::new(
                    "type",
                    "not_allowed",
                    "rollup fields are computed: they cannot be required, unique, encrypted or have a default",
                ));
            }
            match crate::rollups::validate(tx, object, new.rollup.as_ref()).await {
                Ok(def) => Some(def),
                Err(Error::Invalid { fields, .. }) => {
                    fields.into_iter().for_each(|e| v.push(e));
                    None
                }
                Err(other) => return Err(other),
            }
        }
        _ => {
            if new.rollup.is_some() {
                v.push(FieldError::new(
                    "rollup",
                    "not_allowed",
                    "only rollup fields have a rollup definition",
                ));
            }
            None
        }
    };
    if new.required && on_delete == Some(OnDelete::SetNull) {
        v.push(FieldError::new(
            "on_delete",
            "invalid",
            "a required relation cannot be emptied when its record is deleted; use restrict or cascade",
        ));
    }
    if let (Some(ty), Some(true)) = (ty, new.searchable) {
        check_searchable(&mut v, ty, new.encrypted);
    }
    if let Some(ty) = ty {
        check_options(&mut v, ty, &new.options);
        if new.encrypted && !ty.is_textual() {
            v.push(FieldError::new(
                "encrypted",
                "not_allowed",
                "only text, long_text, email, phone and url fields can be encrypted",
            ));
        }
        if new.unique
            && matches!(
                ty,
                FieldType::MultiSelect | FieldType::LongText | FieldType::Boolean
            )
        {
            v.push(FieldError::new(
                "unique",
                "not_allowed",
                format!("{} fields cannot be unique", ty.as_str()),
            ));
        }
        check_default(
            &mut v,
            ty,
            &new.options,
            target,
            new.encrypted,
            new.default.as_ref(),
        );
    }
    if let Some(labels) = &new.option_labels {
        check_option_labels(&mut v, labels, &new.options);
    }
    check_portal_editable(&mut v, object, Some(new.portal_editable));
    v.finish()?;
    let (Some(key), Some(ty)) = (key, ty) else {
        return Err(Error::internal("validated field missing"));
    };

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM field_defs WHERE object = $1")
        .bind(object.as_str())
        .fetch_one(tx.conn())
        .await?;
    if count >= max_fields {
        return Err(Error::invalid_field(
            "key",
            "field.limit_reached",
            format!(
                "{object} already has the maximum of {max_fields} custom fields; delete one first"
            ),
        ));
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM field_defs WHERE object = $1 AND key = $2)",
    )
    .bind(object.as_str())
    .bind(key.as_str())
    .fetch_one(tx.conn())
    .await?;
    if exists {
        return Err(Error::conflict(
            "field.exists",
            format!("{object} already has a field '{key}'"),
        ));
    }

    let table = object.table();
    let column = key.column();
    let column_type = if new.encrypted {
        "bytea"
    } else {
        ty.sql_type()
    };
    let mut statements = vec![format!(
        "ALTER TABLE {table} ADD COLUMN \"{column}\" {column_type}"
    )];
    let referenced = match ty {
        FieldType::User => Some(std::borrow::Cow::Borrowed("users")),
        FieldType::Relation => target.as_ref().map(ObjectKey::table),
        _ => None,
    };
    if let Some(referenced) = referenced {
        // Named after the column so a violation can be reported against the field.
        statements.push(format!(
            "ALTER TABLE {table} ADD CONSTRAINT \"{table}_{column}_fkey\" \
             FOREIGN KEY (\"{column}\") REFERENCES {referenced} (id)"
        ));
    }
    if new.encrypted {
        let bidx = key.index_column();
        statements.push(format!("ALTER TABLE {table} ADD COLUMN \"{bidx}\" text"));
        statements.push(format!(
            "CREATE INDEX \"{table}_{bidx}\" ON {table} (\"{bidx}\")"
        ));
    }
    let index_target = if new.encrypted {
        key.index_column()
    } else {
        column.clone()
    };
    if new.unique {
        statements.push(format!(
            "CREATE UNIQUE INDEX \"{table}_{column}_unique\" ON {table} (\"{index_target}\") WHERE deleted_at IS NULL"
        ));
    } else if ty == FieldType::Relation && !new.encrypted {
        // Every row: the foreign key's own checks (a purge of the record pointed to) look
        // binned records up too.
        statements.push(format!(
            "CREATE INDEX \"{table}_{column}_idx\" ON {table} (\"{column}\")"
        ));
    } else if new.indexed && !new.encrypted {
        // Over live records only, like the unique index: lists and counts filter on live
        // records, and a count can then answer from the index alone.
        statements.push(format!(
            "CREATE INDEX \"{table}_{column}_idx\" ON {table} (\"{column}\") WHERE deleted_at IS NULL"
        ));
    }
    let searchable = new
        .searchable
        .unwrap_or_else(|| searchable_by_default(ty, new.encrypted));
    if searchable {
        // Searched by `q`: serve it from a trigram index.
        statements.push(trgm_index(&table, &column));
    }
    for sql in statements {
        sqlx::query(&sql).execute(tx.conn()).await?;
    }
    if let (Some(default), false) = (&new.default, new.encrypted) {
        // Existing records get the default too; the value is bound, never spliced.
        let spec = values::Spec {
            ty,
            options: &new.options,
            target,
        };
        let value =
            values::parse(&spec, "default", default).map_err(|e| Error::invalid(vec![e]))?;
        let mut q = sqlx::QueryBuilder::new(format!("UPDATE {table} SET \"{column}\" = "));
        value.push_bind(&mut q);
        q.build().persistent(false).execute(tx.conn()).await?;
    }

    let position: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(position), 0) + 1 FROM field_defs WHERE object = $1",
    )
    .bind(object.as_str())
    .fetch_one(tx.conn())
    .await?;
    sqlx::query(
        "INSERT INTO field_defs (object, key, label, labels, type, required, is_unique, indexed, default_value, \
         options, option_labels, target, sensitive, encrypted, position, portal_editable, on_delete, rollup, searchable) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(object.as_str())
    .bind(key.as_str())
    .bind(new.label.trim())
    .bind(sqlx::types::Json(&new.labels))
    .bind(ty.as_str())
    .bind(new.required)
    .bind(new.unique)
    .bind(new.indexed || new.unique || ty == FieldType::Relation)
    .bind(new.default.as_ref().filter(|_| !new.encrypted))
    .bind(sqlx::types::Json(&new.options))
    .bind(new.option_labels.clone().unwrap_or_else(|| Value::Object(Default::default())))
    .bind(target.as_ref().map(super::meta::ObjectKey::as_str))
    .bind(new.sensitive || new.encrypted)
    .bind(new.encrypted)
    .bind(position)
    .bind(new.portal_editable)
    .bind(on_delete.map(OnDelete::as_str))
    .bind(&rollup)
    .bind(searchable)
    .execute(tx.conn())
    .await?;
    bump_metadata_version(tx).await?;
    if ty == FieldType::Rollup {
        crate::rollups::rebuild(tx, object, key.as_str()).await?;
    }
    get(tx, object, key.as_str()).await
}

/// Deletes a field and drops its column with all its data; 409 `field.in_use` while a
/// roll-up aggregates, filters or relates through it.
pub(crate) async fn delete(tx: &mut TenantTx, object: ObjectKey, key: &str) -> Result<()> {
    let def = get(tx, object, key).await?;
    let path = if object.is_custom() {
        key.to_owned()
    } else {
        format!("custom.{key}")
    };
    let users: Vec<String> = sqlx::query_scalar(
        "SELECT object || '.' || key FROM field_defs f, LATERAL (SELECT to_jsonb(f) -> 'rollup' AS r) x \
         WHERE type = 'rollup' AND x.r ->> 'child' = $1 \
         AND (x.r ->> 'via' = $2 OR x.r ->> 'field' = $2 OR x.r -> 'filter' ? $2) ORDER BY 1",
    )
    .bind(object.as_str())
    .bind(&path)
    .fetch_all(tx.conn())
    .await?;
    if !users.is_empty() {
        return Err(Error::conflict(
            "field.in_use",
            format!(
                "roll-ups use '{key}': {}; delete them first",
                users.join(", ")
            ),
        ));
    }
    let table = object.table();
    let mut sql = format!("ALTER TABLE {table} DROP COLUMN \"{}\"", def.key.column());
    if def.encrypted {
        sql.push_str(&format!(", DROP COLUMN \"{}\"", def.key.index_column()));
    }
    sqlx::query(&sql).execute(tx.conn()).await?;
    sqlx::query("DELETE FROM field_defs WHERE object = $1 AND key = $2")
        .bind(object.as_str())
        .bind(key)
        .execute(tx.conn())
        .await?;
    bump_metadata_version(tx).await
}

/// The tenant's metadata version (what per-tenant caches key on).
pub async fn metadata_version(tx: &mut TenantTx) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT metadata_version FROM settings")
        .fetch_one(tx.conn())
        .await?)
}

/// Sets the metadata version above both its own value and `floor`: after a restore brought
/// back an older version, no schema cached for a version in between may be taken for current.
pub async fn bump_metadata_version_past(tx: &mut TenantTx, floor: i64) -> Result<()> {
    sqlx::query("UPDATE settings SET metadata_version = GREATEST(metadata_version, $1) + 1")
        .bind(floor)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Marks the tenant's metadata as changed (per-tenant caches key on it).
pub async fn bump_metadata_version(tx: &mut TenantTx) -> Result<()> {
    sqlx::query("UPDATE settings SET metadata_version = metadata_version + 1")
        .execute(tx.conn())
        .await?;
    Ok(())
}
