//! Lists and counts: `filter[<field>]=v` / `filter[<field>][<op>]=v`, `tag=`, `q=` search,
//! `sort=`, keyset cursors. Every name resolves through the schema to a validated column;
//! every value is bound.

mod filters;

pub(crate) use filters::{escape_like, is_own_field, push_filter};
use filters::{expr, hidden_from, resolve, sensitive_forbidden};

use super::engine::{decode_record, select_list, Access};
use super::meta::{FieldType, ObjectKey, RecordAction};
use super::schema::ObjectSchema;
use crate::cross::CrossFilter;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use crm_core::context::Page;
use crm_core::db::TenantTx;
use crm_core::error::{Error, FieldError, Result};
use serde_json::{json, Value};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// Comparison operators of filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    IsNull,
}

impl Op {
    fn parse(raw: &str) -> Option<Op> {
        Some(match raw {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "contains" => Op::Contains,
            "is_null" => Op::IsNull,
            _ => return None,
        })
    }
}

/// One filter as written in the query string.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// A list request; serializable, so that work done later (an export job) reads exactly what was asked.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub tags: Vec<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: i64,
    /// The recycle bin instead of live records.
    pub deleted: bool,
    /// Objects pointing here whose searchable fields `q` searches too (`search_related`).
    pub search_related: Vec<String>,
}

impl ListQuery {
    /// Reads `filter[...]`, `tag`, `q`, `sort`, `cursor`, `limit`, `deleted` from query pairs;
    /// other parameters are left to the caller.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ListQuery> {
        let mut q = ListQuery {
            limit: 50,
            ..Default::default()
        };
        for (k, v) in pairs {
            if let Some(rest) = k.strip_prefix("filter[") {
                let (field, op) = match rest.split_once("][") {
                    Some((field, op)) => (field, op.strip_suffix(']')),
                    None => (rest.strip_suffix(']').unwrap_or(""), Some("eq")),
                };
                let op = op.and_then(Op::parse).ok_or_else(|| {
                    Error::invalid_field(k.clone(), "unknown_operator", "use filter[field]=v or filter[field][op]=v with op one of eq, ne, lt, lte, gt, gte, in, contains, is_null")
                })?;
                if field.is_empty() {
                    return Err(Error::invalid_field(
                        k.clone(),
                        "invalid",
                        "name a field: filter[<field>]",
                    ));
                }
                q.filters.push(Filter {
                    field: field.to_owned(),
                    op,
                    value: v.clone(),
                });
            } else {
                match k.as_str() {
                    "tag" => q.tags.push(v.clone()),
                    "q" if !v.trim().is_empty() => q.q = Some(v.trim().to_owned()),
                    "sort" => q.sort = Some(v.clone()),
                    "cursor" => q.cursor = Some(v.clone()),
                    "limit" => {
                        q.limit = v
                            .parse::<i64>()
                            .map_err(|_| {
                                Error::invalid_field(
                                    "limit",
                                    "invalid",
                                    "expects a number from 1 to 200",
                                )
                            })?
                            .clamp(1, crm_core::context::MAX_PAGE);
                    }
                    "deleted" => q.deleted = v == "true",
                    "search_related" => q.search_related.extend(
                        v.split(',')
                            .map(str::trim)
                            .filter(|o| !o.is_empty())
                            .map(str::to_owned),
                    ),
                    _ => {}
                }
            }
        }
        Ok(q)
    }
}

/// WHERE clauses shared by list and count; `cross` holds the query's filters and searches
/// on related objects, resolved by [`crate::cross::prepare`].
fn push_where(
    q: &mut QueryBuilder<'_, Postgres>,
    schema: &ObjectSchema,
    access: &Access<'_>,
    lq: &ListQuery,
    cross: &[CrossFilter],
) -> Result<()> {
    q.push(if lq.deleted {
        " WHERE deleted_at IS NOT NULL"
    } else {
        " WHERE deleted_at IS NULL"
    });
    access.scope.push_predicate(q, schema.object.owner_column());
    for f in &lq.filters {
        match cross.iter().find(|c| c.path == f.field) {
            Some(c) if !is_own_field(schema, &f.field) => c.push(q, schema, access, None)?,
            _ => push_filter(q, schema, access, f)?,
        }
    }
    if !lq.tags.is_empty() {
        q.push(" AND tags @> ").push_bind(lq.tags.clone());
    }
    if let Some(text) = &lq.q {
        if text.chars().count() < 3 && schema.object.has_name() {
            // Too short for trigrams: the name's unigram/bigram index.
            q.push(" AND name_grams @> ARRAY[")
                .push_bind(text.to_lowercase())
                .push("]::text[]");
        } else {
            let pattern = format!("%{}%", escape_like(text));
            q.push(" AND (false");
            let phone_like = text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-()".contains(c));
            // Masked values are not searchable by those who only see them masked.
            for f in schema
                .all()
                .filter(|f| f.searchable && (access.unmask || !f.sensitive))
            {
                if f.ty == FieldType::Phone {
                    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                    if phone_like && digits.len() >= 3 {
                        q.push(format!(" OR \"{}\" LIKE ", f.column))
                            .push_bind(format!("%{digits}%"));
                    }
                } else {
                    q.push(format!(" OR \"{}\" ILIKE ", f.column))
                        .push_bind(pattern.clone());
                }
            }
            for c in cross.iter().filter(|c| c.path.is_empty()) {
                c.push(q, schema, access, Some(text))?;
            }
            q.push(")");
        }
    }
    Ok(())
}

