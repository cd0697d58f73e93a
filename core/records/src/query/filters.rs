//! Filters of a list or count: `filter[<field>]=v` / `filter[<field>][<op>]=v` resolved
//! through the schema to a validated column (or a system column, or a part of the address),
//! with values parsed by the field's type and bound; sensitive and encrypted fields only as
//! the caller may see them.

use super::{Filter, Op};
use crate::engine::{is_array, Access};
use crate::meta::FieldType;
use crate::schema::{Field, ObjectSchema};
use crate::values::{self, SqlValue};
use crm_core::error::{Error, Result};
use serde_json::json;
use sqlx::{Postgres, QueryBuilder};

/// System columns that can be filtered and sorted.
const SYSTEM_ORDERED: &[(&str, FieldType)] = &[
    ("created_at", FieldType::Datetime),
    ("updated_at", FieldType::Datetime),
    ("created_by", FieldType::User),
];

/// A resolved column: a schema field or a system column.
pub(super) struct Target<'a> {
    pub(super) column: String,
    pub(super) ty: FieldType,
    pub(super) field: Option<Field<'a>>,
    /// `address.<part>`: a key inside the address object.
    pub(super) json_key: Option<&'static str>,
}

pub(super) fn resolve<'s>(schema: &'s ObjectSchema, name: &str) -> Option<Target<'s>> {
    if let Some(part) = name.strip_prefix("address.") {
        let part = ["province", "city", "district", "street", "postcode"]
            .into_iter()
            .find(|p| *p == part)?;
        schema.builtin("address")?;
        if part == "city" && schema.city_column {
            return Some(Target {
                column: "address_city".into(),
                ty: FieldType::Text,
                field: None,
                json_key: None,
            });
        }
        return Some(Target {
            column: "address".into(),
            ty: FieldType::Text,
            field: None,
            json_key: Some(part),
        });
    }
    if let Some((col, ty)) = SYSTEM_ORDERED
        .iter()
        .chain(crate::engine::extra_system(schema.object))
        .find(|(c, _)| *c == name)
    {
        return Some(Target {
            column: (*col).to_owned(),
            ty: *ty,
            field: None,
            json_key: None,
        });
    }
    let f = schema.resolve(name)?;
    Some(Target {
        column: f.column.clone(),
        ty: f.ty,
        field: Some(f),
        json_key: None,
    })
}

/// The SQL expression of a target.
pub(super) fn expr(t: &Target<'_>) -> String {
    match t.json_key {
        Some(k) => format!("(\"{}\" ->> '{k}')", t.column),
        None => format!("\"{}\"", t.column),
    }
}

pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub(super) fn parse_filter_value(t: &Target<'_>, path: &str, raw: &str) -> Result<SqlValue> {
    let spec_ty = if is_array(t.ty) {
        FieldType::Text
    } else {
        t.ty
    };
    let json = match spec_ty {
        FieldType::Boolean => match raw {
            "true" => json!(true),
            "false" => json!(false),
            _ => {
                return Err(Error::invalid_field(
                    path,
                    "invalid_type",
                    "expects true or false",
                ))
            }
        },
        _ => json!(raw),
    };
    let options: Vec<String> = t
        .field
        .as_ref()
        .map(|f| f.options.to_vec())
        .unwrap_or_default();
    let spec = values::Spec {
        ty: if spec_ty == FieldType::Select || t.ty == FieldType::MultiSelect {
            FieldType::Select
        } else {
            spec_ty
        },
        options: &options,
        target: t.field.as_ref().and_then(|f| f.target),
    };
    // Tags filter on any text; selects must name an option.
    let spec = if t.ty == FieldType::Tags {
        values::Spec {
            ty: FieldType::Text,
            ..spec
        }
    } else {
        spec
    };
    values::parse(&spec, path, &json).map_err(|e| Error::invalid(vec![e]))
}

/// Whether the field's values are masked for this caller (sensitive or encrypted, without
/// `sensitive:read`).
pub(super) fn hidden_from(t: &Target, access: &Access<'_>) -> bool {
    !access.unmask && t.field.as_ref().is_some_and(|f| f.sensitive || f.encrypted)
}

/// 403 for filtering, sorting or counting on a field the caller sees masked.
pub(super) fn sensitive_forbidden(field: &str, what: &str) -> Error {
    Error::forbidden(
        "field.sensitive",
        format!(
            "{what} '{field}' needs the permission sensitive:read, because its values are masked for you; ask an administrator for it or leave the field out"
        ),
    )
}

/// Whether `name` is a field (or system column, or address part) of the object itself.
pub(crate) fn is_own_field(schema: &ObjectSchema, name: &str) -> bool {
    resolve(schema, name).is_some()
}

