//! Custom fields: a metadata row in `field_defs` plus a real typed column `cf_<key>` on the
//! object's table, created, changed and dropped in the same transaction. Column and index
//! names come only from an [`ObjectKey`] and a [`FieldKey`].

use super::meta::{FieldKey, FieldType, ObjectKey};
use super::values;
use chrono::{DateTime, Utc};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What deleting a record does to the records whose relation field points to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// 409 while live records point to it.
    Restrict,
    /// The pointing records' field is emptied.
    SetNull,
    /// The pointing records go to the recycle bin with it (purged with it when purged).
    Cascade,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Restrict => "restrict",
            OnDelete::SetNull => "set_null",
            OnDelete::Cascade => "cascade",
        }
    }

    pub fn parse(raw: &str) -> Option<OnDelete> {
        [OnDelete::Restrict, OnDelete::SetNull, OnDelete::Cascade]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

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
    to_jsonb(field_defs) -> 'rollup' AS rollup, sensitive, encrypted, portal_editable, position, created_at, updated_at";

fn from_row(r: FieldRow) -> Result<FieldDef> {
    let corrupt = |what: &str| Error::internal(format!("field_defs row has a bad {what}"));
    Ok(FieldDef {
        object: ObjectKey::named(&r.object).ok_or_else(|| corrupt("object"))?,
        key: FieldKey::parse("key", &r.key).map_err(|_| corrupt("key"))?,
        label: r.label,
        labels: r.labels.0,
        ty: FieldType::parse_custom(&r.ty).ok_or_else(|| corrupt("type"))?,
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
    pub sensitive: bool,
    pub encrypted: bool,
    /// Ticket fields only: customers may fill it in on the portal.
    pub portal_editable: bool,
}

/// Only ticket fields can be opened to the customer portal.
fn check_portal_editable(v: &mut Validator, object: ObjectKey, wanted: Option<bool>) {
    if wanted == Some(true) && object != ObjectKey::Tickets {
        v.push(FieldError::new(
            "portal_editable",
            "not_allowed",
            "only ticket fields can be filled in on the customer portal",
        ));
    }
}

/// Longest label of a field, in characters.
pub const LABEL_MAX_CHARS: usize = 100;
/// Longest option of a select field, in characters.
pub const OPTION_MAX_CHARS: usize = 100;

fn check_label(v: &mut Validator, field: &str, label: &str) {
    if label.trim().is_empty() || label.chars().count() > LABEL_MAX_CHARS {
        v.push(FieldError::new(
            field,
            "invalid",
            format!("must be 1-{LABEL_MAX_CHARS} characters"),
        ));
    }
}

fn check_options(v: &mut Validator, ty: FieldType, options: &[String]) {
    let needs = matches!(ty, FieldType::Select | FieldType::MultiSelect);
    if needs && options.is_empty() {
        v.push(FieldError::new(
            "options",
            "required",
            "select and multi_select fields need at least one option, e.g. [\"gold\", \"silver\"]",
        ));
    }
    if !needs && !options.is_empty() {
        v.push(FieldError::new(
            "options",
            "not_allowed",
            "only select and multi_select fields have options",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, o) in options.iter().enumerate() {
        if o.trim().is_empty() || o.chars().count() > OPTION_MAX_CHARS || o.trim() != o {
            v.push(FieldError::new(
                format!("options[{i}]"),
                "invalid",
                format!("options are 1-{OPTION_MAX_CHARS} characters without surrounding spaces"),
            ));
        } else if !seen.insert(o.as_str()) {
            v.push(FieldError::new(
                format!("options[{i}]"),
                "duplicate",
                format!("'{o}' is listed twice"),
            ));
        }
    }
}

fn check_option_labels(v: &mut Validator, labels: &Value, options: &[String]) {
    let Some(map) = labels.as_object() else {
        v.push(FieldError::new(
            "option_labels",
            "invalid",
            "must be an object: {option: {locale: label}}",
        ));
        return;
    };
    for (option, per_locale) in map {
        let ok = options.contains(option)
            && per_locale
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
        if !ok {
            v.push(FieldError::new(
                format!("option_labels.{option}"),
                "invalid",
                "keys must be options, values objects of locale to label, e.g. {\"gold\": {\"zh-CN\": \"金牌\"}}",
            ));
        }
    }
}

/// A default must be a valid value of the field; encrypted fields have none.
fn check_default(
    v: &mut Validator,
    ty: FieldType,
    options: &[String],
    target: Option<ObjectKey>,
    encrypted: bool,
    default: Option<&Value>,
) {
    let Some(default) = default else { return };
    if encrypted {
        v.push(FieldError::new(
            "default",
            "not_allowed",
            "encrypted fields have no default",
        ));
    } else {
        let spec = values::Spec {
            ty,
            options,
            target,
        };
        v.check(values::parse(&spec, "default", default).map(|_| ()));
    }
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
    } else if (new.indexed || ty == FieldType::Relation) && !new.encrypted {
        statements.push(format!(
            "CREATE INDEX \"{table}_{column}_idx\" ON {table} (\"{column}\")"
        ));
    }
    if ty == FieldType::Text && !new.encrypted {
        // Text custom fields are searched by `q`: serve it from a trigram index.
        statements.push(format!(
            "CREATE INDEX \"{table}_{column}_trgm\" ON {table} USING gin (\"{column}\" gin_trgm_ops)"
        ));
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
         options, option_labels, target, sensitive, encrypted, position, portal_editable, on_delete, rollup) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
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
    .execute(tx.conn())
    .await?;
    bump_metadata_version(tx).await?;
    if ty == FieldType::Rollup {
        crate::rollups::rebuild(tx, object, key.as_str()).await?;
    }
    get(tx, object, key.as_str()).await
}

/// What may change on a custom field; key, type, target and encryption are fixed.
#[derive(Debug, Default, Clone)]
pub struct FieldPatch {
    pub label: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub indexed: Option<bool>,
    /// `Some(None)` removes the default.
    pub default: Option<Option<Value>>,
    pub options: Option<Vec<String>>,
    pub option_labels: Option<Value>,
    pub sensitive: Option<bool>,
    pub portal_editable: Option<bool>,
    pub position: Option<i32>,
}

/// Changes a field's metadata (and its indexes when `unique` / `indexed` change).
pub(crate) async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    object: ObjectKey,
    key: &str,
    patch: FieldPatch,
) -> Result<FieldDef> {
    caller.require(Permission::FieldsManage)?;
    let current = get(tx, object, key).await?;
    if current.sensitive && patch.sensitive == Some(false) && !caller.unmask() {
        // Clearing the flag would unmask the values for everyone, the caller included.
        return Err(Error::forbidden(
            "field.sensitive",
            format!(
                "making '{key}' no longer sensitive shows its values unmasked to everyone; that needs the permission sensitive:read, which you lack"
            ),
        ));
    }
    let mut v = Validator::new();
    if let Some(label) = &patch.label {
        check_label(&mut v, "label", label);
    }
    let options = patch
        .options
        .clone()
        .unwrap_or_else(|| current.options.clone());
    if patch.options.is_some() {
        check_options(&mut v, current.ty, &options);
    }
    if let Some(labels) = &patch.option_labels {
        check_option_labels(&mut v, labels, &options);
    }
    // A changed option list must still contain the default (the new one, or the kept one).
    let default_after = match &patch.default {
        Some(d) => d.as_ref(),
        None if patch.options.is_some() => current.default.as_ref(),
        None => None,
    };
    check_default(
        &mut v,
        current.ty,
        &options,
        current.target,
        current.encrypted,
        default_after,
    );
    if current.encrypted && patch.sensitive == Some(false) {
        v.push(FieldError::new(
            "sensitive",
            "not_allowed",
            "encrypted fields are always sensitive",
        ));
    }
    check_portal_editable(&mut v, object, patch.portal_editable);
    v.finish()?;

    let table = object.table();
    let column = current.key.column();
    let index_target = if current.encrypted {
        current.key.index_column()
    } else {
        column.clone()
    };
    let unique = patch.unique.unwrap_or(current.unique);
    if unique != current.unique {
        if unique {
            sqlx::query(&format!(
                "CREATE UNIQUE INDEX \"{table}_{column}_unique\" ON {table} (\"{index_target}\") WHERE deleted_at IS NULL"
            ))
            .execute(tx.conn())
            .await
            .map_err(|e| match crm_core::error::unique_violation(&e) {
                Some(_) => Error::conflict(
                    "field.duplicate_values",
                    format!("records already share values of '{key}'; make them distinct before making it unique"),
                ),
                None => e.into(),
            })?;
        } else {
            sqlx::query(&format!("DROP INDEX IF EXISTS \"{table}_{column}_unique\""))
                .execute(tx.conn())
                .await?;
        }
    }
    let indexed = patch.indexed.unwrap_or(current.indexed) || unique;
    let had_plain_index = current.indexed && !current.unique && !current.encrypted;
    let wants_plain_index = indexed && !unique && !current.encrypted;
    if wants_plain_index && !had_plain_index {
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_{column}_idx\" ON {table} (\"{column}\")"
        ))
        .execute(tx.conn())
        .await?;
    } else if !wants_plain_index && had_plain_index {
        sqlx::query(&format!("DROP INDEX IF EXISTS \"{table}_{column}_idx\""))
            .execute(tx.conn())
            .await?;
    }
    let default = match patch.default {
        Some(d) => d,
        None => current.default.clone(),
    };
    sqlx::query(
        "UPDATE field_defs SET label = $3, labels = $4, required = $5, is_unique = $6, indexed = $7, \
         default_value = $8, options = $9, option_labels = $10, sensitive = $11, position = $12, portal_editable = $13, updated_at = now() \
         WHERE object = $1 AND key = $2",
    )
    .bind(object.as_str())
    .bind(key)
    .bind(patch.label.as_deref().map(str::trim).unwrap_or(&current.label))
    .bind(sqlx::types::Json(patch.labels.as_ref().unwrap_or(&current.labels)))
    .bind(patch.required.unwrap_or(current.required))
    .bind(unique)
    .bind(indexed)
    .bind(default)
    .bind(sqlx::types::Json(&options))
    .bind(patch.option_labels.unwrap_or(current.option_labels))
    .bind(patch.sensitive.unwrap_or(current.sensitive) || current.encrypted)
    .bind(patch.position.unwrap_or(current.position))
    .bind(patch.portal_editable.unwrap_or(current.portal_editable))
    .execute(tx.conn())
    .await?;
    bump_metadata_version(tx).await?;
    get(tx, object, key).await
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
        "SELECT object || '.' || key FROM field_defs WHERE type = 'rollup' AND rollup ->> 'child' = $1 \
         AND (rollup ->> 'via' = $2 OR rollup ->> 'field' = $2 OR rollup -> 'filter' ? $2) ORDER BY 1",
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

/// Marks the tenant's metadata as changed (per-tenant caches key on it).
pub async fn bump_metadata_version(tx: &mut TenantTx) -> Result<()> {
    sqlx::query("UPDATE settings SET metadata_version = metadata_version + 1")
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The relation fields of other objects that point to `object`, as `object.key`.
pub(crate) async fn referencing(tx: &mut TenantTx, object: ObjectKey) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT object || '.' || key FROM field_defs WHERE object <> $1 \
         AND (target = $1 OR (type = 'rollup' AND rollup ->> 'child' = $1)) ORDER BY 1",
    )
    .bind(object.as_str())
    .fetch_all(tx.conn())
    .await?)
}

/// Forgets the field definitions of a dropped object.
pub(crate) async fn forget_object(tx: &mut TenantTx, object: ObjectKey) -> Result<()> {
    sqlx::query("DELETE FROM field_defs WHERE object = $1")
        .bind(object.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The relation fields (of any object) that point to `object`.
pub(crate) async fn relations_to(tx: &mut TenantTx, object: ObjectKey) -> Result<Vec<FieldDef>> {
    let rows: Vec<FieldRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM field_defs WHERE target = $1 AND type = 'relation' ORDER BY object, key"
    ))
    .bind(object.as_str())
    .fetch_all(tx.conn())
    .await?;
    rows.into_iter().map(from_row).collect()
}
