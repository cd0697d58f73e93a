//! Field values: JSON in, validated and normalised per field type (phones to E.164 with China
//! as the default region, e-mails lower-cased), bound to SQL, decoded back to JSON, masked.

use super::meta::{FieldType, ObjectKey};
use chrono::{DateTime, NaiveDate, Utc};
use crm_core::domain::Email;
use crm_core::error::FieldError;
use serde_json::{json, Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// What validation needs to know about a field.
pub struct Spec<'a> {
    pub ty: FieldType,
    pub options: &'a [String],
    pub target: Option<ObjectKey>,
}

/// A validated value, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Text(String),
    Int(i64),
    /// A validated decimal literal, bound as text and cast to numeric.
    Numeric(String),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
    TextArray(Vec<String>),
    Uuid(Uuid),
    Json(Value),
    Bytes(Vec<u8>),
}

impl SqlValue {
    /// Appends this value as a bind parameter.
    pub fn push_bind(&self, q: &mut QueryBuilder<'_, Postgres>) {
        match self.clone() {
            SqlValue::Null => {
                q.push("NULL");
            }
            SqlValue::Text(v) => {
                q.push_bind(v);
            }
            SqlValue::Int(v) => {
                q.push_bind(v);
            }
            SqlValue::Numeric(v) => {
                q.push_bind(v).push("::numeric");
            }
            SqlValue::Bool(v) => {
                q.push_bind(v);
            }
            SqlValue::Date(v) => {
                q.push_bind(v);
            }
            SqlValue::Timestamp(v) => {
                q.push_bind(v);
            }
            SqlValue::TextArray(v) => {
                q.push_bind(v);
            }
            SqlValue::Uuid(v) => {
                q.push_bind(v);
            }
            SqlValue::Json(v) => {
                q.push_bind(v);
            }
            SqlValue::Bytes(v) => {
                q.push_bind(v);
            }
        }
    }

    /// The JSON form (for history and events).
    pub fn to_json(&self) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Text(v) => json!(v),
            SqlValue::Int(v) => json!(v),
            SqlValue::Numeric(v) => v.parse::<f64>().map(|f| json!(f)).unwrap_or(json!(v)),
            SqlValue::Bool(v) => json!(v),
            SqlValue::Date(v) => json!(v.to_string()),
            SqlValue::Timestamp(v) => json!(v.to_rfc3339()),
            SqlValue::TextArray(v) => json!(v),
            SqlValue::Uuid(v) => json!(v),
            SqlValue::Json(v) => v.clone(),
            SqlValue::Bytes(_) => json!("[encrypted]"),
        }
    }
}

fn wrong(field: &str, expected: &str) -> FieldError {
    FieldError::new(field, "invalid_type", format!("expects {expected}"))
}

/// Longest `text` value, in characters after trimming.
pub const TEXT_MAX_CHARS: usize = 1000;
/// Longest `long_text` value, in characters after trimming.
pub const LONG_TEXT_MAX_CHARS: usize = 100_000;
/// Longest tag, in characters after trimming.
pub const TAG_MAX_CHARS: usize = 50;

