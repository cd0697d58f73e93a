//! Small validated newtypes: parse at the edge, then the type carries the proof.

use crate::error::{Error, FieldError, Result};
use serde::Serialize;
use std::fmt;

/// A lower-cased e-mail address with one `@` and a dotted domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Email(String);

impl Email {
    /// Longest address accepted, in bytes (UTF-8) after trimming and lower-casing.
    pub const MAX_BYTES: usize = 254;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim().to_lowercase();
        let invalid = || {
            FieldError::new(
                field,
                "invalid_email",
                format!("'{raw}' is not an e-mail address; expected e.g. name@example.com"),
            )
        };
        if value.len() > Self::MAX_BYTES
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        Ok(Email(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human-readable name (person, team, tenant): trimmed, 1–200 characters, no control chars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest name accepted, in characters after trimming.
    pub const MAX_CHARS: usize = 200;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new(field, "required", "must not be empty"));
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "invalid",
                "must not contain control characters",
            ));
        }
        Ok(DisplayName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password past the floor every policy shares: 8–256 characters, not a single repeated
/// character. The tenant's own rules come on top ([`crate::password_policy`]).
pub struct Password(String);

impl Password {
    /// Shortest password accepted, in characters: the floor under every tenant's password
    /// policy (`crate::password_policy`, which asks for 10 unless the tenant lowers it).
    pub const MIN_CHARS: usize = 8;
    /// Longest password accepted, in characters.
    pub const MAX_CHARS: usize = 256;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if len < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                "too_short",
                format!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        if len > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        let mut chars = raw.chars();
        if let Some(first) = chars.next() {
            if chars.all(|c| c == first) {
                return Err(FieldError::new(
                    field,
                    "too_weak",
                    "must not be one character repeated",
                ));
            }
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A role name: `[a-z][a-z0-9_-]{1,39}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RoleName(String);

impl RoleName {
    /// Shortest role name accepted (ASCII, so bytes are characters).
    pub const MIN_LEN: usize = 2;
    /// Longest role name accepted.
    pub const MAX_LEN: usize = 40;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let ok = (Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(RoleName(raw.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                "invalid_role_name",
                format!(
                    "'{raw}' is not a role name: use {}-{} characters a-z, 0-9, '_' or '-', starting with a letter",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects field errors while parsing a request body, then fails with all of them at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records its error and returns `None`.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `Ok(())` when nothing was wrong, else a 422 listing every field error.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse("email", " Li.Lei@Example.COM ")
                .map(|e| e.0)
                .ok(),
            Some("li.lei@example.com".to_owned())
        );
        for bad in [
            "",
            "no-at",
            "@x.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@com.",
            "a@b..com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_accept_chinese_and_refuse_blank() {
        assert_eq!(
            DisplayName::parse("name", " 张伟 ").map(|n| n.0).ok(),
            Some("张伟".to_owned())
        );
        assert!(DisplayName::parse("name", "   ").is_err());
        assert!(DisplayName::parse("name", "a\u{0}b").is_err());
        assert!(DisplayName::parse("name", &"名".repeat(201)).is_err());
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("p", "short").is_err());
        assert!(Password::parse("p", "aaaaaaaaaaaa").is_err());
        assert!(Password::parse("p", "密码密码密码密码密码强").is_ok());
        assert!(Password::parse("p", "correct horse").is_ok());
        assert!(Password::parse("p", &"ab".repeat(129)).is_err());
    }

    #[test]
    fn role_names() {
        for ok in ["admin", "sales-lead", "team_2"] {
            assert!(RoleName::parse("name", ok).is_ok(), "{ok}");
        }
        for bad in ["a", "Admin", "1abc", "drop table", "x;y", &"a".repeat(41)] {
            assert!(RoleName::parse("name", bad).is_err(), "{bad}");
        }
    }
}

/// A custom object's key: its plural API name (`policies`), `[a-z][a-z0-9_]{1,23}`, not the
/// name of a built-in object or permission. It names the paths (`/records/policies`), the
/// permissions (`policies:read`), the table (`o_policies`) and the events
/// (`policies.created`). Held inline, so it is `Copy` like the built-in object keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    len: u8,
    bytes: [u8; ObjectName::MAX_LEN],
}

/// Names a custom object may not take: the built-in objects, the other permission objects
/// and API nouns that would read ambiguously next to them.
pub const RESERVED_OBJECT_NAMES: &[&str] = &[
    "customers",
    "contacts",
    "opportunities",
    "activities",
    "tasks",
    "tickets",
    "fields",
    "objects",
    "workflows",
    "plugins",
    "reports",
    "users",
    "roles",
    "api_keys",
    "audit",
    "sensitive",
    "tenant",
    "teams",
    "tags",
    "files",
    "attachments",
    "comments",
    "approvals",
    "rules",
    "jobs",
    "pipelines",
    "settings",
    "records",
    "notifications",
    "history",
    "timeline",
    "calendar",
    "mail",
    "portal",
    "auth",
    "me",
    "imports",
    "exports",
    "layouts",
];

impl ObjectName {
    /// Shortest key accepted.
    pub const MIN_LEN: usize = 2;
    /// Longest key accepted (ASCII, so bytes are characters): `o_<key>` and the index names
    /// built from it stay within PostgreSQL's 63-byte identifiers.
    pub const MAX_LEN: usize = 24;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let well_formed = (Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !raw.ends_with('_')
            && !raw.contains("__");
        if !well_formed {
            return Err(FieldError::new(
                field,
                "invalid_key",
                format!(
                    "'{raw}' is not an object key: use {}-{} characters a-z, 0-9 and '_', starting with a letter, plural (e.g. 'policies')",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if RESERVED_OBJECT_NAMES.contains(&raw) {
            return Err(FieldError::new(
                field,
                "reserved_key",
                format!("'{raw}' is a built-in name; choose another key"),
            ));
        }
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw.as_bytes());
        Ok(ObjectName {
            len: raw.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked by `parse`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectName({})", self.as_str())
    }
}

impl Serialize for ObjectName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod object_name_tests {
    use super::ObjectName;

    #[test]
    fn object_names() {
        for ok in ["policies", "claims", "test_drives", "v2_orders"] {
            assert_eq!(
                ObjectName::parse("key", ok).map(|n| n.to_string()).ok(),
                Some(ok.to_owned())
            );
        }
        for bad in [
            "",
            "a",
            "Policies",
            "1policies",
            "pol-icies",
            "policies_",
            "a__b",
            "customers",
            "objects",
            "名字",
            &"a".repeat(25),
        ] {
            assert!(ObjectName::parse("key", bad).is_err(), "{bad}");
        }
    }
}
