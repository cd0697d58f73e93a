//! The manifest a package's `describe()` returns, checked once at upload, and the install
//! config checked against the manifest's config schema (a small JSON Schema subset: `type`,
//! `properties`, `required`, `enum`).

use crm_core::authz::Permission;
use crm_core::error::FieldError;
use crm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An endpoint a plugin serves at `/api/v1/ext/{install}/{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
    pub permission: String,
    pub summary: String,
}

/// What a package is and asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub events: Vec<String>,
    pub endpoints: Vec<Endpoint>,
    /// JSON Schema text, empty for none.
    pub config_schema: String,
    pub permissions: Vec<String>,
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn bad(field: &str, message: String) -> FieldError {
    FieldError::new(format!("manifest.{field}"), "invalid", message)
}

impl Manifest {
    /// Checks every part; 422 `plugin.invalid` listing what is wrong.
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        let name_ok = self.name.len() >= 2
            && self.name.len() <= 40
            && self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            errors.push(bad(
                "name",
                format!(
                    "'{}' is not a plugin name: 2-40 characters, a-z, 0-9 and '-', starting with a letter",
                    self.name
                ),
            ));
        }
        if !is_semver(&self.version) {
            errors.push(bad(
                "version",
                format!("'{}' is not a version like 1.2.0", self.version),
            ));
        }
        for (i, event) in self.events.iter().enumerate() {
            if !is_event_pattern(event) {
                errors.push(bad(
                    &format!("events[{i}]"),
                    format!("'{event}' is not an event pattern: 'customers.created', 'customers.*' or '*'"),
                ));
            }
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if !METHODS.contains(&e.method.as_str()) {
                errors.push(bad(
                    &format!("endpoints[{i}].method"),
                    format!("'{}' is not one of {}", e.method, METHODS.join(", ")),
                ));
            }
            if !is_endpoint_path(&e.path) {
                errors.push(bad(
                    &format!("endpoints[{i}].path"),
                    format!("'{}' is not a path like 'leads/import' (a-z, 0-9, '-', '_', '/', no leading slash)", e.path),
                ));
            }
            if Permission::parse(&e.permission).is_none() {
                errors.push(bad(
                    &format!("endpoints[{i}].permission"),
                    format!("'{}' is not a permission", e.permission),
                ));
            }
        }
        for (i, a) in self.endpoints.iter().enumerate() {
            if self.endpoints[..i]
                .iter()
                .any(|b| a.method == b.method && a.path == b.path)
            {
                errors.push(bad(
                    &format!("endpoints[{i}]"),
                    format!("{} {} is declared twice", a.method, a.path),
                ));
            }
        }
        for (i, p) in self.permissions.iter().enumerate() {
            if Permission::parse(p).is_none() {
                errors.push(bad(
                    &format!("permissions[{i}]"),
                    format!("'{p}' is not a permission"),
                ));
            }
        }
        if !self.config_schema.trim().is_empty() {
            match serde_json::from_str::<Value>(&self.config_schema) {
                Ok(Value::Object(_)) => {}
                _ => errors.push(bad(
                    "config_schema",
                    "the config schema is not a JSON object".to_owned(),
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                code: "plugin.invalid",
                message: "the plugin's describe() returned a manifest with errors; fix them and rebuild the plugin".into(),
                fields: errors,
            })
        }
    }

    /// Whether the manifest asks for events named `event` (`customers.created`).
    pub fn wants(patterns: &[String], event: &str) -> bool {
        patterns.iter().any(|p| {
            p == "*"
                || p == event
                || p.strip_suffix(".*")
                    .is_some_and(|object| event.split_once('.').is_some_and(|(o, _)| o == object))
        })
    }

    /// The endpoint serving `method` `path`.
    pub fn endpoint(&self, method: &str, path: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.method.eq_ignore_ascii_case(method) && e.path == path)
    }

    /// Checks an install's `config` against the config schema; 422 `plugin.config_invalid`.
    pub fn check_config(&self, config: &Value) -> Result<()> {
        if !config.is_object() {
            return Err(Error::invalid_field(
                "config",
                "invalid",
                "config must be a JSON object",
            ));
        }
        if self.config_schema.trim().is_empty() {
            return Ok(());
        }
        let schema: Value = serde_json::from_str(&self.config_schema).unwrap_or(Value::Null);
        let mut errors = Vec::new();
        check_value(&schema, config, "config", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                code: "plugin.config_invalid",
                message: "the config does not match the plugin's config schema".into(),
                fields: errors,
            })
        }
    }
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.chars().all(|c| c.is_ascii_digit()))
        && v.len() <= 64
}

fn is_event_pattern(p: &str) -> bool {
    if p == "*" {
        return true;
    }
    let Some((object, action)) = p.split_once('.') else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    word(object) && (action == "*" || word(action))
}

fn is_endpoint_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && !p.starts_with('/')
        && !p.ends_with('/')
        && !p.contains("//")
        && p.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '/' | '.')
        })
        && !p.split('/').any(|s| s == "." || s == "..")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_value(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(value);
        let fits = got == want || (want == "number" && got == "integer");
        if !fits {
            errors.push(FieldError::new(
                path,
                "wrong_type",
                format!("must be of type {want}, not {got}"),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            errors.push(FieldError::new(
                path,
                "not_allowed",
                format!(
                    "must be one of {}",
                    serde_json::to_string(options).unwrap_or_default()
                ),
            ));
        }
    }
    if let Value::Object(map) = value {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    errors.push(FieldError::new(
                        format!("{path}.{key}"),
                        "required",
                        "is required",
                    ));
                }
            }
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                if let Some(v) = map.get(key) {
                    check_value(sub, v, &format!("{path}.{key}"), errors);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest() -> Manifest {
        Manifest {
            name: "enrich-region".into(),
            version: "1.0.0".into(),
            description: String::new(),
            events: vec!["customers.*".into(), "tickets.created".into()],
            endpoints: vec![Endpoint {
                method: "POST".into(),
                path: "leads/import".into(),
                permission: "customers:create".into(),
                summary: "Imports leads".into(),
            }],
            config_schema: r#"{"type":"object","required":["url"],"properties":{"url":{"type":"string"},"level":{"enum":["A","B"]}}}"#.into(),
            permissions: vec!["customers:read".into()],
        }
    }

    #[test]
    fn a_good_manifest_passes_and_bad_parts_are_named() {
        assert!(manifest().validate().is_ok());
        let mut m = manifest();
        m.name = "Bad Name".into();
        m.endpoints[0].path = "/../x".into();
        m.permissions.push("everything".into());
        let Err(Error::Invalid { fields, .. }) = m.validate() else {
            panic!("expected invalid")
        };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "manifest.name",
                "manifest.endpoints[0].path",
                "manifest.permissions[1]"
            ]
        );
    }

    #[test]
    fn event_patterns_match_objects_and_wildcards() {
        let p = manifest().events;
        assert!(Manifest::wants(&p, "customers.updated"));
        assert!(Manifest::wants(&p, "tickets.created"));
        assert!(!Manifest::wants(&p, "tickets.updated"));
        assert!(!Manifest::wants(&p, "customers_x.created"));
        assert!(Manifest::wants(&["*".into()], "policies.deleted"));
    }

    #[test]
    fn config_is_checked_against_the_schema() {
        let m = manifest();
        assert!(m
            .check_config(&json!({"url": "https://x", "level": "A"}))
            .is_ok());
        let Err(Error::Invalid { fields, .. }) = m.check_config(&json!({"level": "C"})) else {
            panic!("expected invalid")
        };
        assert_eq!(fields.len(), 2);
        assert!(m.check_config(&json!({"url": 3})).is_err());
    }
}
