//! The record engine: one implementation of create, read, update, soft delete, restore and
//! purge for every object, driven by its [`ObjectSchema`]. Each write lands in the caller's
//! tenant transaction together with its history row and outbox event.

mod input;
mod many;

pub use super::access::Access;
use super::history;
use super::meta::{FieldType, ObjectKey, RecordAction, SYSTEM_FIELDS};
use super::schema::{Field, ObjectSchema};
use super::scope::RecordScope;
use super::values::{self, SqlValue};
use crm_core::db::TenantTx;
use crm_core::error::{foreign_key_violation, unique_violation, Error, Result};
pub use input::{parse_input, Input};
pub use many::insert_many;
use serde_json::{json, Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// Object-specific read-only columns beyond [`SYSTEM_FIELDS`], maintained by the server.
pub fn extra_system(object: ObjectKey) -> &'static [(&'static str, FieldType)] {
    match object {
        ObjectKey::Customers => &[
            ("merged_into", FieldType::Relation),
            ("last_activity_at", FieldType::Datetime),
            ("next_task_due", FieldType::Datetime),
        ],
        ObjectKey::Tickets => &[
            ("number", FieldType::Text),
            ("sla_policy_id", FieldType::Relation),
            ("first_response_due_at", FieldType::Datetime),
            ("resolution_due_at", FieldType::Datetime),
            ("first_responded_at", FieldType::Datetime),
            ("resolved_at", FieldType::Datetime),
            ("closed_at", FieldType::Datetime),
            ("sla_paused_at", FieldType::Datetime),
            ("status_changed_at", FieldType::Datetime),
        ],
        _ => &[],
    }
}

/// The SELECT list for an object: system columns, built-ins, custom columns. Public so that
/// `crm bench api` reads exactly the columns the engine reads.
pub fn select_list(schema: &ObjectSchema) -> String {
    let mut cols: Vec<String> = SYSTEM_FIELDS.iter().map(|c| format!("\"{c}\"")).collect();
    cols.extend(
        extra_system(schema.object)
            .iter()
            .map(|(c, _)| format!("\"{c}\"")),
    );
    for f in schema.all() {
        cols.push(if f.encrypted {
            format!("\"{}\"", f.column)
        } else {
            values::select_expr(&f.column, f.ty)
        });
    }
    cols.join(", ")
}

fn aad(schema: &ObjectSchema, field: &Field<'_>) -> String {
    format!("{}.{}", schema.object.table(), field.column)
}

/// Turns a row into the record's JSON, decrypting and masking as `access` allows.
pub(crate) fn decode_record(
    schema: &ObjectSchema,
    access: &Access<'_>,
    row: &PgRow,
) -> Result<Value> {
    let mut out = Map::new();
    out.insert("id".into(), json!(row.try_get::<Uuid, _>("id")?));
    let mut custom = Map::new();
    for f in schema.all() {
        let mut value = if f.encrypted {
            match row.try_get::<Option<Vec<u8>>, _>(f.column.as_str())? {
                None => Value::Null,
                Some(bytes) => {
                    let key = access
                        .data_key
                        .ok_or_else(|| Error::internal("data key not loaded"))?;
                    let plain = key
                        .decrypt(&bytes, aad(schema, &f).as_bytes())
                        .map_err(|e| Error::internal(format!("decrypting {}: {e}", f.path())))?;
                    Value::String(String::from_utf8_lossy(&plain).into_owned())
                }
            }
        } else {
            values::decode(row, &f.column, f.ty)?
        };
        if f.sensitive && !access.unmask {
            value = values::mask(f.ty, &value);
        }
        if f.nested {
            custom.insert(f.key.to_owned(), value);
        } else {
            out.insert(f.key.to_owned(), value);
        }
    }
    if !schema.object.is_custom() {
        out.insert("custom".into(), Value::Object(custom));
    }
    for c in ["created_at", "updated_at"] {
        out.insert(
            c.into(),
            json!(row
                .try_get::<chrono::DateTime<chrono::Utc>, _>(c)?
                .to_rfc3339()),
        );
    }
    out.insert(
        "created_by".into(),
        json!(row.try_get::<Option<Uuid>, _>("created_by")?),
    );
    out.insert("version".into(), json!(row.try_get::<i64, _>("version")?));
    out.insert(
        "deleted_at".into(),
        json!(row
            .try_get::<Option<chrono::DateTime<chrono::Utc>>, _>("deleted_at")?
            .map(|d| d.to_rfc3339())),
    );
    for (c, ty) in extra_system(schema.object) {
        out.insert((*c).into(), values::decode(row, c, *ty)?);
    }
    Ok(Value::Object(out))
}

