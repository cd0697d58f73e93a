//! Roll-up fields: a number on a record kept equal to an aggregate of the records that point
//! to it (`policy_count` = count of policies whose `customer` is this customer, `premium_total`
//! = sum of their premiums), exact in the same transaction as every write of a pointing record
//! — no trigger: the engine recomputes the affected parents after the write, with their rows
//! locked first so concurrent writes of siblings cannot lose each other's counts. Like other
//! derived columns they move neither the parent's version nor its history, and they count
//! every pointing record, whoever may see it (as a stored total does).
//!
//! Definition (`field_defs.rollup`): `{"relation": "policies.customer", "child": "policies",
//! "via": "customer", "fn": "count"|"sum"|"min"|"max", "field"?: "premium",
//! "filter"?: {"product": ["life", "health"]}}`.

use crate::meta::{FieldType, ObjectKey};
use crate::schema::ObjectSchema;
use crate::values::{self, SqlValue};
use crm_core::db::TenantTx;
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use serde_json::{json, Map, Value};
use sqlx::{Postgres, QueryBuilder, Row};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The aggregate a roll-up keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
}

impl Agg {
    fn parse(raw: &str) -> Option<Agg> {
        Some(match raw {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            _ => return None,
        })
    }
}

/// One roll-up a child object feeds: which parent column, through which relation column,
/// what aggregate over which child column, under which filter.
#[derive(Debug, Clone)]
pub struct Feed {
    pub parent: ObjectKey,
    /// The roll-up column on the parent (`cf_<key>`).
    pub column: String,
    /// The child's relation column pointing to the parent.
    pub via: String,
    pub agg: Agg,
    /// The aggregated child column (`None` for count).
    pub of: Option<String>,
    /// Child column → accepted values.
    pub filter: Vec<(String, Vec<SqlValue>)>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_field("rollup", "invalid", message)
}

/// Validates a roll-up definition for a field of `parent` and returns it normalised (with
/// `child` and `via` split out, so children find what they feed with one lookup).
pub async fn validate(tx: &mut TenantTx, parent: ObjectKey, raw: Option<&Value>) -> Result<Value> {
    let Some(def) = raw.and_then(Value::as_object) else {
        return Err(Error::invalid_field(
            "rollup",
            "required",
            "rollup fields need {\"relation\": \"<object>.<relation field>\", \"fn\": \"count|sum|min|max\", \"field\"?, \"filter\"?}",
        ));
    };
    let relation = def.get("relation").and_then(Value::as_str).unwrap_or("");
    let (child_raw, via) = relation.split_once('.').ok_or_else(|| {
        invalid("relation must be <object>.<relation field>, e.g. policies.customer")
    })?;
    let child = ObjectKey::named(child_raw)
        .ok_or_else(|| invalid(format!("'{child_raw}' is not an object")))?;
    let schema = ObjectSchema::load(tx, child).await?;
    let via_field = schema
        .resolve(via)
        .filter(|f| f.ty == FieldType::Relation && f.target == Some(parent))
        .ok_or_else(|| {
            invalid(format!(
                "{child} has no relation field '{via}' pointing to {parent}"
            ))
        })?;
    let agg = def
        .get("fn")
        .and_then(Value::as_str)
        .and_then(Agg::parse)
        .ok_or_else(|| invalid("fn must be count, sum, min or max"))?;
    let field = def.get("field").and_then(Value::as_str);
    match (agg, field) {
        (Agg::Count, Some(_)) => return Err(invalid("count counts records; leave field out")),
        (Agg::Count, None) => {}
        (_, None) => return Err(invalid("sum, min and max need the field to aggregate")),
        (_, Some(f)) => {
            let numeric = schema.resolve(f).is_some_and(|x| {
                matches!(
                    x.ty,
                    FieldType::Integer
                        | FieldType::Decimal
                        | FieldType::Currency
                        | FieldType::Rollup
                ) && !x.encrypted
            });
            if !numeric {
                return Err(invalid(format!(
                    "{child} has no number field '{f}' (integer, decimal, currency or rollup)"
                )));
            }
        }
    }
    let mut v = Validator::new();
    let mut filter = Map::new();
    if let Some(raw_filter) = def.get("filter") {
        let Some(map) = raw_filter.as_object() else {
            return Err(invalid("filter must be {\"<field>\": value or [values]}"));
        };
        for (name, wanted) in map {
            let path = format!("rollup.filter.{name}");
            let Some(f) = schema.resolve(name).filter(|f| {
                !f.encrypted
                    && !matches!(
                        f.ty,
                        FieldType::MultiSelect
                            | FieldType::Tags
                            | FieldType::Address
                            | FieldType::Rollup
                    )
            }) else {
                v.push(FieldError::new(
                    path,
                    "unknown_field",
                    format!("{child} has no field '{name}' a roll-up can filter on"),
                ));
                continue;
            };
            let list: Vec<Value> = match wanted {
                Value::Array(items) => items.clone(),
                one => vec![one.clone()],
            };
            for item in &list {
                v.check(values::parse(&f.spec(), &path, item).map(|_| ()));
            }
            filter.insert(f.path(), Value::Array(list));
        }
    }
    v.finish()?;
    Ok(json!({
        "relation": relation,
        "child": child.as_str(),
        "via": via_field.path(),
        "fn": def.get("fn"),
        "field": field,
        "filter": filter,
    }))
}

