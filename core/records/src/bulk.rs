//! Many records at once, for imports: the same rules as [`service::create`] and
//! [`service::update`] for each record (validation, record types, references, customer
//! dedupe, default owner, tags, history, events), with each refusal reported for its record
//! and never stopping the others.
//!
//! Customers and custom objects that feed no roll-up are created in a few statements per
//! batch ([`engine::insert_many`]); any other object, and a batch the database refuses as a
//! whole (a unique value taken twice), goes one record at a time through the service, each
//! in a savepoint. Lookups by a matching key ([`match_ids`]) are one statement per batch.

use crate::engine::{self, Access, Input, Visibility};
use crate::hooks;
use crate::meta::{FieldType, ObjectKey, RecordAction};
use crate::record_types;
use crate::relations;
use crate::schema::ObjectSchema;
use crate::service::{self, CreateOptions};
use crate::tags;
use crate::values::SqlValue;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use std::collections::HashMap;
use uuid::Uuid;

/// What became of one record of a bulk write: its id, or why it was refused.
pub type Outcome = std::result::Result<Uuid, Error>;

/// Whether `schema`'s records can be created together: no hooks, no roll-ups to feed, no
/// follow-up columns or reminders to keep.
fn batchable(schema: &ObjectSchema) -> bool {
    matches!(schema.object, ObjectKey::Customers | ObjectKey::Custom(_))
        && schema.feeds.is_empty()
        && hooks::of(schema.object).is_none()
}

/// Runs `SAVEPOINT`, `RELEASE` or `ROLLBACK TO` for the one-at-a-time path.
async fn savepoint(tx: &mut TenantTx, sql: &str) -> Result<()> {
    sqlx::query(sql).execute(tx.conn()).await?;
    Ok(())
}