fn not_found(object: ObjectKey, id: Uuid) -> Error {
    Error::not_found(
        "record.not_found",
        format!("{} {id} not found", object.singular()),
    )
}

/// Which rows a lookup may see.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Live,
    Deleted,
    Any,
}

impl Visibility {
    /// Appends the `deleted_at` condition to a query that has its WHERE clause.
    fn push_predicate(self, q: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Visibility::Live => q.push(" AND deleted_at IS NULL"),
            Visibility::Deleted => q.push(" AND deleted_at IS NOT NULL"),
            Visibility::Any => q,
        };
    }
}

/// One record visible to `access` (which must allow reading the object); `lock` takes a row
/// lock for an update.
pub async fn fetch(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    visibility: Visibility,
    lock: bool,
) -> Result<Value> {
    access.require(schema.object, RecordAction::Read)?;
    read(tx, schema, access, id, visibility, lock).await
}

/// [`fetch`] without the permission check: the services re-read what they write.
pub(crate) async fn read(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    visibility: Visibility,
    lock: bool,
) -> Result<Value> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {} FROM {} WHERE id = ",
        select_list(schema),
        schema.object.table()
    ));
    q.push_bind(id);
    visibility.push_predicate(&mut q);
    access
        .scope
        .push_predicate(&mut q, schema.object.owner_column());
    if lock {
        q.push(" FOR UPDATE");
    }
    let row = q
        .build()
        .persistent(false)
        .fetch_optional(tx.conn())
        .await?;
    let row = row.ok_or_else(|| not_found(schema.object, id))?;
    decode_record(schema, access, &row)
}

/// Several records by id in one statement (as [`fetch`] without a lock), keyed by id; ids not
/// found or outside the scope are simply absent.
pub async fn fetch_many(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    ids: &[Uuid],
    visibility: Visibility,
) -> Result<std::collections::HashMap<Uuid, Value>> {
    access.require(schema.object, RecordAction::Read)?;
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(found);
    }
    let mut q = QueryBuilder::new(format!(
        "SELECT {} FROM {} WHERE id = ANY(",
        select_list(schema),
        schema.object.table()
    ));
    q.push_bind(ids);
    q.push(")");
    visibility.push_predicate(&mut q);
    access
        .scope
        .push_predicate(&mut q, schema.object.owner_column());
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        found.insert(id, decode_record(schema, access, row)?);
    }
    Ok(found)
}

/// 404 unless a record of `object` with `id` is visible in `scope` (no decoding: works
/// without the object's data key).
pub async fn ensure_visible(
    tx: &mut TenantTx,
    object: ObjectKey,
    scope: RecordScope,
    id: Uuid,
    visibility: Visibility,
) -> Result<()> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("SELECT 1 FROM {} WHERE id = ", object.table()));
    q.push_bind(id);
    visibility.push_predicate(&mut q);
    scope.push_predicate(&mut q, object.owner_column());
    let found = q
        .build()
        .persistent(false)
        .fetch_optional(tx.conn())
        .await?;
    found.map(|_| ()).ok_or_else(|| not_found(object, id))
}