fn text(field: &str, raw: &Value, max: usize, multiline: bool) -> Result<String, FieldError> {
    let s = raw.as_str().ok_or_else(|| wrong(field, "a string"))?;
    let s = s.trim();
    if s.chars().count() > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(FieldError::new(
            field,
            "invalid",
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

/// Normalises a phone number to E.164, reading national numbers as Chinese.
pub fn normalize_phone(field: &str, raw: &str) -> Result<String, FieldError> {
    let invalid = || {
        FieldError::new(
            field,
            "invalid_phone",
            format!("'{raw}' is not a phone number; use e.g. 13812345678 or +86 10 1234 5678"),
        )
    };
    let number =
        phonenumber::parse(Some(phonenumber::country::Id::CN), raw).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

fn decimal(field: &str, raw: &Value, max_scale: Option<usize>) -> Result<String, FieldError> {
    let s = match raw {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err(wrong(field, "a number")),
    };
    let unsigned = s.strip_prefix('-').unwrap_or(&s);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let ok = !int.is_empty()
        && int.len() <= 16
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
        && (!s.contains('.') || !frac.is_empty());
    if !ok {
        return Err(FieldError::new(
            field,
            "invalid_number",
            format!("'{s}' is not a decimal number like 1234.56"),
        ));
    }
    if max_scale.is_some_and(|m| frac.len() > m) {
        return Err(FieldError::new(
            field,
            "invalid_number",
            format!("at most {} decimal places", max_scale.unwrap_or(0)),
        ));
    }
    Ok(s)
}

fn uuid(field: &str, raw: &Value) -> Result<Uuid, FieldError> {
    raw.as_str()
        .and_then(|s| Uuid::try_parse(s).ok())
        .ok_or_else(|| wrong(field, "an id (UUID)"))
}

/// Validates and normalises one value for a field. `null` is accepted here; whether the
/// field may be empty is the engine's concern.
pub fn parse(spec: &Spec<'_>, field: &str, raw: &Value) -> Result<SqlValue, FieldError> {
    if raw.is_null() {
        // An address and tags always have a value (their columns are NOT NULL): null clears
        // them to the empty one.
        return Ok(match spec.ty {
            FieldType::Address => SqlValue::Json(Value::Object(Map::new())),
            FieldType::Tags => SqlValue::TextArray(Vec::new()),
            _ => SqlValue::Null,
        });
    }
    // Blank text means "no value", so required fields cannot be satisfied with spaces.
    if (spec.ty.is_textual() || spec.ty == FieldType::Select)
        && raw.as_str().is_some_and(|s| s.trim().is_empty())
    {
        return Ok(SqlValue::Null);
    }
    Ok(match spec.ty {
        FieldType::Text => SqlValue::Text(text(field, raw, TEXT_MAX_CHARS, false)?),
        FieldType::LongText => SqlValue::Text(text(field, raw, LONG_TEXT_MAX_CHARS, true)?),
        FieldType::Integer => match raw {
            Value::Number(n) => {
                SqlValue::Int(n.as_i64().ok_or_else(|| wrong(field, "a whole number"))?)
            }
            Value::String(s) => SqlValue::Int(
                s.trim()
                    .parse()
                    .map_err(|_| wrong(field, "a whole number"))?,
            ),
            _ => return Err(wrong(field, "a whole number")),
        },
        FieldType::Decimal | FieldType::Rollup => SqlValue::Numeric(decimal(field, raw, None)?),
        FieldType::Currency => SqlValue::Numeric(decimal(field, raw, Some(4))?),
        FieldType::Boolean => {
            SqlValue::Bool(raw.as_bool().ok_or_else(|| wrong(field, "true or false"))?)
        }
        FieldType::Date => {
            let s = raw
                .as_str()
                .ok_or_else(|| wrong(field, "a date like 2025-03-31"))?;
            SqlValue::Date(
                NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                    .map_err(|_| wrong(field, "a date like 2025-03-31"))?,
            )
        }
        FieldType::Datetime => {
            let s = raw
                .as_str()
                .ok_or_else(|| wrong(field, "a date-time like 2025-03-31T09:30:00+08:00"))?;
            SqlValue::Timestamp(
                DateTime::parse_from_rfc3339(s.trim())
                    .map_err(|_| wrong(field, "a date-time like 2025-03-31T09:30:00+08:00"))?
                    .with_timezone(&Utc),
            )
        }
        FieldType::Email => {
            let s = raw
                .as_str()
                .ok_or_else(|| wrong(field, "an e-mail address"))?;
            SqlValue::Text(Email::parse(field, s)?.as_str().to_owned())
        }
        FieldType::Phone => {
            let s = raw.as_str().ok_or_else(|| wrong(field, "a phone number"))?;
            SqlValue::Text(normalize_phone(field, s)?)
        }
        FieldType::Url => {
            let s = text(field, raw, 2000, false)?;
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"));
            let host_ok = rest.is_some_and(|r| {
                let host = r.split(['/', '?', '#']).next().unwrap_or_default();
                !host.is_empty() && !s.contains(char::is_whitespace)
            });
            if !host_ok {
                return Err(FieldError::new(
                    field,
                    "invalid_url",
                    format!("'{s}' is not a web address like https://example.com"),
                ));
            }
            SqlValue::Text(s)
        }
        FieldType::Select => {
            let s = raw
                .as_str()
                .ok_or_else(|| wrong(field, "one of the options"))?;
            if !spec.options.iter().any(|o| o == s) {
                return Err(FieldError::new(
                    field,
                    "invalid_option",
                    format!(
                        "'{s}' is not an option; use one of: {}",
                        spec.options.join(", ")
                    ),
                ));
            }
            SqlValue::Text(s.to_owned())
        }
        FieldType::MultiSelect => {
            let items = raw
                .as_array()
                .ok_or_else(|| wrong(field, "a list of options"))?;
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| wrong(field, "a list of options"))?;
                if !spec.options.iter().any(|o| o == s) {
                    return Err(FieldError::new(
                        field,
                        "invalid_option",
                        format!(
                            "'{s}' is not an option; use any of: {}",
                            spec.options.join(", ")
                        ),
                    ));
                }
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            SqlValue::TextArray(out)
        }
        FieldType::User | FieldType::Relation => SqlValue::Uuid(uuid(field, raw)?),
        FieldType::Address => {
            let map = raw.as_object().ok_or_else(|| {
                wrong(
                    field,
                    "an object with province, city, district, street, postcode",
                )
            })?;
            let mut out = Map::new();
            for (k, v) in map {
                if !["province", "city", "district", "street", "postcode"].contains(&k.as_str()) {
                    return Err(FieldError::new(
                        format!("{field}.{k}"),
                        "unknown_field",
                        "address parts are province, city, district, street and postcode",
                    ));
                }
                if !v.is_null() {
                    out.insert(
                        k.clone(),
                        Value::String(text(&format!("{field}.{k}"), v, 200, false)?),
                    );
                }
            }
            SqlValue::Json(Value::Object(out))
        }
        FieldType::Tags => {
            let items = raw
                .as_array()
                .ok_or_else(|| wrong(field, "a list of tags"))?;
            let mut out: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let tag = parse_tag(&format!("{field}[{i}]"), item)?;
                if !out.contains(&tag) {
                    out.push(tag);
                }
            }
            SqlValue::TextArray(out)
        }
    })
}

/// A tag: 1-50 characters, trimmed.
pub fn parse_tag(field: &str, raw: &Value) -> Result<String, FieldError> {
    let s = text(field, raw, TAG_MAX_CHARS, false)?;
    if s.is_empty() {
        return Err(FieldError::new(field, "required", "tags must not be empty"));
    }
    Ok(s)
}

/// The SQL expression that selects a column for decoding (numerics as text, to keep
/// precision without a decimal crate).
pub fn select_expr(column: &str, ty: FieldType) -> String {
    match ty {
        FieldType::Decimal | FieldType::Currency | FieldType::Rollup => {
            format!("\"{column}\"::text AS \"{column}\"")
        }
        _ => format!("\"{column}\""),
    }
}

/// Reads a column of a row as JSON.
pub fn decode(row: &PgRow, column: &str, ty: FieldType) -> Result<Value, sqlx::Error> {
    Ok(match ty {
        FieldType::Text
        | FieldType::LongText
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Select => json!(row.try_get::<Option<String>, _>(column)?),
        FieldType::Integer => json!(row.try_get::<Option<i64>, _>(column)?),
        FieldType::Decimal | FieldType::Currency | FieldType::Rollup => row
            .try_get::<Option<String>, _>(column)?
            .map(|s| {
                s.parse::<f64>()
                    .map(|f| json!(f))
                    .unwrap_or(Value::String(s))
            })
            .unwrap_or(Value::Null),
        FieldType::Boolean => json!(row.try_get::<Option<bool>, _>(column)?),
        FieldType::Date => json!(row
            .try_get::<Option<NaiveDate>, _>(column)?
            .map(|d| d.to_string())),
        FieldType::Datetime => json!(row
            .try_get::<Option<DateTime<Utc>>, _>(column)?
            .map(|d| d.to_rfc3339())),
        FieldType::MultiSelect | FieldType::Tags => json!(row
            .try_get::<Option<Vec<String>>, _>(column)?
            .unwrap_or_default()),
        FieldType::User | FieldType::Relation => json!(row.try_get::<Option<Uuid>, _>(column)?),
        FieldType::Address => row
            .try_get::<Option<Value>, _>(column)?
            .unwrap_or(json!({})),
    })
}

/// Masks a sensitive value for callers without `sensitive:read`: phones `138****5678`,
/// e-mails `z***@x.com`, other text keeps its first and last character.
pub fn mask(ty: FieldType, value: &Value) -> Value {
    let Some(s) = value.as_str() else {
        return if value.is_null() {
            Value::Null
        } else {
            json!("***")
        };
    };
    match ty {
        FieldType::Phone => {
            let national = s.strip_prefix("+86").unwrap_or(s);
            let digits: Vec<char> = national.chars().collect();
            if digits.len() >= 7 {
                let head: String = digits[..3].iter().collect();
                let tail: String = digits[digits.len() - 4..].iter().collect();
                json!(format!("{head}****{tail}"))
            } else {
                json!("****")
            }
        }
        FieldType::Email => match s.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                json!(format!("{first}***@{domain}"))
            }
            None => json!("***"),
        },
        _ => {
            let chars: Vec<char> = s.chars().collect();
            match chars.len() {
                0 => json!(""),
                1..=2 => json!("***"),
                n => json!(format!("{}***{}", chars[0], chars[n - 1])),
            }
        }
    }
}

