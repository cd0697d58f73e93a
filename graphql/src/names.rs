//! GraphQL names for the tenant's objects, fields and options: `vip_level` → `vipLevel`,
//! object `policies` (named "Policy") → type `Policy`, option `A+` → enum value `A_`. Names
//! are claimed through one [`Registry`] per schema so two things never share a name; a name
//! that cannot be derived (a Chinese option, a clash) falls back to a numbered one.

use std::collections::HashSet;

/// `vip_level` → `vipLevel`.
pub fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `vip_level` → `VipLevel`; keeps only ASCII letters and digits.
pub fn pascal(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut upper = true;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

/// A valid GraphQL name: `[_A-Za-z][_0-9A-Za-z]*`, not starting with `__`.
pub fn is_name(raw: &str) -> bool {
    let mut chars = raw.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !raw.starts_with("__")
}

/// An enum value for a select option: `A+` → `A_`, `high` → `HIGH`; `None` when nothing ASCII
/// is left (`上海`).
pub fn enum_value(option: &str) -> Option<String> {
    let mut out: String = option
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.trim_matches('_').is_empty() {
        return None;
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    // Reserved by GraphQL as enum values.
    if matches!(out.as_str(), "TRUE" | "FALSE" | "NULL") {
        out.push('_');
    }
    Some(out)
}

/// The names taken in one schema.
#[derive(Default)]
pub struct Registry {
    taken: HashSet<String>,
}

impl Registry {
    /// Reserves fixed names (scalars, shared inputs) so derived ones avoid them.
    pub fn reserve(&mut self, names: &[&str]) {
        self.taken.extend(names.iter().map(|n| (*n).to_owned()));
    }

    /// `wanted` if free (and valid), else `wanted2`, `wanted3`, …
    pub fn claim(&mut self, wanted: &str) -> String {
        let base = if is_name(wanted) {
            wanted.to_owned()
        } else {
            format!("T{}", pascal(wanted))
        };
        let mut name = base.clone();
        let mut n = 2;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}{n}");
            n += 1;
        }
        name
    }
}

/// Names unique within one scope (the fields of a type, the values of an enum).
#[derive(Default)]
pub struct Scope {
    taken: HashSet<String>,
}

impl Scope {
    pub fn with(reserved: &[&str]) -> Scope {
        Scope {
            taken: reserved.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    /// `wanted` if valid and free; else `fallback`, numbered until free.
    pub fn claim(&mut self, wanted: Option<String>, fallback: &str) -> String {
        if let Some(w) = wanted.filter(|w| is_name(w)) {
            if self.taken.insert(w.clone()) {
                return w;
            }
        }
        let mut n = 1;
        loop {
            let name = format!("{fallback}{n}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_graphql_names() {
        assert_eq!(camel("vip_level"), "vipLevel");
        assert_eq!(camel("owner_id"), "ownerId");
        assert_eq!(camel("name"), "name");
        assert_eq!(pascal("vip_level"), "VipLevel");
        assert_eq!(pascal("Test drive"), "TestDrive");
        assert_eq!(pascal("保单"), "");
    }

    #[test]
    fn options_become_enum_values_or_fall_back() {
        assert_eq!(enum_value("A+").as_deref(), Some("A_"));
        assert_eq!(enum_value("high").as_deref(), Some("HIGH"));
        assert_eq!(enum_value("2024").as_deref(), Some("_2024"));
        assert_eq!(enum_value("true").as_deref(), Some("TRUE_"));
        assert_eq!(enum_value("上海"), None);
        let mut scope = Scope::default();
        assert_eq!(scope.claim(enum_value("a-b"), "OPTION_"), "A_B");
        assert_eq!(scope.claim(enum_value("a b"), "OPTION_"), "OPTION_1");
        assert_eq!(scope.claim(enum_value("上海"), "OPTION_"), "OPTION_2");
    }

    #[test]
    fn the_registry_never_hands_out_a_name_twice() {
        let mut r = Registry::default();
        r.reserve(&["Date"]);
        assert_eq!(r.claim("Date"), "Date2");
        assert_eq!(r.claim("Policy"), "Policy");
        assert_eq!(r.claim("Policy"), "Policy2");
        assert_eq!(r.claim("保单"), "T");
        assert!(is_name("T"));
    }
}
