//! Record types and layouts: an object can have kinds of records (a coaching business's
//! "adult" and "child" students), each with the fields its form shows, the fields it requires
//! and the values it starts with; a role can be limited to some types of an object. The API
//! enforces both — required-ness per type on every create and update, and the limit on which
//! types a caller may create or edit (403 `record_type.forbidden`) — so a form is never the
//! only guard. Reads are not limited by type (scopes decide what a caller sees).

use crate::engine::{Access, Input};
use crate::meta::{FieldType, ObjectKey, RecordAction};
use crate::schema::ObjectSchema;
use crate::values::{self, SqlValue};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use crm_core::objects::{self as catalogue, RecordType, TypeEntry};
use serde_json::{Map, Value};
use sqlx::Row;
use std::collections::BTreeMap;
use uuid::Uuid;

/// At most this many record types per object.
pub const MAX_TYPES: usize = 50;

/// A record type as requested (also the full replacement on update).
#[derive(Debug, Clone, Default)]
pub struct NewRecordType {
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub description: Option<String>,
    pub fields: Vec<String>,
    pub required: Vec<String>,
    pub defaults: Map<String, Value>,
    pub position: i32,
}

/// What the web app lays a form out by: a record type (or the object's default layout, with
/// `record_type: None`), its fields in order, what it requires and starts with.
#[derive(Debug, Clone)]
pub struct Layout {
    pub record_type: Option<RecordType>,
    pub fields: Vec<String>,
    pub required: Vec<String>,
    pub defaults: Map<String, Value>,
}

fn check_key(v: &mut Validator, key: &str) {
    let ok = (1..=41).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        v.push(FieldError::new(
            "key",
            "invalid_key",
            format!("'{key}' is not a record type key: use 1-41 characters a-z, 0-9 and '_', starting with a letter"),
        ));
    }
}

fn validate(schema: &ObjectSchema, new: &NewRecordType) -> Result<()> {
    let mut v = Validator::new();
    check_key(&mut v, &new.key);
    if new.name.trim().is_empty() || new.name.chars().count() > 100 {
        v.push(FieldError::new(
            "name",
            "invalid",
            "must be 1-100 characters",
        ));
    }
    let known = |path: &str| schema.resolve(path).filter(|f| f.key != "record_type");
    for (i, path) in new.fields.iter().enumerate() {
        if known(path).is_none() {
            v.push(FieldError::new(
                format!("fields[{i}]"),
                "unknown_field",
                format!("{} has no field '{path}'", schema.object),
            ));
        }
    }
    for (i, path) in new.required.iter().enumerate() {
        match known(path) {
            Some(f) if f.ty == FieldType::Rollup => v.push(FieldError::new(
                format!("required[{i}]"),
                "not_allowed",
                format!("'{path}' is a roll-up the server keeps; it cannot be required"),
            )),
            Some(_) => {}
            None => v.push(FieldError::new(
                format!("required[{i}]"),
                "unknown_field",
                format!("{} has no field '{path}'", schema.object),
            )),
        }
    }
    for (path, value) in &new.defaults {
        match known(path) {
            Some(f) if f.encrypted || f.ty == FieldType::Rollup => v.push(FieldError::new(
                format!("defaults.{path}"),
                "not_allowed",
                "encrypted and roll-up fields have no default",
            )),
            Some(f) => {
                v.check(values::parse(&f.spec(), &format!("defaults.{path}"), value).map(|_| ()));
            }
            None => v.push(FieldError::new(
                format!("defaults.{path}"),
                "unknown_field",
                format!("{} has no field '{path}'", schema.object),
            )),
        }
    }
    v.finish()
}

fn entry(new: NewRecordType) -> TypeEntry {
    TypeEntry {
        name: new.name.trim().to_owned(),
        labels: new.labels,
        description: new.description,
        fields: new.fields,
        required: new.required,
        defaults: new.defaults,
        position: new.position,
    }
}

/// After a record type changed: every cached schema of the tenant is stale, and the change is
/// audited.
async fn changed(
    tx: &mut TenantTx,
    actor: &Actor,
    action: &str,
    schema: &ObjectSchema,
    key: &str,
) -> Result<()> {
    crate::fields::bump_metadata_version(tx).await?;
    audit::record(
        tx,
        actor,
        action,
        Some(("record_type", format!("{}.{key}", schema.object))),
        serde_json::json!({}),
    )
    .await
}