/// What a list is ordered by.
enum SortExpr {
    /// A column expression built from a validated column name.
    Column(String),
    /// Relevance of `q`: the best trigram similarity over the searchable text columns.
    Relevance { columns: Vec<String>, text: String },
}

/// How a list is ordered: an expression, its SQL type (for cursor values) and direction.
struct Sort {
    expr: SortExpr,
    sql_type: &'static str,
    desc: bool,
    /// Never NULL: the keyset can be a row comparison an index serves.
    not_null: bool,
}

impl Sort {
    /// Appends the sort expression; the search text is bound each time it appears.
    fn push_expr(&self, q: &mut QueryBuilder<'_, Postgres>) {
        match &self.expr {
            SortExpr::Column(e) => {
                q.push(format!("({e})"));
            }
            SortExpr::Relevance { columns, text } => {
                q.push("greatest(0");
                for c in columns {
                    q.push(format!(", similarity(coalesce(\"{c}\", ''), "));
                    q.push_bind(text.clone()).push(")");
                }
                q.push(")");
            }
        }
    }
}

fn sort_of(schema: &ObjectSchema, access: &Access<'_>, lq: &ListQuery) -> Result<Sort> {
    match lq.sort.as_deref() {
        None | Some("") => match &lq.q {
            Some(text) => Ok(Sort {
                expr: SortExpr::Relevance {
                    columns: schema
                        .all()
                        .filter(|f| {
                            f.searchable
                                && f.ty != FieldType::Phone
                                && (access.unmask || !f.sensitive)
                        })
                        .map(|f| f.column)
                        .collect(),
                    text: text.clone(),
                },
                sql_type: "float8",
                desc: true,
                not_null: true,
            }),
            None => Ok(Sort {
                expr: SortExpr::Column("\"id\"".into()),
                sql_type: "uuid",
                desc: true,
                not_null: true,
            }),
        },
        Some(raw) => {
            let (desc, name) = match raw.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, raw),
            };
            let t = resolve(schema, name).ok_or_else(|| {
                Error::invalid_field(
                    "sort",
                    "unknown_field",
                    format!("{} has no field '{name}' to sort by", schema.object),
                )
            })?;
            if !t.ty.is_ordered() || t.field.as_ref().is_some_and(|f| f.encrypted) {
                return Err(Error::invalid_field(
                    "sort",
                    "unsortable",
                    format!("'{name}' cannot be sorted"),
                ));
            }
            let sql_type = match t.ty {
                FieldType::Integer => "bigint",
                FieldType::Decimal | FieldType::Currency | FieldType::Rollup => "numeric",
                FieldType::Date => "date",
                FieldType::Datetime => "timestamptz",
                FieldType::User | FieldType::Relation => "uuid",
                _ => "text",
            };
            if hidden_from(&t, access) {
                return Err(sensitive_forbidden(name, "sorting by"));
            }
            let not_null = t.json_key.is_none()
                && (matches!(t.column.as_str(), "created_at" | "updated_at")
                    || t.field.as_ref().is_some_and(|f| !f.custom && f.required));
            Ok(Sort {
                expr: SortExpr::Column(expr(&t)),
                sql_type,
                desc,
                not_null,
            })
        }
    }
}

