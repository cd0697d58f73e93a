//! A tenant's password policy: minimum length, character classes, a list of common
//! passwords, no reuse of the last N, expiry in days. Stored in the tenant's `settings`;
//! [`PasswordPolicy::vet`] turns a new password into a [`Password`] or one 422
//! `password.policy` whose message names every rule it breaks.
//!
//! The defaults (a tenant that never touched them, and sign-up, before a tenant exists): at
//! least 10 characters, no class rules, common passwords refused, no history, no expiry.

use crate::db::TenantTx;
use crate::domain::Password;
use crate::error::{Error, FieldError, Result};
use crate::identity;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::OnceLock;

/// Shortest minimum a tenant may set (the [`Password`] floor).
pub const MIN_LENGTH_FLOOR: i32 = Password::MIN_CHARS as i32;
/// Longest minimum a tenant may set.
pub const MIN_LENGTH_CEILING: i32 = 128;
/// Most earlier passwords remembered: each costs one argon2 verification per change.
pub const MAX_HISTORY: i32 = 24;
/// Longest expiry a tenant may set.
pub const MAX_EXPIRY_DAYS: i32 = 3650;

/// The rules a new password must meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_length: i32,
    pub require_upper: bool,
    pub require_lower: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    /// Refuse the passwords of the embedded common-password list (case-insensitive).
    pub reject_common: bool,
    /// Days after which a password must be changed at the next login; `None`: never.
    pub expiry_days: Option<i32>,
    /// How many of the user's latest passwords (the current one included) a change may not
    /// reuse; 0: no history check.
    pub history: i32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 10,
            require_upper: false,
            require_lower: false,
            require_digit: false,
            require_symbol: false,
            reject_common: true,
            expiry_days: None,
            history: 0,
        }
    }
}

/// The settings row as stored (columns `password_*`), read through its JSON so a tenant one
/// schema version behind reads the defaults.
#[derive(Deserialize)]
#[serde(default)]
struct Stored {
    password_min_length: i32,
    password_require_upper: bool,
    password_require_lower: bool,
    password_require_digit: bool,
    password_require_symbol: bool,
    password_reject_common: bool,
    password_expiry_days: Option<i32>,
    password_history: i32,
}

impl Default for Stored {
    fn default() -> Self {
        let d = PasswordPolicy::default();
        Self {
            password_min_length: d.min_length,
            password_require_upper: d.require_upper,
            password_require_lower: d.require_lower,
            password_require_digit: d.require_digit,
            password_require_symbol: d.require_symbol,
            password_reject_common: d.reject_common,
            password_expiry_days: d.expiry_days,
            password_history: d.history,
        }
    }
}

/// One rule a password breaks: a stable code and the phrase that completes "the password
/// must …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRule {
    pub code: &'static str,
    pub phrase: String,
}

impl PasswordPolicy {
    /// The tenant's policy.
    pub async fn load(tx: &mut TenantTx) -> Result<PasswordPolicy> {
        let row: serde_json::Value = sqlx::query_scalar("SELECT to_jsonb(s) FROM settings s")
            .fetch_one(tx.conn())
            .await?;
        let s: Stored = serde_json::from_value(row)
            .map_err(|e| Error::internal(format!("password policy unreadable: {e}")))?;
        Ok(PasswordPolicy {
            min_length: s.password_min_length,
            require_upper: s.password_require_upper,
            require_lower: s.password_require_lower,
            require_digit: s.password_require_digit,
            require_symbol: s.password_require_symbol,
            reject_common: s.password_reject_common,
            expiry_days: s.password_expiry_days,
            history: s.password_history,
        })
    }