/// The record types of an object (its read permission).
pub fn list(caller: &Caller, schema: &ObjectSchema) -> Result<Vec<RecordType>> {
    caller.require(schema.object.permission(RecordAction::Read))?;
    Ok(schema.record_types.clone())
}

/// Adds a record type to an object (`objects:manage`, audited).
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    schema: &ObjectSchema,
    new: NewRecordType,
) -> Result<RecordType> {
    caller.require(Permission::ObjectsManage)?;
    validate(schema, &new)?;
    if schema.record_types.len() >= MAX_TYPES {
        return Err(Error::invalid_field(
            "key",
            "record_type.limit_reached",
            format!(
                "{} already has the maximum of {MAX_TYPES} record types",
                schema.object
            ),
        ));
    }
    let key = new.key.clone();
    let created =
        catalogue::insert_record_type(tx, schema.object.as_str(), &key, &entry(new)).await?;
    changed(tx, actor, "record_type.created", schema, &key).await?;
    Ok(created)
}

/// Replaces a record type's name, labels, fields, required fields and defaults.
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    schema: &ObjectSchema,
    new: NewRecordType,
) -> Result<RecordType> {
    caller.require(Permission::ObjectsManage)?;
    validate(schema, &new)?;
    let key = new.key.clone();
    let updated =
        catalogue::update_record_type(tx, schema.object.as_str(), &key, &entry(new)).await?;
    changed(tx, actor, "record_type.updated", schema, &key).await?;
    Ok(updated)
}

/// Deletes a record type no record has (409 `record_type.in_use` with the count otherwise).
pub async fn delete(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    schema: &ObjectSchema,
    key: &str,
) -> Result<()> {
    caller.require(Permission::ObjectsManage)?;
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\" WHERE record_type = $1",
        schema.object.table()
    ))
    .bind(key)
    .fetch_one(tx.conn())
    .await?;
    if used > 0 {
        return Err(Error::conflict(
            "record_type.in_use",
            format!("{used} record(s) of {} are of type '{key}' (the recycle bin counts); change their type first", schema.object),
        ));
    }
    catalogue::remove_record_type(tx, schema.object.as_str(), key).await?;
    changed(tx, actor, "record_type.deleted", schema, key).await
}

/// The layouts a caller's forms use: the object's default layout (when the caller is not
/// limited to some types) and one per record type the caller may create.
pub fn layouts(caller: &Caller, schema: &ObjectSchema) -> Result<Vec<Layout>> {
    caller.require(schema.object.permission(RecordAction::Read))?;
    let allowed = caller.grants.record_types_of(schema.object.as_str());
    let all_fields: Vec<String> = schema
        .all()
        .filter(|f| f.key != "record_type")
        .map(|f| f.path())
        .collect();
    let required: Vec<String> = schema
        .all()
        .filter(|f| f.required)
        .map(|f| f.path())
        .collect();
    let mut out = Vec::new();
    if allowed.is_none() {
        out.push(Layout {
            record_type: None,
            fields: all_fields.clone(),
            required: required.clone(),
            defaults: Map::new(),
        });
    }
    for t in &schema.record_types {
        if allowed.is_some_and(|a| !a.contains(&t.key)) {
            continue;
        }
        let mut req = required.clone();
        req.extend(t.required.iter().filter(|r| !required.contains(r)).cloned());
        out.push(Layout {
            fields: if t.fields.is_empty() {
                all_fields.clone()
            } else {
                t.fields.clone()
            },
            required: req,
            defaults: t.defaults.clone(),
            record_type: Some(t.clone()),
        });
    }
    Ok(out)
}

fn forbidden(object: ObjectKey, key: Option<&str>, allowed: &[String]) -> Error {
    Error::forbidden(
        "record_type.forbidden",
        format!(
            "your role may only work on {object} of the record types {}; {}",
            if allowed.is_empty() {
                "(none)".to_owned()
            } else {
                allowed.join(", ")
            },
            match key {
                Some(k) => format!("'{k}' is not one of them"),
                None => "this record has no record type".to_owned(),
            }
        ),
    )
}