/// Continues after the row whose sort value is `value` and id is `id`.
fn push_keyset(q: &mut QueryBuilder<'_, Postgres>, sort: &Sort, value: Option<String>, id: Uuid) {
    let cmp = if sort.desc { "<" } else { ">" };
    let cast = format!(")::{}", sort.sql_type);
    if matches!(&sort.expr, SortExpr::Column(c) if c == "\"id\"") {
        q.push(format!(" AND id {cmp} ")).push_bind(id);
        return;
    }
    match value {
        Some(v) if sort.not_null => {
            q.push(" AND (");
            sort.push_expr(q);
            q.push(format!(", id) {cmp} (("))
                .push_bind(v)
                .push(cast)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        Some(v) => {
            q.push(" AND (");
            sort.push_expr(q);
            q.push(format!(" {cmp} ("))
                .push_bind(v.clone())
                .push(cast.clone())
                .push(" OR (");
            sort.push_expr(q);
            q.push(" = (")
                .push_bind(v)
                .push(cast)
                .push(format!(" AND id {cmp} "))
                .push_bind(id)
                .push(")");
            if !sort.desc {
                // Ascending puts NULLs last: they all come after any value.
                q.push(" OR ");
                sort.push_expr(q);
                q.push(" IS NULL");
            }
            q.push(")");
        }
        None => {
            q.push(" AND ((");
            sort.push_expr(q);
            q.push(format!(" IS NULL AND id {cmp} "))
                .push_bind(id)
                .push(")");
            if sort.desc {
                // Descending puts NULLs first: every value comes after them.
                q.push(" OR ");
                sort.push_expr(q);
                q.push(" IS NOT NULL");
            }
            q.push(")");
        }
    }
}

fn encode_cursor(value: Option<String>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(json!([value, id]).to_string())
}

fn decode_cursor(raw: &str) -> Result<(Option<String>, Uuid)> {
    let bad = || {
        Error::bad_request(
            "request.invalid_cursor",
            "cursor is not one this API returned; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let (value, id): (Option<String>, Uuid) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((value, id))
}

/// A page of records.
pub async fn list(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    lq: &ListQuery,
) -> Result<Page<Value>> {
    let edges = list_edges(tx, schema, access, lq).await?;
    let next_cursor = if edges.has_next {
        edges.items.last().map(|(_, c)| c.clone())
    } else {
        None
    };
    Ok(Page {
        items: edges.items.into_iter().map(|(v, _)| v).collect(),
        next_cursor,
    })
}

/// A page of records, each with the cursor that continues after it (GraphQL's edges).
pub struct Edges {
    pub items: Vec<(Value, String)>,
    /// More records follow the last one.
    pub has_next: bool,
}

/// [`list`] with a cursor per record.
pub async fn list_edges(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    lq: &ListQuery,
) -> Result<Edges> {
    access.require(schema.object, RecordAction::Read)?;
    let cross = crate::cross::prepare(tx, schema, access, lq).await?;
    let sort = sort_of(schema, access, lq)?;
    let mut q = QueryBuilder::new(format!("SELECT {}, (", select_list(schema)));
    sort.push_expr(&mut q);
    q.push(format!(")::text AS __sort FROM {}", schema.object.table()));
    push_where(&mut q, schema, access, lq, &cross)?;
    if let Some(raw) = &lq.cursor {
        let (value, id) = decode_cursor(raw)?;
        push_keyset(&mut q, &sort, value, id);
    }
    // Postgres' default null placement (ASC: last, DESC: first) is what a B-tree scanned
    // either way yields, so an index on the sort column can serve the order.
    let dir = if sort.desc { "DESC" } else { "ASC" };
    q.push(" ORDER BY ");
    sort.push_expr(&mut q);
    q.push(format!(" {dir}, id {dir} LIMIT "));
    q.push_bind(lq.limit + 1);
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    let has_next = rows.len() as i64 > lq.limit;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter().take(lq.limit as usize) {
        let cursor = encode_cursor(row.try_get("__sort")?, row.try_get("id")?);
        items.push((decode_record(schema, access, row)?, cursor));
    }
    Ok(Edges { items, has_next })
}

/// The live records of `schema`'s object whose relation field `via` (a path such as
/// `customer_id` or `custom.policy`) points to each of `parents`: at most `per_parent` each,
/// newest first, within the caller's scope — one statement for all parents (a lateral join
/// per parent id), so a page's related lists cost one query, not one per record.
pub async fn related_of_many(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    via: &str,
    parents: &[Uuid],
    per_parent: i64,
) -> Result<std::collections::HashMap<Uuid, Vec<Value>>> {
    access.require(schema.object, RecordAction::Read)?;
    let field = schema
        .resolve(via)
        .filter(|f| f.ty == FieldType::Relation)
        .ok_or_else(|| {
            Error::invalid_field(
                "via",
                "unknown_relation",
                format!("{} has no relation field '{via}'", schema.object),
            )
        })?;
    let mut found: std::collections::HashMap<Uuid, Vec<Value>> = std::collections::HashMap::new();
    if parents.is_empty() {
        return Ok(found);
    }
    // `c.*` is the lateral subquery's explicit select list, not a table's columns.
    let mut q = QueryBuilder::new("SELECT p.__parent, c.* FROM unnest(");
    q.push_bind(parents.to_vec());
    q.push(format!(
        "::uuid[]) AS p(__parent) CROSS JOIN LATERAL (SELECT {} FROM {}",
        select_list(schema),
        schema.object.table()
    ));
    push_where(&mut q, schema, access, &ListQuery::default(), &[])?;
    q.push(format!(
        " AND \"{}\" = p.__parent ORDER BY created_at DESC, id DESC LIMIT ",
        field.column
    ));
    q.push_bind(per_parent);
    q.push(") c");
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    for row in &rows {
        let parent: Uuid = row.try_get("__parent")?;
        found
            .entry(parent)
            .or_default()
            .push(decode_record(schema, access, row)?);
    }
    Ok(found)
}

/// A page of the records that belong to customer `customer` (a customer's contacts, say):
/// 404 unless the customer is one the caller sees.
pub async fn list_of_customer(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    customer: Uuid,
    lq: &ListQuery,
) -> Result<Page<Value>> {
    access.require(schema.object, RecordAction::Read)?;
    crate::engine::ensure_visible(
        tx,
        ObjectKey::Customers,
        access.customer_scope,
        customer,
        crate::engine::Visibility::Any,
    )
    .await?;
    let mut lq = lq.clone();
    lq.filters.push(Filter {
        field: "customer_id".into(),
        op: Op::Eq,
        value: customer.to_string(),
    });
    list(tx, schema, access, &lq).await
}

/// How many records match (same filters as list, no paging).
pub async fn count(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    lq: &ListQuery,
) -> Result<i64> {
    access.require(schema.object, RecordAction::Read)?;
    let cross = crate::cross::prepare(tx, schema, access, lq).await?;
    let mut q = QueryBuilder::new(format!("SELECT count(*) FROM {}", schema.object.table()));
    push_where(&mut q, schema, access, lq, &cross)?;
    Ok(q.build()
        .persistent(false)
        .fetch_one(tx.conn())
        .await?
        .try_get(0)?)
}

/// Refuses filter parameters that are not filters at all (e.g. `filter=x`).
pub fn check_unknown(pairs: &[(String, String)], extra: &[&str]) -> Result<()> {
    let known = [
        "q",
        "tag",
        "sort",
        "cursor",
        "limit",
        "deleted",
        "search_related",
        "expand",
    ];
    let errors: Vec<FieldError> = pairs
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("filter[")
                && !known.contains(&k.as_str())
                && !extra.contains(&k.as_str())
        })
        .map(|(k, _)| {
            FieldError::new(
                k.clone(),
                "unknown_parameter",
                "not a list parameter; use filter[<field>], q, search_related, tag, sort, cursor, limit, deleted or expand",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(errors))
    }
}

/// Task filters for `due=today|overdue|upcoming`, with "today" in the tenant's time zone.
pub async fn due_filters(tx: &mut TenantTx, when: &str) -> Result<Vec<Filter>> {
    use chrono::{Duration, TimeZone, Utc};
    let zone: String = sqlx::query_scalar("SELECT timezone FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let tz: chrono_tz::Tz = zone.parse().unwrap_or_else(|_| {
        tracing::warn!(timezone = %zone, "tenant time zone not recognised; using Asia/Shanghai");
        chrono_tz::Asia::Shanghai
    });
    let now = Utc::now();
    let today = now.with_timezone(&tz).date_naive();
    let start_of = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    };
    let (start, end) = (start_of(today), start_of(today + Duration::days(1)));
    let filter = |field: &str, op, value: String| Filter {
        field: field.into(),
        op,
        value,
    };
    let open = filter("done_at", Op::IsNull, "true".into());
    Ok(match when {
        "today" => vec![
            filter("due_at", Op::Gte, start.to_rfc3339()),
            filter("due_at", Op::Lt, end.to_rfc3339()),
            open,
        ],
        "overdue" => vec![filter("due_at", Op::Lt, now.to_rfc3339()), open],
        "upcoming" => vec![filter("due_at", Op::Gte, end.to_rfc3339()), open],
        other => {
            return Err(Error::invalid_field(
                "due",
                "invalid",
                format!("'{other}' is not a due filter; use today, overdue or upcoming"),
            ))
        }
    })
}

#[cfg(test)]
mod tests;