/// Reads a record just written. Unscoped: the writer may have set an owner outside their
/// own scope, and still gets the result of their write.
async fn fetch_written(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<Value> {
    let unscoped = Access {
        scope: RecordScope::All,
        ..*access
    };
    read(tx, schema, &unscoped, id, Visibility::Live, false).await
}

/// The columns and values to write for an input: encrypts encrypted fields (plus their blind
/// index) and derives `name_grams` from `name`.
fn columns(
    schema: &ObjectSchema,
    access: &Access<'_>,
    input: &Input<'_>,
) -> Result<Vec<(String, SqlValue)>> {
    let mut out = Vec::with_capacity(input.values.len() + 1);
    for (f, value) in &input.values {
        if f.encrypted {
            let key = access
                .data_key
                .ok_or_else(|| Error::internal("data key not loaded"))?;
            match value {
                SqlValue::Text(plain) => {
                    let cipher = key
                        .encrypt(plain.as_bytes(), aad(schema, f).as_bytes())
                        .map_err(|e| Error::internal(format!("encrypting {}: {e}", f.path())))?;
                    out.push((f.column.clone(), SqlValue::Bytes(cipher)));
                    out.push((
                        format!("{}_bidx", f.column),
                        SqlValue::Text(key.blind_index(&f.column, plain)),
                    ));
                }
                _ => {
                    out.push((f.column.clone(), SqlValue::Null));
                    out.push((format!("{}_bidx", f.column), SqlValue::Null));
                }
            }
        } else {
            out.push((f.column.clone(), value.clone()));
        }
        if !f.custom && f.key == "name" {
            if let SqlValue::Text(name) = value {
                out.push((
                    "name_grams".into(),
                    SqlValue::TextArray(values::name_grams(name)),
                ));
            }
        }
    }
    Ok(out)
}

/// Maps constraint violations of a delete: any foreign key means "still referenced".
fn delete_error(schema: &ObjectSchema, err: sqlx::Error) -> Error {
    if foreign_key_violation(&err).is_some() {
        return Error::conflict(
            "record.in_use",
            format!(
                "other records still point to this {}; remove or repoint them first",
                schema.noun()
            ),
        );
    }
    err.into()
}

/// Maps constraint violations to errors naming the field.
fn constraint_error(schema: &ObjectSchema, err: sqlx::Error) -> Error {
    if let Some(c) = unique_violation(&err) {
        if let Some(f) = schema.by_constraint(c) {
            return Error::conflict(
                "record.duplicate_value",
                format!(
                    "another {} already has this {}; values of '{}' must be unique",
                    schema.noun(),
                    f.path(),
                    f.path()
                ),
            );
        }
    }
    if let Some(c) = foreign_key_violation(&err) {
        if let Some(f) = schema.by_constraint(c) {
            return Error::invalid_field(
                f.path(),
                "unknown_reference",
                format!("{} does not point to an existing record", f.path()),
            );
        }
        return Error::conflict(
            "record.in_use",
            format!(
                "other records still point to this {}; remove them first",
                schema.noun()
            ),
        );
    }
    err.into()
}

/// History/event JSON of the values an input sets (encrypted values never appear).
fn after_values(input: &Input<'_>) -> Map<String, Value> {
    input
        .values
        .iter()
        .map(|(f, v)| {
            (
                f.path(),
                if f.encrypted {
                    json!("[encrypted]")
                } else {
                    v.to_json()
                },
            )
        })
        .collect()
}

/// Inserts a record (after hooks have vetted it) and returns it as the caller sees it.
pub async fn insert(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    input: &Input<'_>,
) -> Result<Value> {
    let id = Uuid::now_v7();
    let mut cols = columns(schema, access, input)?;
    cols.push((
        "created_by".into(),
        access.user_id.map_or(SqlValue::Null, SqlValue::Uuid),
    ));
    let mut q = QueryBuilder::new(format!("INSERT INTO {} (id", schema.object.table()));
    for (c, _) in &cols {
        q.push(format!(", \"{c}\""));
    }
    q.push(") VALUES (").push_bind(id);
    for (_, v) in &cols {
        q.push(", ");
        v.push_bind(&mut q);
    }
    q.push(")");
    q.build()
        .persistent(false)
        .execute(tx.conn())
        .await
        .map_err(|e| constraint_error(schema, e))?;
    let after = after_values(input);
    let changes: Map<String, Value> = after
        .iter()
        .map(|(k, v)| (k.clone(), json!({ "after": v })))
        .collect();
    history::log(
        tx,
        schema.object,
        id,
        "created",
        access.actor,
        &Value::Object(changes),
        json!({ "fields": after }),
    )
    .await?;
    fetch_written(tx, schema, access, id).await
}

/// Applies an update to a record visible to `access`. `expected_version` (from If-Match)
/// must match, else 412. Only changed fields are written; no change, no new version.
pub async fn update(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    expected_version: Option<i64>,
    input: &Input<'_>,
) -> Result<Value> {
    let unmasked = Access {
        unmask: true,
        ..*access
    };
    let current = read(tx, schema, &unmasked, id, Visibility::Live, true).await?;
    let version = current["version"].as_i64().unwrap_or_default();
    if let Some(expected) = expected_version {
        if expected != version {
            return Err(Error::PreconditionFailed {
                code: "record.version_mismatch",
                message: format!(
                    "the {} changed since you read it (now version {version}, you sent {expected}); reload it and apply your change again",
                    schema.noun()
                ),
            });
        }
    }
    let current_of = |f: &Field<'_>| -> Value { f.value_in(&current).clone() };
    let changed: Vec<&(Field<'_>, SqlValue)> = input
        .values
        .iter()
        .filter(|(f, v)| {
            let now = current_of(f);
            let new = v.to_json();
            match (&now, &new) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() != b.as_f64(),
                _ => now != new,
            }
        })
        .collect();
    if changed.is_empty() {
        return read(tx, schema, access, id, Visibility::Live, false).await;
    }
    let subset = Input {
        values: changed
            .iter()
            .map(|(f, v)| (f.clone(), v.clone()))
            .collect(),
    };
    let cols = columns(schema, access, &subset)?;
    let mut q = QueryBuilder::new(format!(
        "UPDATE {} SET version = version + 1, updated_at = now()",
        schema.object.table()
    ));
    for (c, v) in &cols {
        q.push(format!(", \"{c}\" = "));
        v.push_bind(&mut q);
    }
    q.push(" WHERE id = ").push_bind(id);
    q.build()
        .persistent(false)
        .execute(tx.conn())
        .await
        .map_err(|e| constraint_error(schema, e))?;
    let mut changes = Map::new();
    let mut fields = Map::new();
    for (f, v) in &subset.values {
        let (before, after) = if f.encrypted {
            (json!("[encrypted]"), json!("[encrypted]"))
        } else {
            (current_of(f), v.to_json())
        };
        changes.insert(f.path(), json!({ "before": before, "after": after }));
        fields.insert(f.path(), after);
    }
    history::log(
        tx,
        schema.object,
        id,
        "updated",
        access.actor,
        &Value::Object(changes.clone()),
        json!({ "changes": changes, "fields": fields }),
    )
    .await?;
    fetch_written(tx, schema, access, id).await
}

/// Moves a record to the recycle bin.
pub async fn soft_delete(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<()> {
    set_deleted(tx, schema, access, id, true).await
}

/// Brings a record back from the recycle bin.
pub async fn restore(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<Value> {
    set_deleted(tx, schema, access, id, false).await?;
    read(tx, schema, access, id, Visibility::Live, false).await
}

async fn set_deleted(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    delete: bool,
) -> Result<()> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "UPDATE {} SET version = version + 1, updated_at = now(), deleted_at = {} WHERE id = ",
        schema.object.table(),
        if delete { "now()" } else { "NULL" }
    ));
    q.push_bind(id);
    q.push(if delete {
        " AND deleted_at IS NULL"
    } else {
        " AND deleted_at IS NOT NULL"
    });
    access
        .scope
        .push_predicate(&mut q, schema.object.owner_column());
    let done = q
        .build()
        .persistent(false)
        .execute(tx.conn())
        .await
        .map_err(|e| constraint_error(schema, e))?;
    if done.rows_affected() == 0 {
        return Err(not_found(schema.object, id));
    }
    let action = if delete { "deleted" } else { "restored" };
    history::log(
        tx,
        schema.object,
        id,
        action,
        access.actor,
        &json!({}),
        json!({}),
    )
    .await
}

