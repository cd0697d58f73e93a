//! JSON Schema constraints on the properties of request schemas, and writing them into a
//! generated OpenAPI document without disturbing the rest of it (key order included).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where in a property's schema its rules go.
#[derive(Debug, Clone, Copy)]
pub(super) enum At {
    /// The property itself.
    Property,
    /// Each item of an array property.
    Items,
    /// Each value of a map property (`additionalProperties`).
    Values,
}

/// One constraint; a note is added to the property's description.
#[derive(Debug, Clone)]
pub(super) enum Rule {
    MinLength(usize),
    MaxLength(usize),
    Pattern(String),
    Enum(Vec<String>),
    Minimum(i64),
    Maximum(i64),
    MinItems(usize),
    MaxItems(usize),
    Note(String),
}

impl Rule {
    /// The JSON Schema keyword, its value, and the types it applies to.
    pub(super) fn keyword(&self) -> (&'static str, Value, &'static [&'static str]) {
        const STRING: &[&str] = &["string"];
        const NUMBER: &[&str] = &["integer", "number"];
        const ARRAY: &[&str] = &["array"];
        match self {
            Rule::MinLength(n) => ("minLength", json!(n), STRING),
            Rule::MaxLength(n) => ("maxLength", json!(n), STRING),
            Rule::Pattern(p) => ("pattern", json!(p), STRING),
            Rule::Enum(names) => ("enum", json!(names), STRING),
            Rule::Minimum(n) => ("minimum", json!(n), NUMBER),
            Rule::Maximum(n) => ("maximum", json!(n), NUMBER),
            Rule::MinItems(n) => ("minItems", json!(n), ARRAY),
            Rule::MaxItems(n) => ("maxItems", json!(n), ARRAY),
            Rule::Note(text) => ("description", json!(text), &[]),
        }
    }
}

pub(super) type Name = &'static str;

/// The rules of one property of one schema.
#[derive(Debug)]
pub(super) struct Limit {
    pub(super) schema: Name,
    pub(super) property: Name,
    pub(super) at: At,
    pub(super) rules: Vec<Rule>,
}

pub(super) fn on(schema: Name, property: Name, rules: Vec<Rule>) -> Limit {
    Limit::new(schema, property, At::Property, rules)
}

pub(super) fn each(schema: Name, property: Name, rules: Vec<Rule>) -> Limit {
    Limit::new(schema, property, At::Items, rules)
}

pub(super) fn per_key(schema: Name, property: Name, rules: Vec<Rule>) -> Limit {
    Limit::new(schema, property, At::Values, rules)
}

impl Limit {
    fn new(schema: Name, property: Name, at: At, rules: Vec<Rule>) -> Self {
        Self {
            schema,
            property,
            at,
            rules,
        }
    }
}

/// A JSON document that keeps its keys in order (serde_json's `Value` sorts them), so the
/// patched document reads, and renders in the Swagger UI, like the generated one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Json {
    Object(IndexMap<String, Json>),
    Array(Vec<Json>),
    Scalar(Value),
}

impl Json {
    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.object()?.get_mut(key)
    }

    fn object(&mut self) -> Option<&mut IndexMap<String, Json>> {
        match self {
            Json::Object(map) => Some(map),
            _ => None,
        }
    }
}

/// The document with `limits` written in, and what could not be written.
pub(super) fn patched(spec: &str, limits: &[Limit]) -> serde_json::Result<(String, Vec<String>)> {
    let mut doc: Json = serde_json::from_str(spec)?;
    let mut problems = Vec::new();
    for limit in limits {
        let place = format!("{}.{}", limit.schema, limit.property);
        let property = doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(limit.schema))
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(limit.property))
            .and_then(Json::object);
        let Some(property) = property else {
            problems.push(format!("{place}: not in the document"));
            continue;
        };
        for rule in &limit.rules {
            if let Err(problem) = write(property, limit.at, rule) {
                problems.push(format!("{place}: {problem}"));
            }
        }
    }
    Ok((serde_json::to_string_pretty(&doc)?, problems))
}

fn write(property: &mut IndexMap<String, Json>, at: At, rule: &Rule) -> Result<(), String> {
    if let Rule::Note(text) = rule {
        let described = match property.get("description") {
            Some(Json::Scalar(Value::String(before))) => format!("{before}\n\n{text}"),
            _ => text.clone(),
        };
        property.insert("description".into(), Json::Scalar(Value::String(described)));
        return Ok(());
    }
    let target = match at {
        At::Property => Some(property),
        At::Items => property.get_mut("items").and_then(Json::object),
        At::Values => property
            .get_mut("additionalProperties")
            .and_then(Json::object),
    };
    let target = target.ok_or_else(|| format!("has no schema for its {at:?}").to_lowercase())?;
    let (keyword, value, types) = rule.keyword();
    let ty = match target.get("type") {
        Some(Json::Scalar(Value::String(ty))) => ty.as_str(),
        _ => "(none)",
    };
    if !types.contains(&ty) {
        return Err(format!("{keyword} does not apply to type {ty}"));
    }
    target.insert(keyword.into(), Json::Scalar(value));
    Ok(())
}

pub(super) fn len(min: usize, max: usize) -> Vec<Rule> {
    vec![Rule::MinLength(min), Rule::MaxLength(max)]
}

pub(super) fn range(min: i64, max: i64) -> Vec<Rule> {
    vec![Rule::Minimum(min), Rule::Maximum(max)]
}

pub(super) fn one_of(names: &[&str]) -> Vec<Rule> {
    vec![Rule::Enum(names.iter().map(|n| (*n).to_owned()).collect())]
}

/// An enum of every value's name.
pub(super) fn named<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<Rule> {
    let names: Vec<_> = all.iter().map(|v| name(*v)).collect();
    one_of(&names)
}

pub(super) fn plus(mut rules: Vec<Rule>, rule: Rule) -> Vec<Rule> {
    rules.push(rule);
    rules
}

pub(super) fn note(text: &str) -> Rule {
    Rule::Note(text.to_owned())
}
