//! `expand=policy,policy.customer`: the records a relation field points to, shown beside a
//! record under `expanded` — their display fields only (id, display name, owner), up to two
//! levels, one query per relation and level however many records a page holds. A related
//! record the caller may not read (no permission, out of scope, or gone) comes back as
//! `{id, hidden: true}`, so an expansion never says more than a get would.

use crate::engine::Access;
use crate::meta::{FieldType, ObjectKey, RecordAction};
use crate::schema::{Field, ObjectSchema};
use crate::values;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde_json::{json, Map, Value};
use sqlx::{Postgres, QueryBuilder, Row};
use std::collections::BTreeMap;
use uuid::Uuid;

/// At most this many expansions in one request.
pub const MAX_PATHS: usize = 10;
/// Dotted paths go this many relations deep.
pub const MAX_DEPTH: usize = 2;

/// The expansion paths of an `expand` parameter, grouped by their first relation:
/// `policy,policy.customer` → `{policy: [customer]}`.
pub fn parse(raw: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut tree: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let paths: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if paths.len() > MAX_PATHS {
        return Err(Error::invalid_field(
            "expand",
            "too_many",
            format!("expand at most {MAX_PATHS} relations at once"),
        ));
    }
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.len() > MAX_DEPTH || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::invalid_field(
                "expand",
                "invalid",
                format!("'{path}' is not a relation path; use a relation field, or two joined by a dot (policy.customer)"),
            ));
        }
        let children = tree.entry(parts[0].to_owned()).or_default();
        if let Some(next) = parts.get(1) {
            if !children.iter().any(|c| c == next) {
                children.push((*next).to_owned());
            }
        }
    }
    Ok(tree)
}

/// The field a record of `object` is shown by.
pub fn display_field(object: ObjectKey) -> &'static str {
    match object {
        ObjectKey::Tickets => "subject",
        ObjectKey::Tasks => "title",
        ObjectKey::Activities => "subject",
        _ => "name",
    }
}

fn uuid_of(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// Adds `expanded` to each record for the relations in `tree`.
pub async fn apply(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    records: &mut [Value],
    tree: &BTreeMap<String, Vec<String>>,
) -> Result<()> {
    for (name, children) in tree {
        let (field, target) = schema.relation(name).ok_or_else(|| {
            Error::invalid_field(
                "expand",
                "unknown_relation",
                format!("{} has no relation field '{name}' to expand", schema.object),
            )
        })?;
        let ids: Vec<Uuid> = records
            .iter()
            .filter_map(|r| uuid_of(field.value_in(r)))
            .collect();
        let target_schema = ObjectSchema::load(tx, target).await?;
        let mut nested: Vec<Field<'_>> = Vec::new();
        for child in children {
            let (f, _) = target_schema.relation(child).ok_or_else(|| {
                Error::invalid_field(
                    "expand",
                    "unknown_relation",
                    format!("{target} has no relation field '{child}' to expand"),
                )
            })?;
            nested.push(f);
        }
        let found = if ids.is_empty() || !access.may(target, RecordAction::Read) {
            BTreeMap::new()
        } else {
            fetch(tx, &target_schema, access, &ids, &nested).await?
        };
        let mut shown: Vec<Value> = found.values().cloned().collect();
        if !children.is_empty() && !shown.is_empty() {
            let sub: BTreeMap<String, Vec<String>> =
                children.iter().map(|c| (c.clone(), Vec::new())).collect();
            Box::pin(apply(tx, &target_schema, access, &mut shown, &sub)).await?;
        }
        let by_id: BTreeMap<String, Value> = shown
            .into_iter()
            .filter_map(|v| Some((v["id"].as_str()?.to_owned(), v)))
            .collect();
        for record in records.iter_mut() {
            let value = match uuid_of(field.value_in(record)) {
                None => Value::Null,
                Some(id) => by_id
                    .get(&id.to_string())
                    .cloned()
                    .unwrap_or_else(|| json!({ "id": id, "hidden": true })),
            };
            if let Value::Object(map) = record {
                let expanded = map
                    .entry("expanded")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(e) = expanded {
                    e.insert(name.clone(), value);
                }
            }
        }
    }
    Ok(())
}

/// The visible records among `ids`: id, object, display field, owner and the relation
/// fields a deeper expansion follows.
async fn fetch(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    ids: &[Uuid],
    nested: &[Field<'_>],
) -> Result<BTreeMap<Uuid, Value>> {
    let object = schema.object;
    let display = display_field(object);
    let owner = object.owner_column();
    let mut columns = vec![format!("\"{display}\""), format!("\"{owner}\"")];
    columns.extend(nested.iter().map(|f| format!("\"{}\"", f.column)));
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT id, {} FROM \"{}\" WHERE deleted_at IS NULL AND id = ANY(",
        columns.join(", "),
        object.table()
    ));
    q.push_bind(ids.to_vec()).push(")");
    access.scope_on(object).push_predicate(&mut q, owner);
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let mut v = Map::new();
        v.insert("id".into(), json!(id));
        v.insert("object".into(), json!(object.as_str()));
        v.insert(
            display.into(),
            values::decode(&row, display, FieldType::Text)?,
        );
        v.insert(owner.into(), values::decode(&row, owner, FieldType::User)?);
        let mut custom = Map::new();
        for f in nested {
            let value = values::decode(&row, &f.column, f.ty)?;
            if f.nested {
                custom.insert(f.key.to_owned(), value);
            } else {
                v.insert(f.key.to_owned(), value);
            }
        }
        if !custom.is_empty() {
            v.insert("custom".into(), Value::Object(custom));
        }
        out.insert(id, Value::Object(v));
    }
    Ok(out)
}