/// Deletes a record for good (it must be visible; live or in the recycle bin). History rows
/// stay, with a final `purged` entry.
pub async fn purge(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<()> {
    let mut q =
        QueryBuilder::<Postgres>::new(format!("DELETE FROM {} WHERE id = ", schema.object.table()));
    q.push_bind(id);
    access
        .scope
        .push_predicate(&mut q, schema.object.owner_column());
    let done = q
        .build()
        .persistent(false)
        .execute(tx.conn())
        .await
        .map_err(|e| delete_error(schema, e))?;
    if done.rows_affected() == 0 {
        return Err(not_found(schema.object, id));
    }
    history::log(
        tx,
        schema.object,
        id,
        "purged",
        access.actor,
        &json!({}),
        json!({}),
    )
    .await
}

/// History of a visible record (live or deleted), sensitive values masked as for reads.
pub async fn history(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<crm_core::context::Page<history::HistoryEntry>> {
    access.require(schema.object, RecordAction::Read)?;
    read(tx, schema, access, id, Visibility::Any, false).await?;
    let mut page = history::list(tx, schema.object, id, cursor, limit).await?;
    if !access.unmask {
        for entry in &mut page.items {
            mask_changes(schema, &mut entry.changes);
        }
    }
    Ok(page)
}

/// Masks the sensitive fields of a history `changes` object (`{field: {before, after}}`).
pub fn mask_changes(schema: &ObjectSchema, changes: &mut Value) {
    let Value::Object(changes) = changes else {
        return;
    };
    for (path, change) in changes.iter_mut() {
        let Some(f) = schema.resolve(path).filter(|f| f.sensitive) else {
            continue;
        };
        if let Value::Object(sides) = change {
            for side in sides.values_mut() {
                *side = values::mask(f.ty, side);
            }
        }
    }
}

/// Whether a field type is stored in an array column.
pub(crate) fn is_array(ty: FieldType) -> bool {
    matches!(ty, FieldType::MultiSelect | FieldType::Tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectKey;

    fn schema(object: ObjectKey) -> ObjectSchema {
        ObjectSchema {
            object,
            def: None,
            custom: Vec::new(),
            feeds: Vec::new(),
            referrers: Vec::new(),
            record_types: Vec::new(),
            city_column: false,
        }
    }

    #[test]
    fn the_select_list_names_every_column_and_never_a_star() {
        for object in ObjectKey::ALL {
            let list = select_list(&schema(*object));
            assert!(!list.contains('*'), "{object}: {list}");
            for system in ["\"id\"", "\"version\"", "\"deleted_at\""] {
                assert!(list.contains(system), "{object} lacks {system}: {list}");
            }
        }
        let tickets = select_list(&schema(ObjectKey::Tickets));
        assert!(tickets.contains("\"number\""), "{tickets}");
    }

    #[test]
    fn input_refuses_unknown_and_system_fields_by_name() {
        let customers = schema(ObjectKey::Customers);
        let named = |body: Value, creating: bool| match parse_input(&customers, &body, creating) {
            Err(Error::Invalid { fields, .. }) => {
                fields.into_iter().map(|f| f.field).collect::<Vec<_>>()
            }
            Err(other) => vec![format!("unexpected {other}")],
            Ok(_) => Vec::new(),
        };
        assert!(named(json!({"name": "张伟", "level": "A"}), true).is_empty());
        assert_eq!(
            named(json!({"name": "x", "planet": "mars"}), true),
            ["planet"]
        );
        assert_eq!(named(json!({"name": "x", "id": "a"}), true), ["id"]);
        assert_eq!(named(json!({"name": "x", "level": "Z"}), true), ["level"]);
        assert_eq!(
            named(json!({"level": "A"}), true),
            ["name"],
            "name is required"
        );
        assert!(
            named(json!({"level": "A"}), false).is_empty(),
            "not on update"
        );
        assert!(parse_input(&customers, &json!(["not", "an", "object"]), true).is_err());
    }
}
