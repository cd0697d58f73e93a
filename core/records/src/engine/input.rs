//! What a client sends, validated against the object's schema: each known field parsed by
//! its type, read-only and unknown keys refused by name, defaults and required fields applied
//! on create. A custom object's fields sit at the top level; a built-in object's inside
//! `custom`.

use super::extra_system;
use crate::meta::{FieldType, SYSTEM_FIELDS};
use crate::schema::{Field, ObjectSchema};
use crate::values::{self, SqlValue};
use crm_core::domain::Validator;
use crm_core::error::{Error, FieldError, Result};
use serde_json::Value;

/// A validated input: the fields it sets, in schema order.
pub struct Input<'s> {
    pub values: Vec<(Field<'s>, SqlValue)>,
}

impl<'s> Input<'s> {
    pub fn get(&self, key: &str) -> Option<&SqlValue> {
        self.values
            .iter()
            .find(|(f, _)| !f.custom && f.key == key)
            .map(|(_, v)| v)
    }

    /// Sets a built-in field (hooks deriving values, e.g. a default owner or probability).
    pub fn set(&mut self, schema: &'s ObjectSchema, key: &str, value: SqlValue) {
        if let Some(slot) = self
            .values
            .iter_mut()
            .find(|(f, _)| !f.custom && f.key == key)
        {
            slot.1 = value;
        } else if let Some(field) = schema.builtin(key) {
            self.values.push((field, value));
        }
    }
}

/// Validates a JSON body against the schema. Unknown keys, read-only keys and values of the
/// wrong type are refused, each naming its field.
pub fn parse_input<'s>(
    schema: &'s ObjectSchema,
    body: &Value,
    creating: bool,
) -> Result<Input<'s>> {
    let Some(obj) = body.as_object() else {
        return Err(Error::bad_request(
            "request.invalid",
            "the body must be a JSON object",
        ));
    };
    let mut v = Validator::new();
    let mut values: Vec<(Field<'s>, SqlValue)> = Vec::new();
    let mut check = |v: &mut Validator, f: Field<'s>, raw: &Value| {
        let path = f.path();
        if f.ty == FieldType::Rollup {
            v.push(FieldError::new(
                path,
                "read_only",
                "is a roll-up the server keeps from related records",
            ));
            return;
        }
        if let Some(value) = v.check(values::parse(&f.spec(), &path, raw)) {
            if value == SqlValue::Null && f.required {
                v.push(FieldError::new(
                    path,
                    "required",
                    "is required and cannot be empty",
                ));
                return;
            }
            values.push((f, value));
        }
    };
    for (k, raw) in obj {
        if k == "custom" && schema.object.is_custom() {
            v.push(FieldError::new(
                "custom",
                "unknown_field",
                format!(
                    "{}'s fields sit at the top level of a record, without a \"custom\" wrapper",
                    schema.object
                ),
            ));
        } else if k == "custom" {
            let Some(custom) = raw.as_object() else {
                v.push(FieldError::new(
                    "custom",
                    "invalid_type",
                    "expects an object of custom field values",
                ));
                continue;
            };
            for (ck, craw) in custom {
                match schema.custom_field(ck) {
                    Some(f) => check(&mut v, f, craw),
                    None => v.push(FieldError::new(
                        format!("custom.{ck}"),
                        "unknown_field",
                        format!(
                            "{} has no custom field '{ck}'; defined: {}",
                            schema.object,
                            if schema.custom.is_empty() {
                                "none".to_owned()
                            } else {
                                schema
                                    .custom
                                    .iter()
                                    .map(|d| d.key.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    )),
                }
            }
        } else if SYSTEM_FIELDS.contains(&k.as_str())
            || extra_system(schema.object).iter().any(|(c, _)| c == k)
        {
            v.push(FieldError::new(
                k.clone(),
                "read_only",
                "is set by the server",
            ));
        } else if let Some(f) = schema.builtin(k) {
            check(&mut v, f, raw);
        } else if let Some(f) = schema.custom_field(k).filter(|_| schema.object.is_custom()) {
            check(&mut v, f, raw);
        } else {
            let hint = if schema.object.is_custom() {
                format!(
                    "; its fields: {}",
                    schema.all().map(|f| f.key).collect::<Vec<_>>().join(", ")
                )
            } else {
                "; custom fields go inside \"custom\"".to_owned()
            };
            v.push(FieldError::new(
                k.clone(),
                "unknown_field",
                format!("{} has no field '{k}'{hint}", schema.object),
            ));
        }
    }
    if creating {
        let custom = obj.get("custom").and_then(Value::as_object);
        for f in schema.all() {
            let given = if f.nested {
                custom.is_some_and(|c| c.contains_key(f.key))
            } else {
                obj.contains_key(f.key)
            };
            if given {
                continue;
            }
            if let Some(default) = f.default {
                if let Some(value) = v.check(values::parse(&f.spec(), &f.path(), default)) {
                    values.push((f, value));
                }
            } else if f.required {
                v.push(FieldError::new(f.path(), "required", "is required"));
            }
        }
    }
    v.finish()?;
    Ok(Input { values })
}