    /// Stores the policy (checked with [`PasswordPolicy::validate`] first).
    pub(crate) async fn save(&self, tx: &mut TenantTx) -> Result<()> {
        sqlx::query(
            "UPDATE settings SET password_min_length = $1, password_require_upper = $2, \
               password_require_lower = $3, password_require_digit = $4, \
               password_require_symbol = $5, password_reject_common = $6, \
               password_expiry_days = $7, password_history = $8, updated_at = now()",
        )
        .bind(self.min_length)
        .bind(self.require_upper)
        .bind(self.require_lower)
        .bind(self.require_digit)
        .bind(self.require_symbol)
        .bind(self.reject_common)
        .bind(self.expiry_days)
        .bind(self.history)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    /// The policy's own numbers, each out of range named under `field`.
    pub fn validate(&self, field: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !(MIN_LENGTH_FLOOR..=MIN_LENGTH_CEILING).contains(&self.min_length) {
            errors.push(FieldError::new(
                format!("{field}.min_length"),
                "out_of_range",
                format!("use {MIN_LENGTH_FLOOR} to {MIN_LENGTH_CEILING}"),
            ));
        }
        if self
            .expiry_days
            .is_some_and(|d| !(1..=MAX_EXPIRY_DAYS).contains(&d))
        {
            errors.push(FieldError::new(
                format!("{field}.expiry_days"),
                "out_of_range",
                format!("use 1 to {MAX_EXPIRY_DAYS} days, or null for no expiry"),
            ));
        }
        if !(0..=MAX_HISTORY).contains(&self.history) {
            errors.push(FieldError::new(
                format!("{field}.history"),
                "out_of_range",
                format!("use 0 (no history) to {MAX_HISTORY}"),
            ));
        }
        errors
    }

    /// Every rule `raw` breaks, history aside: the [`Password`] floor, then the policy's.
    pub fn broken_rules(&self, raw: &str) -> Vec<BrokenRule> {
        let mut broken = Vec::new();
        let chars = raw.chars().count();
        if chars < usize::try_from(self.min_length).unwrap_or(Password::MIN_CHARS) {
            broken.push(rule(
                "too_short",
                format!("be at least {} characters", self.min_length),
            ));
        }
        if chars > Password::MAX_CHARS {
            broken.push(rule(
                "too_long",
                format!("be at most {} characters", Password::MAX_CHARS),
            ));
        }
        let mut missing = Vec::new();
        let classes: [(bool, CharClass, &str); 4] = [
            (
                self.require_upper,
                char::is_uppercase,
                "an upper-case letter",
            ),
            (
                self.require_lower,
                char::is_lowercase,
                "a lower-case letter",
            ),
            (self.require_digit, char::is_numeric, "a digit"),
            (self.require_symbol, is_symbol, "a symbol"),
        ];
        for (required, test, name) in classes {
            if required && !raw.chars().any(test) {
                missing.push(name.to_owned());
            }
        }
        if !missing.is_empty() {
            broken.push(rule(
                "missing_class",
                format!("contain {}", and_list(&missing)),
            ));
        }
        let mut all = raw.chars();
        if let Some(first) = all.next() {
            if chars >= 2 && all.all(|c| c == first) {
                broken.push(rule("too_weak", "not be one character repeated".into()));
            }
        }
        if self.reject_common && is_common(raw) {
            broken.push(rule("common", "not be a commonly used password".into()));
        }
        broken
    }

    /// Checks a new password against every rule and, when `history` holds the user's latest
    /// password hashes (the current one first), against reuse. History is verified with
    /// argon2 in the bounded hashing slots: hold no connection while calling this with a
    /// non-empty history.
    pub async fn vet(&self, field: &str, raw: &str, history: &[String]) -> Result<Password> {
        let mut broken = self.broken_rules(raw);
        let remembered = usize::try_from(self.history)
            .unwrap_or(0)
            .max(history.len());
        for hash in history {
            if identity::verify_password(raw, Some(hash.clone())).await? {
                let phrase = match remembered {
                    1 => "not be your current password".to_owned(),
                    n => format!("not be one of your last {n} passwords"),
                };
                broken.push(rule("reused", phrase));
                break;
            }
        }
        if broken.is_empty() {
            return Password::parse(field, raw).map_err(|e| Error::invalid(vec![e]));
        }
        let phrases: Vec<String> = broken.iter().map(|b| b.phrase.clone()).collect();
        let message = format!("the password must {}", and_list(&phrases));
        let fields = broken
            .iter()
            .map(|b| FieldError::new(field, b.code, format!("must {}", b.phrase)))
            .collect();
        Err(Error::Invalid {
            code: "password.policy",
            message,
            fields,
        })
    }
}

/// A test of one character class.
type CharClass = fn(char) -> bool;

fn rule(code: &'static str, phrase: String) -> BrokenRule {
    BrokenRule { code, phrase }
}

/// Anything neither a letter nor a digit counts as a symbol, spaces included.
fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric()
}

/// "a", "a and b", "a, b, and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

/// Whether `raw` (any case) is on the embedded list of common passwords.
pub fn is_common(raw: &str) -> bool {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| {
        include_str!("../data/common_passwords.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    list.contains(raw.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(policy: &PasswordPolicy, raw: &str) -> Vec<&'static str> {
        policy.broken_rules(raw).iter().map(|b| b.code).collect()
    }

    #[test]
    fn defaults_ask_for_ten_characters_and_no_common_password() {
        let d = PasswordPolicy::default();
        assert!(codes(&d, "correct horse battery").is_empty());
        assert_eq!(codes(&d, "short one"), ["too_short"]);
        assert_eq!(codes(&d, "qwertyuiop"), ["common"]);
        assert_eq!(codes(&d, "QwertyUIOP"), ["common"]);
        assert_eq!(codes(&d, "aaaaaaaaaaaa"), ["too_weak"]);
        assert_eq!(codes(&d, &"ab".repeat(129)), ["too_long"]);
        assert!(codes(&d, "密码密码密码密码密码强").is_empty());
    }

    #[test]
    fn classes_are_reported_together() {
        let strict = PasswordPolicy {
            min_length: 8,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            require_symbol: true,
            ..PasswordPolicy::default()
        };
        assert!(codes(&strict, "Tc-crm-2024").is_empty());
        let broken = strict.broken_rules("tccrmtccrm");
        assert_eq!(broken.len(), 1);
        assert_eq!(
            broken[0].phrase,
            "contain an upper-case letter, a digit, and a symbol"
        );
    }

    #[tokio::test]
    async fn the_message_names_every_broken_rule() {
        let policy = PasswordPolicy {
            require_digit: true,
            require_symbol: true,
            history: 5,
            ..PasswordPolicy::default()
        };
        let reused = identity::hash_password("abcdef").await.ok();
        let history: Vec<String> = reused.into_iter().collect();
        let err = policy.vet("p", "abcdef", &history).await.err();
        let Some(Error::Invalid {
            code,
            message,
            fields,
        }) = err
        else {
            panic!("expected a policy error, got {err:?}");
        };
        assert_eq!(code, "password.policy");
        assert_eq!(
            message,
            "the password must be at least 10 characters, contain a digit and a symbol, and not be one of your last 5 passwords"
        );
        assert_eq!(fields.len(), 3);
        assert!(policy.vet("p", "abcdef-123", &history).await.is_ok());
    }

    #[test]
    fn policy_numbers_are_checked() {
        let bad = PasswordPolicy {
            min_length: 6,
            expiry_days: Some(0),
            history: 25,
            ..PasswordPolicy::default()
        };
        let fields: Vec<String> = bad.validate("pp").into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["pp.min_length", "pp.expiry_days", "pp.history"]);
        assert!(PasswordPolicy::default().validate("pp").is_empty());
    }
}
