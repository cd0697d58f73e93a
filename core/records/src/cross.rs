//! Filters and search across relations. `filter[policies.policy_no]=P-1` on customers finds
//! the customers with such a policy (records of another object whose relation field points
//! here: `<object>.<field>`, or `<object>.<relation>.<field>` when it has several);
//! `filter[policy.product]=life` on claims follows the claim's own relation field to the
//! record it points to. Both are an `EXISTS` subquery through the relation's index, under the
//! caller's permission, scope and masking on the other object. `search_related=policies`
//! widens `q` to the related records' searchable fields.

use crate::engine::Access;
use crate::meta::{FieldType, ObjectKey, RecordAction};
use crate::query::{push_filter, Filter, ListQuery};
use crate::schema::ObjectSchema;
use crate::scope::RecordScope;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use sqlx::{Postgres, QueryBuilder};

/// How the other object's records join to the listed ones.
enum Link {
    /// The other object's relation column points to the listed record.
    Pointing(String),
    /// The listed record's relation column points to the other record.
    PointedBy(String),
}

/// A filter or search on another object's records.
pub struct CrossFilter {
    /// The name as written (`policies.policy_no`); empty for a related search.
    pub(crate) path: String,
    other: ObjectSchema,
    link: Link,
    /// The filter on the other object's field.
    filter: Option<Filter>,
    scope: RecordScope,
}

impl CrossFilter {
    /// Appends ` AND EXISTS (...)` (or, for a search, ` OR EXISTS (...)`).
    pub(crate) fn push(
        &self,
        q: &mut QueryBuilder<'_, Postgres>,
        outer: &ObjectSchema,
        access: &Access<'_>,
        search: Option<&str>,
    ) -> Result<()> {
        let outer_table = outer.object.table();
        let inner = self.other.object.table();
        q.push(if search.is_some() {
            " OR EXISTS (SELECT 1 FROM "
        } else {
            " AND EXISTS (SELECT 1 FROM "
        });
        q.push(format!("\"{inner}\" r WHERE "));
        match &self.link {
            Link::Pointing(column) => {
                q.push(format!("r.\"{column}\" = \"{outer_table}\".id"));
            }
            Link::PointedBy(column) => {
                q.push(format!("r.id = \"{outer_table}\".\"{column}\""));
            }
        }
        q.push(" AND r.deleted_at IS NULL");
        self.scope
            .push_predicate(q, self.other.object.owner_column());
        if let Some(f) = &self.filter {
            let inner_access = access.on(self.other.object);
            push_filter(q, &self.other, &inner_access, f)?;
        }
        if let Some(text) = search {
            let pattern = format!("%{}%", crate::query::escape_like(text));
            q.push(" AND (false");
            for f in self
                .other
                .all()
                .filter(|f| f.searchable && f.ty != FieldType::Phone)
                .filter(|f| access.unmask || !f.sensitive)
            {
                q.push(format!(" OR r.\"{}\" ILIKE ", f.column))
                    .push_bind(pattern.clone());
            }
            q.push(")");
        }
        q.push(")");
        Ok(())
    }
}

fn unknown(schema: &ObjectSchema, path: &str, hint: String) -> Error {
    Error::invalid_field(
        format!("filter[{path}]"),
        "unknown_field",
        format!("{} has no field '{path}' to filter on{hint}", schema.object),
    )
}

/// The relation fields of `other` that point to `object`, by column and key.
fn pointing_fields(other: &ObjectSchema, object: ObjectKey) -> Vec<(String, String)> {
    other
        .pointing_to(object)
        .map(|f| (f.key.to_owned(), f.column))
        .collect()
}

async fn other_schema(
    tx: &mut TenantTx,
    access: &Access<'_>,
    object: ObjectKey,
) -> Result<ObjectSchema> {
    access.require(object, RecordAction::Read)?;
    ObjectSchema::load(tx, object).await
}

/// Resolves one filter whose name is not a field of `schema`: `None` when it names no
/// relation either (the caller reports it as unknown).
async fn resolve(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    f: &Filter,
) -> Result<Option<CrossFilter>> {
    let Some((head, rest)) = f.field.split_once('.') else {
        return Ok(None);
    };
    if head == "custom" || head == "address" {
        return Ok(None);
    }
    // The listed record's own relation field: `policy.product`.
    if let Some((own, target)) = schema.relation(head) {
        let column = own.column;
        let other = other_schema(tx, access, target).await?;
        return Ok(Some(CrossFilter {
            path: f.field.clone(),
            scope: access.scope_on(target),
            other,
            link: Link::PointedBy(column),
            filter: Some(Filter {
                field: rest.to_owned(),
                ..f.clone()
            }),
        }));
    }
    // Another object pointing here: `policies.policy_no` or `policies.customer.policy_no`.
    let Some(object) = ObjectKey::named(head) else {
        return Ok(None);
    };
    // One read of the other object's schema, which also says whether the tenant has it.
    let other = match ObjectSchema::load(tx, object).await {
        Ok(other) => other,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    access.require(object, RecordAction::Read)?;
    let pointing = pointing_fields(&other, schema.object);
    let (column, field) = match rest.split_once('.') {
        Some((via, field)) if pointing.iter().any(|(k, _)| k == via) => {
            let column = pointing
                .iter()
                .find(|(k, _)| k == via)
                .map(|(_, c)| c.clone())
                .unwrap_or_default();
            (column, field)
        }
        _ => match pointing.as_slice() {
            [(_, column)] => (column.clone(), rest),
            [] => {
                return Err(unknown(
                    schema,
                    &f.field,
                    format!(
                        "; {object} has no relation field pointing to {}",
                        schema.object
                    ),
                ))
            }
            several => {
                return Err(Error::invalid_field(
                    format!("filter[{}]", f.field),
                    "ambiguous_relation",
                    format!(
                        "{object} points to {} through {}: name one, e.g. {head}.{}.{rest}",
                        schema.object,
                        several
                            .iter()
                            .map(|(k, _)| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        several[0].0
                    ),
                ))
            }
        },
    };
    Ok(Some(CrossFilter {
        path: f.field.clone(),
        scope: access.scope_on(object),
        other,
        link: Link::Pointing(column),
        filter: Some(Filter {
            field: field.to_owned(),
            ..f.clone()
        }),
    }))
}

/// The cross-object filters and related searches of a list query, resolved (their schemas
/// loaded) before the query is built. Filters on the object's own fields are left alone.
pub async fn prepare(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    lq: &ListQuery,
) -> Result<Vec<CrossFilter>> {
    let mut out = Vec::new();
    for f in &lq.filters {
        if crate::query::is_own_field(schema, &f.field) {
            continue;
        }
        if let Some(cross) = resolve(tx, schema, access, f).await? {
            out.push(cross);
        }
    }
    for raw in &lq.search_related {
        let object = ObjectKey::named(raw)
            .filter(|o| *o != schema.object)
            .ok_or_else(|| {
                Error::invalid_field(
                    "search_related",
                    "unknown_object",
                    format!("'{raw}' is not an object pointing to {}", schema.object),
                )
            })?;
        let other = other_schema(tx, access, object).await?;
        let pointing = pointing_fields(&other, schema.object);
        let Some((_, column)) = pointing.first() else {
            return Err(Error::invalid_field(
                "search_related",
                "unknown_object",
                format!(
                    "{object} has no relation field pointing to {}",
                    schema.object
                ),
            ));
        };
        out.push(CrossFilter {
            path: String::new(),
            scope: access.scope_on(object),
            link: Link::Pointing(column.clone()),
            other,
            filter: None,
        });
    }
    Ok(out)
}
