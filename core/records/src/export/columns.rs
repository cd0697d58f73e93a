//! The columns of an export: which fields (every built-in and custom field by default, or the
//! API paths named in `fields=`), in which order, and their headers in the caller's language
//! (`名称` / `Name`, a custom field's own labels) or as API paths (`headers=keys`).

use crate::labels;
use crate::meta::{FieldType, ObjectKey};
use crate::schema::{Field, ObjectSchema};
use crm_core::error::{Error, FieldError, Result};
use crm_core::mail::Lang;
use serde_json::Value;
use std::collections::HashMap;

/// Columns every record has besides its fields, after them.
const META: &[&str] = &["owner_id", "created_at", "updated_at"];

/// How the header row names the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    /// Display labels in the caller's language (the default).
    Labels,
    /// API field paths (`name`, `custom.vip_level`), for programs.
    Keys,
}

impl HeaderStyle {
    /// `labels` or `keys`.
    pub fn parse(raw: &str) -> Result<HeaderStyle> {
        match raw {
            "labels" => Ok(HeaderStyle::Labels),
            "keys" => Ok(HeaderStyle::Keys),
            other => Err(Error::invalid_field(
                "headers",
                "invalid",
                format!("'{other}' is not a header style; use labels or keys"),
            )),
        }
    }
}

/// What a column shows of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A top-level member of the record (`id`, a built-in field, `created_at`).
    Top(String),
    /// A built-in object's custom field, inside the record's `custom`.
    Custom(String),
}

/// One column: its API path, its header, where its value is and its type.
#[derive(Debug, Clone)]
pub struct Column {
    /// The API path (`name`, `custom.vip_level`, `created_at`).
    pub path: String,
    /// The header as the caller asked for it.
    pub header: String,
    /// The display label in the caller's language, whatever the header style.
    pub label: String,
    source: Source,
    /// The field's type (`None` for `id` and the timestamps).
    pub ty: Option<FieldType>,
    /// Option labels of a select's values in the caller's language (for printed pages).
    pub option_labels: HashMap<String, String>,
}

impl Column {
    /// This column's value in a record as the engine returns it (masked as the caller sees it).
    pub fn value_in<'v>(&self, record: &'v Value) -> &'v Value {
        match &self.source {
            Source::Top(key) => &record[key.as_str()],
            Source::Custom(key) => &record["custom"][key.as_str()],
        }
    }
}

/// The columns of one export, in order.
#[derive(Debug, Clone)]
pub struct Columns {
    pub items: Vec<Column>,
    /// How the header row names them.
    pub headers: HeaderStyle,
}