/// Lower-cased unigrams and bigrams of a name: lets 1-2 character queries (Chinese names)
/// use an index, where trigrams need three characters.
pub fn name_grams(name: &str) -> Vec<String> {
    let chars: Vec<char> = name
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut grams: Vec<String> = chars.iter().map(std::string::ToString::to_string).collect();
    grams.extend(chars.windows(2).map(|w| w.iter().collect::<String>()));
    grams.sort();
    grams.dedup();
    grams
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ty: FieldType) -> Spec<'static> {
        Spec {
            ty,
            options: &[],
            target: None,
        }
    }

    #[test]
    fn phones_normalise_to_e164_with_china_default() {
        assert_eq!(
            normalize_phone("p", "138 1234 5678").ok().as_deref(),
            Some("+8613812345678")
        );
        assert_eq!(
            normalize_phone("p", "+86-138-1234-5678").ok().as_deref(),
            Some("+8613812345678")
        );
        assert_eq!(
            normalize_phone("p", "010 6552 9988").ok().as_deref(),
            Some("+861065529988")
        );
        assert_eq!(
            normalize_phone("p", "+1 415 555 2671").ok().as_deref(),
            Some("+14155552671")
        );
        for bad in ["12", "abc", "138123456789999", ""] {
            assert!(normalize_phone("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask(FieldType::Phone, &json!("+8613812345678")),
            json!("138****5678")
        );
        assert_eq!(
            mask(FieldType::Email, &json!("zhang.wei@x.com")),
            json!("z***@x.com")
        );
        assert_eq!(
            mask(FieldType::Text, &json!("110101199003077777")),
            json!("1***7")
        );
        assert_eq!(mask(FieldType::Integer, &json!(42)), json!("***"));
        assert_eq!(mask(FieldType::Text, &Value::Null), Value::Null);
    }

    #[test]
    fn values_by_type() {
        assert_eq!(
            parse(&spec(FieldType::Integer), "f", &json!(5)),
            Ok(SqlValue::Int(5))
        );
        assert!(parse(&spec(FieldType::Integer), "f", &json!(5.5)).is_err());
        assert_eq!(
            parse(&spec(FieldType::Decimal), "f", &json!("12.50")),
            Ok(SqlValue::Numeric("12.50".into()))
        );
        assert!(parse(&spec(FieldType::Decimal), "f", &json!("1e5")).is_err());
        assert!(parse(&spec(FieldType::Currency), "f", &json!("1.23456")).is_err());
        assert!(parse(&spec(FieldType::Boolean), "f", &json!("yes")).is_err());
        assert!(parse(&spec(FieldType::Date), "f", &json!("2025-02-30")).is_err());
        assert!(parse(&spec(FieldType::Datetime), "f", &json!("2025-02-03")).is_err());
        assert!(parse(&spec(FieldType::Url), "f", &json!("javascript:alert(1)")).is_err());
        assert!(parse(&spec(FieldType::Url), "f", &json!("https://tc-crm.cn/x")).is_ok());
        assert!(parse(&spec(FieldType::User), "f", &json!("not-a-uuid")).is_err());
        let opts = ["gold".to_owned(), "silver".to_owned()];
        let select = Spec {
            ty: FieldType::MultiSelect,
            options: &opts,
            target: None,
        };
        assert_eq!(
            parse(&select, "f", &json!(["gold", "gold"])),
            Ok(SqlValue::TextArray(vec!["gold".into()]))
        );
        assert!(parse(&select, "f", &json!(["bronze"])).is_err());
        assert!(parse(&spec(FieldType::Address), "f", &json!({"planet": "Mars"})).is_err());
        assert!(matches!(
            parse(&spec(FieldType::Address), "f", &Value::Null),
            Ok(SqlValue::Json(Value::Object(m))) if m.is_empty()
        ));
        assert!(matches!(
            parse(&spec(FieldType::Tags), "f", &Value::Null),
            Ok(SqlValue::TextArray(t)) if t.is_empty()
        ));
        assert_eq!(
            parse(&spec(FieldType::Text), "f", &Value::Null),
            Ok(SqlValue::Null)
        );
    }

    #[test]
    fn grams_cover_short_chinese_queries() {
        let g = name_grams("张伟明");
        for q in ["张", "伟", "张伟", "伟明"] {
            assert!(g.contains(&q.to_owned()), "{q}");
        }
        assert!(
            name_grams("Li Na").contains(&"ln".to_owned())
                || name_grams("Li Na").contains(&"li".to_owned())
        );
    }
}