/// Creates one record per body. The outer error is the transaction failing; a refused record
/// is its own `Err` in the list, in the order of `bodies`.
pub async fn create_many(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    bodies: &[Value],
    options: CreateOptions,
) -> Result<Vec<Outcome>> {
    access.require(schema.object, RecordAction::Create)?;
    if !batchable(schema) {
        return one_by_one(tx, schema, access, bodies, options).await;
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..bodies.len()).map(|_| None).collect();
    let mut ready: Vec<(usize, Input<'_>)> = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        match prepare(schema, access, body) {
            Ok(input) => ready.push((i, input)),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    let mut checked = Vec::with_capacity(ready.len());
    for (i, input) in ready {
        match relations::check_targets(tx, access, &input).await {
            Ok(()) => checked.push((i, input)),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    let mut ready = checked;
    if schema.object == ObjectKey::Customers && !options.allow_duplicate {
        let refused = duplicates(tx, &ready).await?;
        let gone: std::collections::HashSet<usize> = refused.iter().map(|(i, _)| *i).collect();
        ready.retain(|(i, _)| !gone.contains(i));
        for (i, e) in refused {
            outcomes[i] = Some(Err(e));
        }
    }
    let owner_key = schema.object.owner_column();
    let mut tag_names: Vec<String> = Vec::new();
    for (_, input) in &mut ready {
        if input.get(owner_key).is_none() {
            if let Some(owner) = access.user_id {
                input.set(schema, owner_key, SqlValue::Uuid(owner));
            }
        }
        if let Some(SqlValue::TextArray(names)) = input.get("tags") {
            for n in names {
                if !tag_names.contains(n) {
                    tag_names.push(n.clone());
                }
            }
        }
    }
    tags::register(tx, &tag_names).await?;
    let rows: Vec<(Uuid, &Input<'_>)> = ready.iter().map(|(_, i)| (Uuid::now_v7(), i)).collect();
    savepoint(tx, "SAVEPOINT bulk_batch").await?;
    match engine::insert_many(tx, schema, access, &rows).await {
        Ok(()) => {
            savepoint(tx, "RELEASE SAVEPOINT bulk_batch").await?;
            for ((i, _), (id, _)) in ready.iter().zip(&rows) {
                outcomes[*i] = Some(Ok(*id));
            }
        }
        Err(_) => {
            // Some record broke a constraint: find which, one at a time.
            savepoint(tx, "ROLLBACK TO SAVEPOINT bulk_batch").await?;
            let indexes: Vec<usize> = ready.iter().map(|(i, _)| *i).collect();
            let again: Vec<Value> = indexes.iter().map(|i| bodies[*i].clone()).collect();
            let single = one_by_one(tx, schema, access, &again, options).await?;
            for (i, outcome) in indexes.into_iter().zip(single) {
                outcomes[i] = Some(outcome);
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::internal("a bulk record was left unanswered"))))
        .collect())
}

/// A body validated as `service::create` validates it before any database work.
fn prepare<'s>(schema: &'s ObjectSchema, access: &Access<'_>, body: &Value) -> Result<Input<'s>> {
    let mut input = engine::parse_input(schema, body, true)?;
    record_types::prepare_create(schema, access, &mut input)?;
    Ok(input)
}

/// Customers whose phone or e-mail another live customer has, or an earlier one of the same
/// batch: refused as `customer.duplicate`, as one create would be.
async fn duplicates(
    tx: &mut TenantTx,
    ready: &[(usize, Input<'_>)],
) -> Result<Vec<(usize, Error)>> {
    let text = |input: &Input<'_>, key: &str| match input.get(key) {
        Some(SqlValue::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let phones: Vec<String> = ready.iter().filter_map(|(_, i)| text(i, "phone")).collect();
    let emails: Vec<String> = ready.iter().filter_map(|(_, i)| text(i, "email")).collect();
    if phones.is_empty() && emails.is_empty() {
        return Ok(Vec::new());
    }
    let existing: Vec<(Uuid, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, phone, email FROM customers WHERE deleted_at IS NULL \
         AND (phone = ANY($1) OR email = ANY($2)) ORDER BY id",
    )
    .bind(&phones)
    .bind(&emails)
    .fetch_all(tx.conn())
    .await?;
    let mut by_phone: HashMap<String, Option<Uuid>> = HashMap::new();
    let mut by_email: HashMap<String, Option<Uuid>> = HashMap::new();
    for (id, phone, email) in existing {
        if let Some(p) = phone {
            by_phone.entry(p).or_insert(Some(id));
        }
        if let Some(e) = email {
            by_email.entry(e).or_insert(Some(id));
        }
    }
    let mut refused = Vec::new();
    for (i, input) in ready {
        let phone = text(input, "phone");
        let email = text(input, "email");
        let hit = phone
            .as_ref()
            .and_then(|p| by_phone.get(p))
            .map(|id| (*id, "phone"))
            .or_else(|| {
                email
                    .as_ref()
                    .and_then(|e| by_email.get(e))
                    .map(|id| (*id, "e-mail"))
            });
        match hit {
            Some((existing, what)) => refused.push((*i, duplicate(existing, what))),
            None => {
                // Later rows of this batch with the same phone or e-mail are duplicates of
                // this one (its id is not known yet: they are refused without one).
                if let Some(p) = phone {
                    by_phone.insert(p, None);
                }
                if let Some(e) = email {
                    by_email.insert(e, None);
                }
            }
        }
    }
    Ok(refused)
}

fn duplicate(existing: Option<Uuid>, what: &str) -> Error {
    match existing {
        Some(id) => Error::Duplicate {
            code: "customer.duplicate",
            message: format!(
                "customer {id} already has this {what}; open it instead, or create it anyway"
            ),
            existing_id: id,
        },
        None => Error::conflict(
            "customer.duplicate",
            format!("an earlier row of this batch has the same {what}"),
        ),
    }
}

/// `service::create` for each body, each in a savepoint so that a refusal undoes only its
/// own partial work.
async fn one_by_one(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    bodies: &[Value],
    options: CreateOptions,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::with_capacity(bodies.len());
    for body in bodies {
        savepoint(tx, "SAVEPOINT bulk_row").await?;
        match service::create(tx, schema, access, body, options).await {
            Ok(record) => {
                savepoint(tx, "RELEASE SAVEPOINT bulk_row").await?;
                let id = record["id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| Error::internal("created record has no id"))?;
                out.push(Ok(id));
            }
            Err(e) => {
                savepoint(tx, "ROLLBACK TO SAVEPOINT bulk_row").await?;
                out.push(Err(e));
            }
        }
    }
    Ok(out)
}

/// One record's update in a bulk write: the record before (unmasked) and after, or why it
/// was refused. `add_tags`: tags in `body` are added to the record's, not put in their
/// place. The outer error is the transaction failing.
pub async fn update_one(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    body: &Value,
    add_tags: bool,
) -> Result<std::result::Result<(Value, Value), Error>> {
    savepoint(tx, "SAVEPOINT bulk_row").await?;
    let unmasked = Access {
        unmask: true,
        ..*access
    };
    let result = async {
        let before = engine::fetch(tx, schema, &unmasked, id, Visibility::Live, false).await?;
        let mut body = body.clone();
        if let (true, Some(Value::Array(new)), Some(old)) = (
            add_tags,
            body.get("tags").cloned(),
            before["tags"].as_array(),
        ) {
            let mut all = old.clone();
            all.extend(new.into_iter().filter(|t| !old.contains(t)));
            body["tags"] = Value::Array(all);
        }
        let after = service::update(tx, schema, &unmasked, id, None, &body).await?;
        Ok::<_, Error>((before, after))
    }
    .await;
    match result {
        Ok(pair) => {
            savepoint(tx, "RELEASE SAVEPOINT bulk_row").await?;
            Ok(Ok(pair))
        }
        Err(e) => {
            savepoint(tx, "ROLLBACK TO SAVEPOINT bulk_row").await?;
            Ok(Err(e))
        }
    }
}

/// The live records of `schema` visible to `access` whose `field` has one of `values` (as
/// the field stores them: a phone normalised, say), as value → ids (oldest first). `field`
/// is `id`, or a field path of the object.
pub async fn match_ids(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    field: &str,
    values: &[String],
) -> Result<HashMap<String, Vec<Uuid>>> {
    access.require(schema.object, RecordAction::Read)?;
    let mut out: HashMap<String, Vec<Uuid>> = HashMap::new();
    if values.is_empty() {
        return Ok(out);
    }
    let column = if field == "id" {
        "id".to_owned()
    } else {
        let f = schema.resolve(field).ok_or_else(|| {
            Error::invalid_field(
                "match_key",
                "unknown_field",
                format!("{} has no field '{field}'", schema.noun()),
            )
        })?;
        if f.encrypted
            || !matches!(
                f.ty,
                FieldType::Text
                    | FieldType::Email
                    | FieldType::Phone
                    | FieldType::Integer
                    | FieldType::Url
            )
        {
            return Err(Error::invalid_field(
                "match_key",
                "not_matchable",
                format!(
                    "'{field}' cannot match records: use id, phone, email or a unique text field"
                ),
            ));
        }
        f.column
    };
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT id, \"{column}\"::text FROM {} WHERE deleted_at IS NULL AND \"{column}\"::text = ANY(",
        schema.object.table()
    ));
    q.push_bind(values.to_vec());
    q.push(")");
    access
        .scope
        .push_predicate(&mut q, schema.object.owner_column());
    q.push(" ORDER BY id");
    let rows: Vec<(Uuid, String)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    for (id, value) in rows {
        out.entry(value).or_default().push(id);
    }
    Ok(out)
}

/// Whether the record `id` of `schema` is still as a bulk write left it (`version`): undo
/// leaves alone what someone changed since.
pub async fn current_version(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    id: Uuid,
) -> Result<Option<(i64, bool)>> {
    Ok(sqlx::query_as(&format!(
        "SELECT version, deleted_at IS NOT NULL FROM {} WHERE id = $1",
        schema.object.table()
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// What [`revert`] did to one record.
#[derive(Debug, Default)]
pub struct Reverted {
    /// Whether any field got its old value back.
    pub restored: bool,
    /// What it left alone: (field path or none, code, message).
    pub left: Vec<(Option<String>, &'static str, String)>,
}

/// Whether two record values are the same (numbers by value: `12` and `12.0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Puts back the values a bulk update replaced: `changes` is `{path: {"before", "after"}}`
/// as the update reported them. A field whose value is no longer `after` was changed since
/// and keeps its value; encrypted values were never kept and cannot come back. Each is
/// reported in [`Reverted::left`]. The outer error is the transaction failing.
pub async fn revert(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    changes: &Value,
) -> Result<Reverted> {
    let mut out = Reverted::default();
    let unmasked = Access {
        unmask: true,
        ..*access
    };
    let current = match engine::fetch(tx, schema, &unmasked, id, Visibility::Live, false).await {
        Ok(c) => c,
        Err(e @ Error::NotFound { .. }) => {
            out.left.push((
                None,
                "import.record_gone",
                format!("{e}; nothing to restore"),
            ));
            return Ok(out);
        }
        Err(e) => return Err(e),
    };
    let mut top = serde_json::Map::new();
    let mut custom = serde_json::Map::new();
    for (path, change) in changes.as_object().into_iter().flatten() {
        let (before, after) = (&change["before"], &change["after"]);
        if before == "[encrypted]" || after == "[encrypted]" {
            out.left.push((
                Some(path.clone()),
                "import.encrypted",
                "an import keeps no copy of encrypted values; restore this field by hand".into(),
            ));
            continue;
        }
        let nested = path
            .strip_prefix("custom.")
            .filter(|_| !schema.object.is_custom());
        let now = match nested {
            Some(key) => &current["custom"][key],
            None => &current[path.as_str()],
        };
        if !same(now, after) {
            out.left.push((
                Some(path.clone()),
                "import.changed_since",
                format!("'{path}' was changed after the import; it keeps its current value"),
            ));
            continue;
        }
        match nested {
            Some(key) => custom.insert(key.to_owned(), before.clone()),
            None => top.insert(path.clone(), before.clone()),
        };
    }
    if !custom.is_empty() {
        top.insert("custom".into(), Value::Object(custom));
    }
    if top.is_empty() {
        return Ok(out);
    }
    match update_one(tx, schema, access, id, &Value::Object(top), false).await? {
        Ok(_) => out.restored = true,
        Err(e) => out.left.push((None, e.code(), e.to_string())),
    }
    Ok(out)
}