/// The roll-ups `child`'s records feed (read with its schema, so cached with it).
pub(crate) async fn feeds_of(tx: &mut TenantTx, child: &ObjectSchema) -> Result<Vec<Feed>> {
    let rows = sqlx::query(
        "SELECT object, key, to_jsonb(f) -> 'rollup' AS rollup FROM field_defs f \
         WHERE type = 'rollup' AND to_jsonb(f) -> 'rollup' ->> 'child' = $1 ORDER BY object, key",
    )
    .bind(child.object.as_str())
    .fetch_all(tx.conn())
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let parent: String = row.try_get("object")?;
        let key: String = row.try_get("key")?;
        let def: Value = row.try_get("rollup")?;
        let corrupt = || Error::internal(format!("roll-up {parent}.{key} has a bad definition"));
        let parent = ObjectKey::named(&parent).ok_or_else(corrupt)?;
        let column_of = |name: &str| child.resolve(name).map(|f| f.column);
        let via = def["via"]
            .as_str()
            .and_then(column_of)
            .ok_or_else(corrupt)?;
        let agg = def["fn"]
            .as_str()
            .and_then(Agg::parse)
            .ok_or_else(corrupt)?;
        let of = match def["field"].as_str() {
            Some(f) => Some(column_of(f).ok_or_else(corrupt)?),
            None => None,
        };
        let mut filter = Vec::new();
        if let Some(map) = def["filter"].as_object() {
            for (name, wanted) in map {
                let f = child.resolve(name).ok_or_else(corrupt)?;
                let values = wanted
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|w| values::parse(&f.spec(), name, w).map_err(|_| corrupt()))
                    .collect::<Result<Vec<_>>>()?;
                filter.push((f.column.clone(), values));
            }
        }
        out.push(Feed {
            parent,
            column: format!("cf_{key}"),
            via,
            agg,
            of,
            filter,
        });
    }
    Ok(out)
}

/// The parents record `id` of `schema`'s object points to, per feed (read in any state).
pub async fn parents(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    id: Uuid,
) -> Result<Vec<(usize, Uuid)>> {
    if schema.feeds.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = schema
        .feeds
        .iter()
        .map(|f| format!("\"{}\"", f.via))
        .collect();
    let row = sqlx::query(&format!(
        "SELECT {} FROM \"{}\" WHERE id = $1",
        columns.join(", "),
        schema.object.table()
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, _) in schema.feeds.iter().enumerate() {
        if let Some(parent) = row.try_get::<Option<Uuid>, _>(i)? {
            out.push((i, parent));
        }
    }
    Ok(out)
}

fn push_aggregate(q: &mut QueryBuilder<'_, Postgres>, child: ObjectKey, feed: &Feed) {
    let agg = match (feed.agg, &feed.of) {
        (Agg::Count, _) | (_, None) => "count(*)".to_owned(),
        (Agg::Sum, Some(c)) => format!("coalesce(sum(c.\"{c}\"), 0)"),
        (Agg::Min, Some(c)) => format!("min(c.\"{c}\")"),
        (Agg::Max, Some(c)) => format!("max(c.\"{c}\")"),
    };
    q.push(format!(
        "(SELECT {agg} FROM \"{}\" c WHERE c.\"{}\" = p.id AND c.deleted_at IS NULL",
        child.table(),
        feed.via
    ));
    for (column, values) in &feed.filter {
        q.push(format!(" AND c.\"{column}\" IN ("));
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            v.push_bind(q);
        }
        q.push(")");
    }
    q.push(")");
}

