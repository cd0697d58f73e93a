//! Tenant slugs: the short name in URLs and logins (`acme` in acme.example.com).

use crm_core::FieldError;
use std::fmt;

/// 3–40 characters `[a-z0-9-]`, starting and ending with a letter or digit, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantSlug(String);

/// Names kept for the platform's own hosts and routes.
pub const RESERVED: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "billing",
    "cdn",
    "crm",
    "dashboard",
    "docs",
    "graphql",
    "health",
    "healthz",
    "help",
    "login",
    "logout",
    "mail",
    "metrics",
    "platform",
    "portal",
    "postgres",
    "public",
    "readyz",
    "root",
    "signup",
    "smtp",
    "static",
    "status",
    "support",
    "system",
    "tenant",
    "tenants",
    "www",
];

impl TenantSlug {
    /// Shortest slug accepted (ASCII, so bytes are characters).
    pub const MIN_LEN: usize = 3;
    /// Longest slug accepted.
    pub const MAX_LEN: usize = 40;

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let well_formed = (Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !raw.starts_with('-')
            && !raw.ends_with('-')
            && !raw.contains("--");
        if !well_formed {
            return Err(FieldError::new(
                field,
                "invalid_slug",
                format!(
                    "'{raw}' is not a valid tenant slug: use {}-{} characters a-z, 0-9 and single '-' inside, e.g. 'acme-trading'",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if RESERVED.contains(&raw) {
            return Err(FieldError::new(
                field,
                "reserved_slug",
                format!("'{raw}' is reserved; choose another slug"),
            ));
        }
        Ok(TenantSlug(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_slugs() {
        for ok in ["acme", "abc", "tc-crm-2", &"a".repeat(40)] {
            assert!(TenantSlug::parse("slug", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_and_reserved_slugs() {
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "acme_co",
            "阿里",
            "a b c",
            "x;drop",
            &"a".repeat(41),
        ] {
            assert!(TenantSlug::parse("slug", bad).is_err(), "{bad}");
        }
        let reserved = TenantSlug::parse("slug", "admin");
        assert!(matches!(reserved, Err(e) if e.code == "reserved_slug"));
    }
}
