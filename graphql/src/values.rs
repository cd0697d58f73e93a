//! Values across the border: a record's JSON (as the record services return it, already
//! masked) to GraphQL output by field type, and GraphQL input back to the JSON body the
//! services parse — so validation and its errors are the REST API's own.

use crate::model::{FieldModel, ObjectModel};
use async_graphql::dynamic::{FieldValue, ObjectAccessor, ValueAccessor};
use async_graphql::{Name, Value as GqlValue};
use crm_records::meta::FieldType;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A record handed between resolvers.
#[derive(Clone)]
pub struct Rec(pub Arc<Value>);

impl Rec {
    pub fn new(v: Value) -> Rec {
        Rec(Arc::new(v))
    }

    pub fn id(&self) -> Option<uuid::Uuid> {
        self.0["id"].as_str().and_then(|s| s.parse().ok())
    }
}

/// An address (a JSON object) handed to the `Address` type.
pub struct AddressValue(pub Value);

/// The JSON value of `field` in `record`.
pub fn raw<'v>(field: &FieldModel, record: &'v Value) -> &'v Value {
    if field.nested {
        &record["custom"][field.key.as_str()]
    } else {
        &record[field.key.as_str()]
    }
}

/// `field`'s value as GraphQL output (`None` for null, or a value of another shape, such as
/// a masked number).
pub fn output(field: &FieldModel, value: &Value) -> Option<FieldValue<'static>> {
    let v = match (field.ty, value) {
        (_, Value::Null) => return None,
        (FieldType::Select, Value::String(s)) => {
            let name = field.options.as_ref()?.value_of(s)?;
            GqlValue::Enum(Name::new(name))
        }
        (FieldType::MultiSelect, Value::Array(items)) => {
            let options = field.options.as_ref()?;
            GqlValue::List(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|s| options.value_of(s))
                    .map(|n| GqlValue::Enum(Name::new(n)))
                    .collect(),
            )
        }
        (FieldType::Address, Value::Object(_)) => {
            return Some(FieldValue::owned_any(AddressValue(value.clone())))
        }
        (FieldType::Tags, Value::Array(items)) => GqlValue::List(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| GqlValue::String(s.to_owned()))
                .collect(),
        ),
        (FieldType::Integer, Value::Number(n)) => GqlValue::Number(n.clone()),
        (FieldType::Decimal | FieldType::Currency | FieldType::Rollup, Value::Number(n)) => {
            GqlValue::String(n.to_string())
        }
        (FieldType::Boolean, Value::Bool(b)) => GqlValue::Boolean(*b),
        (FieldType::Integer | FieldType::Boolean | FieldType::MultiSelect | FieldType::Tags, _) => {
            return None
        }
        (_, Value::String(s)) => GqlValue::String(s.clone()),
        (_, other) => GqlValue::String(other.to_string()),
    };
    Some(FieldValue::value(v))
}

/// The JSON body for a create or update from a `<Type>Input` argument: only the fields the
/// client sent (an explicit `null` clears), enum values back to their options, a built-in
/// object's custom fields inside `custom`.
pub fn input_body(model: &ObjectModel, input: &ObjectAccessor<'_>) -> Result<Value, String> {
    let mut body = Map::new();
    for field in model.writable() {
        if let Some(v) = input.get(&field.gql) {
            body.insert(field.key.clone(), input_value(field, &v)?);
        }
    }
    if let (Some(custom), false) = (input.get("custom"), model.custom_fields.is_empty()) {
        let custom = custom.object().map_err(|e| e.message)?;
        let mut out = Map::new();
        for field in model.custom_fields.iter().filter(|f| !f.read_only) {
            if let Some(v) = custom.get(&field.gql) {
                out.insert(field.key.clone(), input_value(field, &v)?);
            }
        }
        body.insert("custom".into(), Value::Object(out));
    }
    Ok(Value::Object(body))
}

fn input_value(field: &FieldModel, v: &ValueAccessor<'_>) -> Result<Value, String> {
    let value = v
        .as_value()
        .clone()
        .into_json()
        .map_err(|e| e.to_string())?;
    Ok(match (&field.options, value) {
        (Some(options), Value::String(name)) => {
            Value::String(options.option_of(&name).unwrap_or(&name).to_owned())
        }
        (Some(options), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::String(name) => {
                        Value::String(options.option_of(&name).unwrap_or(&name).to_owned())
                    }
                    other => other,
                })
                .collect(),
        ),
        (_, other) => other,
    })
}

/// A filter value as the REST query string writes it: enum values back to options, lists
/// comma-joined, booleans `true`/`false`.
pub fn filter_value(field: &FieldModel, v: &GqlValue) -> String {
    let one = |v: &GqlValue| -> String {
        match v {
            GqlValue::Enum(name) => field
                .options
                .as_ref()
                .and_then(|o| o.option_of(name.as_str()))
                .unwrap_or(name.as_str())
                .to_owned(),
            GqlValue::String(s) => s.clone(),
            GqlValue::Boolean(b) => b.to_string(),
            GqlValue::Number(n) => n.to_string(),
            other => other.to_string(),
        }
    };
    match v {
        GqlValue::List(items) => items.iter().map(one).collect::<Vec<_>>().join(","),
        other => one(other),
    }
}