impl Columns {
    /// The columns for `fields` (a comma-separated list of API paths; `None` or empty: `id`,
    /// every field, then owner and timestamps). An unknown path is 422 `export.unknown_field`
    /// naming the paths there are.
    pub fn resolve(
        schema: &ObjectSchema,
        fields: Option<&str>,
        lang: Lang,
        headers: HeaderStyle,
    ) -> Result<Columns> {
        let all = every_column(schema, lang);
        let chosen: Vec<&str> = fields
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let mut items: Vec<Column> = if chosen.is_empty() {
            all
        } else {
            let mut picked = Vec::with_capacity(chosen.len());
            let mut unknown = Vec::new();
            for path in chosen {
                let found = all.iter().find(|c| c.path == path).or_else(|| {
                    // A custom key without `custom.`, as the records API resolves it.
                    schema
                        .resolve(path)
                        .and_then(|f| all.iter().find(|c| c.path == f.path()))
                });
                match found {
                    Some(c) if !picked.iter().any(|p: &Column| p.path == c.path) => {
                        picked.push(c.clone());
                    }
                    Some(_) => {}
                    None => unknown.push(path.to_owned()),
                }
            }
            if !unknown.is_empty() {
                let known: Vec<&str> = all.iter().map(|c| c.path.as_str()).collect();
                let message = format!(
                    "{} has no field {}; use the API paths of its fields: {}",
                    schema.object,
                    unknown
                        .iter()
                        .map(|u| format!("'{u}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    known.join(", ")
                );
                return Err(Error::Invalid {
                    code: "export.unknown_field",
                    message: message.clone(),
                    fields: vec![FieldError::new("fields", "unknown_field", message)],
                });
            }
            picked
        };
        disambiguate(&mut items);
        for c in &mut items {
            c.header = match headers {
                HeaderStyle::Labels => c.label.clone(),
                HeaderStyle::Keys => c.path.clone(),
            };
        }
        Ok(Columns { items, headers })
    }

    /// The header row.
    pub fn header(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|c| c.header.as_str())
    }
}

/// Two columns with one label (a custom field called like a built-in one) get their paths
/// after the label, so that a header names one column only.
fn disambiguate(items: &mut [Column]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in items.iter() {
        *seen.entry(c.label.clone()).or_default() += 1;
    }
    for c in items.iter_mut() {
        if seen.get(&c.label).copied().unwrap_or_default() > 1 {
            c.label = format!("{} ({})", c.label, c.path);
        }
    }
}

/// `id`, every field of the object, then the owner and timestamps.
fn every_column(schema: &ObjectSchema, lang: Lang) -> Vec<Column> {
    let mut out = vec![meta_column(schema.object, "id", lang)];
    for f in schema.builtins() {
        let label = builtin_label(schema.object, f.key, lang);
        let options = builtin_options(&f.options, lang);
        out.push(field_column(&f, label, options));
    }
    for (f, def) in schema.customs().zip(&schema.custom) {
        // A custom field's label in the caller's language, else the one it was made with.
        let label = def
            .labels
            .get(lang_key(lang))
            .filter(|l| !l.trim().is_empty())
            .unwrap_or(&def.label)
            .clone();
        let options = def
            .options
            .iter()
            .filter_map(|o| {
                let label = def.option_labels[o.as_str()][lang_key(lang)].as_str()?;
                Some((o.clone(), label.to_owned()))
            })
            .collect();
        out.push(field_column(&f, label, options));
    }
    for key in META {
        if !out.iter().any(|c| c.path == *key) {
            out.push(meta_column(schema.object, key, lang));
        }
    }
    out
}

fn meta_column(object: ObjectKey, key: &str, lang: Lang) -> Column {
    Column {
        path: key.to_owned(),
        header: String::new(),
        label: builtin_label(object, key, lang),
        source: Source::Top(key.to_owned()),
        ty: (key == "owner_id").then_some(FieldType::User),
        option_labels: HashMap::new(),
    }
}

fn field_column(f: &Field<'_>, label: String, option_labels: HashMap<String, String>) -> Column {
    Column {
        path: f.path(),
        header: String::new(),
        label,
        source: if f.nested {
            Source::Custom(f.key.to_owned())
        } else {
            Source::Top(f.key.to_owned())
        },
        ty: Some(f.ty),
        option_labels,
    }
}

/// The label of a built-in field or meta column (its key when it has none).
fn builtin_label(object: ObjectKey, key: &str, lang: Lang) -> String {
    let labels = labels::field_labels(object, key);
    labels
        .get(lang_key(lang))
        .and_then(Value::as_str)
        .unwrap_or(key)
        .to_owned()
}

fn builtin_options(options: &[String], lang: Lang) -> HashMap<String, String> {
    let labels = labels::option_labels(options);
    options
        .iter()
        .filter_map(|o| {
            let label = labels[o.as_str()][lang_key(lang)].as_str()?;
            Some((o.clone(), label.to_owned()))
        })
        .collect()
}

/// The key of a language in label maps.
pub fn lang_key(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "zh-CN",
        Lang::En => "en",
    }
}

/// The language of `Accept-Language`'s first tag that we speak (`None`: none of ours).
pub fn accept_language(header: Option<&str>) -> Option<Lang> {
    let mut tags: Vec<(f32, &str)> = header?
        .split(',')
        .filter_map(|part| {
            let mut bits = part.split(';');
            let tag = bits.next()?.trim();
            let q = bits
                .find_map(|b| b.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0));
    tags.into_iter().find_map(|(_, tag)| {
        let tag = tag.to_ascii_lowercase();
        if tag.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if tag.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_of_ours() {
        assert_eq!(accept_language(Some("en-US,en;q=0.9")), Some(Lang::En));
        assert_eq!(
            accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Some(Lang::ZhCn)
        );
        assert_eq!(
            accept_language(Some("fr;q=1, en;q=0.3, zh-TW;q=0.5")),
            Some(Lang::ZhCn)
        );
        assert_eq!(accept_language(Some("fr, de")), None);
        assert_eq!(accept_language(None), None);
    }

    #[test]
    fn a_shared_label_names_its_paths() {
        let column = |path: &str, label: &str| Column {
            path: path.into(),
            header: String::new(),
            label: label.into(),
            source: Source::Top(path.into()),
            ty: None,
            option_labels: HashMap::new(),
        };
        let mut items = vec![
            column("kind", "类型"),
            column("custom.kind", "类型"),
            column("name", "名称"),
        ];
        disambiguate(&mut items);
        let labels: Vec<&str> = items.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["类型 (kind)", "类型 (custom.kind)", "名称"]);
    }
}