pub(crate) fn push_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    schema: &ObjectSchema,
    access: &Access<'_>,
    f: &Filter,
) -> Result<()> {
    let path = format!("filter[{}]", f.field);
    let t = resolve(schema, &f.field).ok_or_else(|| {
        Error::invalid_field(
            path.clone(),
            "unknown_field",
            format!("{} has no field '{}' to filter on", schema.object, f.field),
        )
    })?;
    let encrypted = t.field.as_ref().is_some_and(|f| f.encrypted);
    if hidden_from(&t, access) {
        // Any match, exact ones included, would let a caller who sees only masked values
        // test guesses against the real ones (an oracle through lists and counts).
        return Err(sensitive_forbidden(&f.field, "filtering on"));
    }
    let e = expr(&t);
    if f.op == Op::IsNull {
        let yes = match f.value.as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(Error::invalid_field(
                    path,
                    "invalid_type",
                    "is_null expects true or false",
                ))
            }
        };
        let cond = if is_array(t.ty) {
            format!("(cardinality({e}) = 0)")
        } else {
            format!("({e} IS NULL)")
        };
        q.push(if yes {
            format!(" AND {cond}")
        } else {
            format!(" AND NOT {cond}")
        });
        return Ok(());
    }
    if encrypted {
        // Exact matches only, through the blind index.
        let field = t
            .field
            .as_ref()
            .ok_or_else(|| Error::internal("encrypted target without field"))?;
        let key = access
            .data_key
            .ok_or_else(|| Error::internal("data key not loaded"))?;
        let bidx = format!("\"{}_bidx\"", t.column);
        let index_of = |raw: &str| -> Result<String> {
            match values::parse(&field.spec(), &path, &json!(raw))
                .map_err(|e| Error::invalid(vec![e]))?
            {
                SqlValue::Text(plain) => Ok(key.blind_index(&t.column, &plain)),
                _ => Err(Error::invalid_field(
                    path.clone(),
                    "invalid",
                    "expects a value",
                )),
            }
        };
        match f.op {
            Op::Eq => {
                q.push(format!(" AND {bidx} = "))
                    .push_bind(index_of(&f.value)?);
            }
            Op::Ne => {
                q.push(format!(" AND {bidx} IS DISTINCT FROM "))
                    .push_bind(index_of(&f.value)?);
            }
            Op::In => {
                let all: Vec<String> = f
                    .value
                    .split(',')
                    .map(|v| index_of(v.trim()))
                    .collect::<Result<_>>()?;
                q.push(format!(" AND {bidx} = ANY("))
                    .push_bind(all)
                    .push(")");
            }
            _ => {
                return Err(Error::invalid_field(
                    path,
                    "unsupported_operator",
                    "encrypted fields support eq, ne, in and is_null only",
                ))
            }
        }
        return Ok(());
    }
    match f.op {
        Op::Contains => {
            if is_array(t.ty) {
                let v = parse_filter_value(&t, &path, &f.value)?;
                q.push(format!(" AND {e} @> ARRAY["));
                v.push_bind(q);
                q.push("]::text[]");
            } else if t.ty.is_textual() || t.json_key.is_some() {
                let needle = if t.ty == FieldType::Phone {
                    f.value
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect::<String>()
                } else {
                    f.value.clone()
                };
                q.push(format!(" AND {e} ILIKE "))
                    .push_bind(format!("%{}%", escape_like(&needle)));
            } else {
                return Err(Error::invalid_field(
                    path,
                    "unsupported_operator",
                    "contains works on text, tags and multi_select fields",
                ));
            }
        }
        Op::In if is_array(t.ty) => {
            // Has any of the values.
            q.push(format!(" AND {e} && ARRAY["));
            for (i, raw) in f.value.split(',').enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                parse_filter_value(&t, &path, raw.trim())?.push_bind(q);
            }
            q.push("]::text[]");
        }
        Op::In => {
            q.push(format!(" AND {e} IN ("));
            for (i, raw) in f.value.split(',').enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                parse_filter_value(&t, &path, raw.trim())?.push_bind(q);
            }
            q.push(")");
        }
        op => {
            if is_array(t.ty) {
                if op != Op::Eq {
                    return Err(Error::invalid_field(
                        path,
                        "unsupported_operator",
                        "list fields support eq (has the value), contains and is_null",
                    ));
                }
                let v = parse_filter_value(&t, &path, &f.value)?;
                q.push(format!(" AND {e} @> ARRAY["));
                v.push_bind(q);
                q.push("]::text[]");
                return Ok(());
            }
            if matches!(op, Op::Lt | Op::Lte | Op::Gt | Op::Gte) && !t.ty.is_ordered() {
                return Err(Error::invalid_field(
                    path,
                    "unsupported_operator",
                    "this field has no order; use eq, ne, in or is_null",
                ));
            }
            let sql_op = match op {
                Op::Eq => "=",
                Op::Ne => "IS DISTINCT FROM",
                Op::Lt => "<",
                Op::Lte => "<=",
                Op::Gt => ">",
                _ => ">=",
            };
            q.push(format!(" AND {e} {sql_op} "));
            parse_filter_value(&t, &path, &f.value)?.push_bind(q);
        }
    }
    Ok(())
}