/// Recomputes the roll-ups of the given parents (feed index, parent id), locking their rows
/// first (in id order) so each recount sees every committed sibling. `FOR NO KEY UPDATE`:
/// the child's insert already holds the parent's key-share lock (its foreign key check),
/// which a plain `FOR UPDATE` would have to upgrade — two siblings doing so deadlock.
pub async fn refresh(
    tx: &mut TenantTx,
    child: &ObjectSchema,
    touched: &[(usize, Uuid)],
) -> Result<()> {
    let pairs: BTreeSet<(usize, Uuid)> = touched.iter().copied().collect();
    for (i, feed) in child.feeds.iter().enumerate() {
        let ids: Vec<Uuid> = pairs
            .iter()
            .filter(|(f, _)| *f == i)
            .map(|(_, id)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let table = feed.parent.table();
        sqlx::query(&format!(
            "SELECT 1 FROM \"{table}\" WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"
        ))
        .bind(&ids)
        .execute(tx.conn())
        .await?;
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "UPDATE \"{table}\" p SET \"{}\" = ",
            feed.column
        ));
        push_aggregate(&mut q, child.object, feed);
        q.push(" WHERE p.id = ANY(").push_bind(ids).push(")");
        q.build().persistent(false).execute(tx.conn()).await?;
    }
    Ok(())
}

/// Recomputes one roll-up field on every record of `parent` (after an import, or when the
/// field is created); returns how many records were updated.
pub async fn rebuild(tx: &mut TenantTx, parent: ObjectKey, key: &str) -> Result<u64> {
    let def: Option<Value> = sqlx::query_scalar(
        "SELECT rollup FROM field_defs WHERE object = $1 AND key = $2 AND type = 'rollup'",
    )
    .bind(parent.as_str())
    .bind(key)
    .fetch_optional(tx.conn())
    .await?
    .flatten();
    let def = def.ok_or_else(|| {
        Error::not_found(
            "field.not_found",
            format!("{parent} has no roll-up field '{key}'"),
        )
    })?;
    let child = def["child"]
        .as_str()
        .and_then(ObjectKey::named)
        .ok_or_else(|| Error::internal("roll-up without child"))?;
    let child_schema = ObjectSchema::load(tx, child).await?;
    let column = format!("cf_{key}");
    let feed = child_schema
        .feeds
        .iter()
        .find(|f| f.parent == parent && f.column == column)
        .ok_or_else(|| Error::internal("roll-up not among its child's feeds"))?;
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "UPDATE \"{}\" p SET \"{column}\" = ",
        parent.table()
    ));
    push_aggregate(&mut q, child, feed);
    Ok(q.build()
        .persistent(false)
        .execute(tx.conn())
        .await?
        .rows_affected())
}

/// Recomputes the roll-ups of record `id` itself (a record back from the recycle bin may
/// have lost or gained pointing records meanwhile).
pub async fn recompute_own(tx: &mut TenantTx, schema: &ObjectSchema, id: Uuid) -> Result<()> {
    for d in schema.custom.iter().filter(|d| d.ty == FieldType::Rollup) {
        let Some(child) = d
            .rollup
            .as_ref()
            .and_then(|r| r["child"].as_str())
            .and_then(ObjectKey::named)
        else {
            continue;
        };
        let child_schema = ObjectSchema::load(tx, child).await?;
        let column = d.key.column();
        if let Some(i) = child_schema
            .feeds
            .iter()
            .position(|f| f.parent == schema.object && f.column == column)
        {
            refresh(tx, &child_schema, &[(i, id)]).await?;
        }
    }
    Ok(())
}
