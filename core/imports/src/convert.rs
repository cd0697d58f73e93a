//! A row's cells turned into the JSON body the records API takes, the way a person filling
//! a spreadsheet means them: dates as `2025/3/31` or `2025年3月31日`, date-times in the
//! import's time zone, yes/no as `是`/`否`, options by key or by their English or Chinese
//! label, several options or tags separated by `,` `，` `;` `、` or `|`, amounts with
//! thousands separators and currency signs, users by e-mail or (unambiguous) name, address
//! parts into one address. An empty cell sets nothing (an update never clears a field). The
//! engine then validates the body exactly as it validates an API request.

use crate::mapping::{Plan, Target};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use crm_records::labels;
use crm_records::{FieldType, ObjectSchema};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// Why one cell could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    /// The column's index among the headers.
    pub column: Option<usize>,
    pub field: String,
    pub value: String,
    pub code: String,
    pub message: String,
}

/// Turns rows into bodies for one object and mapping.
pub struct Converter {
    plan: Plan,
    /// Built-in object: custom fields travel inside `custom`.
    builtin_object: bool,
    /// Per field path: option key by squashed key or label.
    options: HashMap<String, HashMap<String, String>>,
    /// Users by lower-case e-mail, and by name when only one active user has it.
    users: HashMap<String, Option<Uuid>>,
    zone: Tz,
}

fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Converter {
    /// `directory`: active users as (id, e-mail, name).
    pub fn new(
        schema: &ObjectSchema,
        plan: Plan,
        directory: &[(Uuid, String, String)],
        zone: Tz,
    ) -> Converter {
        let mut options = HashMap::new();
        for f in schema.all() {
            if !matches!(f.ty, FieldType::Select | FieldType::MultiSelect) {
                continue;
            }
            let labels = match schema.custom.iter().find(|d| d.key.as_str() == f.key) {
                Some(def) => def.option_labels.clone(),
                None => labels::option_labels(&f.options),
            };
            let mut by: HashMap<String, String> = HashMap::new();
            for o in f.options.iter() {
                by.insert(fold(o), o.clone());
                if let Some(names) = labels.get(o.as_str()).and_then(Value::as_object) {
                    for name in names.values().filter_map(Value::as_str) {
                        by.entry(fold(name)).or_insert_with(|| o.clone());
                    }
                }
            }
            options.insert(f.path(), by);
        }
        let mut users: HashMap<String, Option<Uuid>> = HashMap::new();
        for (id, email, name) in directory {
            users.insert(fold(email), Some(*id));
            users.insert(id.to_string(), Some(*id));
            users
                .entry(fold(name))
                .and_modify(|seen| {
                    if *seen != Some(*id) {
                        *seen = None;
                    }
                })
                .or_insert(Some(*id));
        }
        Converter {
            plan,
            builtin_object: !schema.object.is_custom(),
            options,
            users,
            zone,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The cell of the column mapped to `path`, trimmed, if it has a value.
    pub fn cell<'c>(&self, cells: &'c [String], path: &str) -> Option<&'c str> {
        let i = self.plan.column_of(path)?;
        cells.get(i).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// The body a row stands for, or every cell error it has.
    pub fn body(&self, cells: &[String]) -> Result<Value, Vec<CellError>> {
        let mut top = Map::new();
        let mut custom = Map::new();
        let mut errors = Vec::new();
        for (i, target) in &self.plan.columns {
            let Target::Field {
                path,
                key,
                nested,
                ty,
                part,
            } = target
            else {
                continue;
            };
            let raw = cells.get(*i).map_or("", |s| s.trim());
            if raw.is_empty() {
                continue;
            }
            let value = match self.value(path, *ty, raw) {
                Ok(v) => v,
                Err((code, message)) => {
                    errors.push(CellError {
                        column: Some(*i),
                        field: target.path(),
                        value: raw.to_owned(),
                        code: code.to_owned(),
                        message,
                    });
                    continue;
                }
            };
            let map = if *nested && self.builtin_object {
                &mut custom
            } else {
                &mut top
            };
            match part {
                Some(part) => {
                    let address = map
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(a) = address {
                        a.insert((*part).to_owned(), Value::String(raw.to_owned()));
                    }
                }
                None => {
                    map.insert(key.clone(), value);
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if !custom.is_empty() {
            top.insert("custom".into(), Value::Object(custom));
        }
        Ok(Value::Object(top))
    }

    /// One cell's value for a field of type `ty`, or (code, message).
    fn value(&self, path: &str, ty: FieldType, raw: &str) -> Result<Value, (&'static str, String)> {
        Ok(match ty {
            FieldType::Boolean => Value::Bool(boolean(raw).ok_or((
                "invalid_boolean",
                format!("'{raw}' is not yes or no (是/否, true/false, 1/0)"),
            ))?),
            FieldType::Date => Value::String(
                date(raw)
                    .ok_or((
                        "invalid_date",
                        format!("'{raw}' is not a date like 2025-03-31"),
                    ))?
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            FieldType::Datetime => Value::String(self.datetime(raw).ok_or((
                "invalid_datetime",
                format!("'{raw}' is not a date and time like 2025-03-31 09:30"),
            ))?),
            FieldType::Integer | FieldType::Decimal | FieldType::Currency => {
                Value::String(number(raw))
            }
            FieldType::Select => Value::String(self.option(path, raw)),
            FieldType::MultiSelect => Value::Array(
                split(raw)
                    .map(|o| Value::String(self.option(path, o)))
                    .collect(),
            ),
            FieldType::Tags => Value::Array(split(raw).map(|t| json!(t)).collect()),
            FieldType::User => match self.users.get(&fold(raw)) {
                Some(Some(id)) => json!(id),
                Some(None) => {
                    return Err((
                        "ambiguous_user",
                        format!("more than one user is called '{raw}'; give the user's e-mail"),
                    ))
                }
                None => {
                    return Err((
                        "unknown_user",
                        format!("no active user has the e-mail or name '{raw}'"),
                    ))
                }
            },
            _ => Value::String(raw.to_owned()),
        })
    }

    /// An option key for a cell (the engine refuses what is none).
    fn option(&self, path: &str, raw: &str) -> String {
        self.options
            .get(path)
            .and_then(|by| by.get(&fold(raw)))
            .cloned()
            .unwrap_or_else(|| raw.to_owned())
    }

    /// RFC 3339, or a local date-time (or date) in the import's zone.
    fn datetime(&self, raw: &str) -> Option<String> {
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(raw) {
            return Some(dt.to_rfc3339());
        }
        let local = local_datetime(raw)
            .or_else(|| date(raw).map(|d| d.and_time(chrono::NaiveTime::MIN)))?;
        let zoned = self.zone.from_local_datetime(&local).earliest()?;
        Some(zoned.to_rfc3339())
    }
}

/// The pieces of a multi-value cell.
fn split(raw: &str) -> impl Iterator<Item = &str> {
    raw.split([',', '，', ';', '；', '、', '|', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn boolean(raw: &str) -> Option<bool> {
    match fold(raw).as_str() {
        "true" | "yes" | "y" | "1" | "是" | "对" | "真" | "√" | "✓" | "✔" | "on" => {
            Some(true)
        }
        "false" | "no" | "n" | "0" | "否" | "不是" | "错" | "假" | "×" | "✗" | "off" => {
            Some(false)
        }
        _ => None,
    }
}

/// `2025-03-31`, `2025/3/31`, `2025.3.31`, `2025年3月31日`, `20250331`, with or without a
/// midnight time after it.
pub fn date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    let s = s
        .strip_suffix(" 00:00:00")
        .or_else(|| s.strip_suffix(" 00:00"))
        .unwrap_or(s);
    let unified: String = s
        .replace(['年', '月'], "-")
        .replace('日', "")
        .replace(['/', '.'], "-");
    if let Ok(d) = NaiveDate::parse_from_str(&unified, "%Y-%m-%d") {
        return Some(d);
    }
    if s.len() == 8 && s.chars().all(|c| c.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    }
    None
}

fn local_datetime(raw: &str) -> Option<NaiveDateTime> {
    let unified = raw.trim().replace(['/', '.'], "-").replace('T', " ");
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&unified, f).ok())
}

/// A number as the engine reads it: without thousands separators, spaces or currency signs.
fn number(raw: &str) -> String {
    raw.chars()
        .filter(|c| !matches!(c, ',' | '，' | ' ' | '¥' | '￥' | '$' | '€' | '£' | '元'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_values_are_read_as_people_write_them() {
        for ok in [
            "2025-03-31",
            "2025/3/31",
            "2025.03.31",
            "2025年3月31日",
            "20250331",
            "2025-03-31 00:00:00",
        ] {
            assert_eq!(date(ok), NaiveDate::from_ymd_opt(2025, 3, 31), "{ok}");
        }
        for bad in ["31/03/2025", "2025-02-30", "yesterday", "2025"] {
            assert_eq!(date(bad), None, "{bad}");
        }
        assert_eq!(boolean("是"), Some(true));
        assert_eq!(boolean("No"), Some(false));
        assert_eq!(boolean("maybe"), None);
        assert_eq!(number("¥1,234.50"), "1234.50");
        assert_eq!(
            split("VIP、重点， 华东|").collect::<Vec<_>>(),
            vec!["VIP", "重点", "华东"]
        );
        assert_eq!(
            local_datetime("2025/3/31 9:05"),
            NaiveDate::from_ymd_opt(2025, 3, 31).and_then(|d| d.and_hms_opt(9, 5, 0))
        );
    }
}