fn given_type(input: &Input<'_>) -> Option<Option<String>> {
    match input.get("record_type") {
        Some(SqlValue::Text(t)) => Some(Some(t.clone())),
        Some(_) => Some(None),
        None => None,
    }
}

fn is_set(input: &Input<'_>, path: &str) -> Option<bool> {
    input
        .values
        .iter()
        .find(|(f, _)| f.path() == path)
        .map(|(_, v)| *v != SqlValue::Null && *v != SqlValue::TextArray(Vec::new()))
}

fn missing(path: &str, key: &str) -> FieldError {
    FieldError::new(
        path,
        "required",
        format!("records of type '{key}' must have it"),
    )
}

/// On create: picks the record type (the only one a limited caller may use, if none is
/// given), refuses one the caller may not use, applies the type's defaults to fields not
/// given and checks the fields it requires.
pub(crate) fn prepare_create<'s>(
    schema: &'s ObjectSchema,
    access: &Access<'_>,
    input: &mut Input<'s>,
) -> Result<()> {
    if schema.record_types.is_empty() {
        return Ok(());
    }
    let allowed = access.record_types_allowed(schema.object);
    let chosen = match (given_type(input).flatten(), allowed) {
        (Some(t), Some(a)) if !a.contains(&t) => return Err(forbidden(schema.object, Some(&t), a)),
        (Some(t), _) => Some(t),
        (None, Some([only])) => {
            input.set(schema, "record_type", SqlValue::Text(only.clone()));
            Some(only.clone())
        }
        (None, Some(a)) => {
            return Err(Error::invalid_field(
                "record_type",
                "required",
                format!("choose the record type: one of {}", a.join(", ")),
            ))
        }
        (None, None) => None,
    };
    let Some(t) = chosen.and_then(|k| schema.record_types.iter().find(|t| t.key == k)) else {
        return Ok(());
    };
    let mut v = Validator::new();
    for (path, value) in &t.defaults {
        if is_set(input, path).is_some() {
            continue;
        }
        if let Some(f) = schema.resolve(path) {
            if let Some(parsed) = v.check(values::parse(&f.spec(), path, value)) {
                input.values.push((f, parsed));
            }
        }
    }
    for path in &t.required {
        if is_set(input, path) != Some(true) {
            v.push(missing(path, &t.key));
        }
    }
    v.finish()
}

/// On update: a limited caller edits only records of its types and cannot move a record to
/// another; the (new) type's required fields must stay filled.
pub(crate) async fn check_update(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    input: &Input<'_>,
) -> Result<()> {
    if schema.record_types.is_empty() {
        return Ok(());
    }
    let paths: Vec<&String> = schema
        .record_types
        .iter()
        .flat_map(|t| t.required.iter())
        .collect();
    let mut select = vec!["record_type".to_owned()];
    for (i, path) in paths.iter().enumerate() {
        let column = schema
            .resolve(path)
            .map(|f| f.column)
            .ok_or_else(|| Error::internal(format!("record type requires unknown field {path}")))?;
        select.push(format!("(\"{column}\" IS NOT NULL) AS r{i}"));
    }
    let row = sqlx::query(&format!(
        "SELECT {} FROM \"{}\" WHERE id = $1",
        select.join(", "),
        schema.object.table()
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        return Ok(()); // the engine answers 404
    };
    let current: Option<String> = row.try_get("record_type")?;
    let next = given_type(input).unwrap_or_else(|| current.clone());
    if let Some(allowed) = access.record_types_allowed(schema.object) {
        for t in [&current, &next] {
            if !t.as_ref().is_some_and(|t| allowed.contains(t)) {
                return Err(forbidden(schema.object, t.as_deref(), allowed));
            }
        }
    }
    let Some(t) = next.and_then(|k| schema.record_types.iter().find(|t| t.key == k)) else {
        return Ok(());
    };
    let mut v = Validator::new();
    for path in &t.required {
        let stored = paths
            .iter()
            .position(|p| *p == path)
            .map(|i| row.try_get::<bool, _>(format!("r{i}").as_str()))
            .transpose()?
            .unwrap_or(false);
        if !is_set(input, path).unwrap_or(stored) {
            v.push(missing(path, &t.key));
        }
    }
    v.finish()
}
