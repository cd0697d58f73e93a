//! Checks of a custom field's definition: label, options, default, where it may be
//! searched or opened to the portal, and what deleting a related record does.

use crate::meta::{FieldType, ObjectKey};
use crate::values;
use crm_core::domain::Validator;
use crm_core::error::FieldError;
use serde::Serialize;
use serde_json::Value;

/// What deleting a record does to the records whose relation field points to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// 409 while live records point to it.
    Restrict,
    /// The pointing records' field is emptied.
    SetNull,
    /// The pointing records go to the recycle bin with it (purged with it when purged).
    Cascade,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Restrict => "restrict",
            OnDelete::SetNull => "set_null",
            OnDelete::Cascade => "cascade",
        }
    }

    pub fn parse(raw: &str) -> Option<OnDelete> {
        [OnDelete::Restrict, OnDelete::SetNull, OnDelete::Cascade]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

/// Only ticket fields can be opened to the customer portal.
pub(super) fn check_portal_editable(v: &mut Validator, object: ObjectKey, wanted: Option<bool>) {
    if wanted == Some(true) && object != ObjectKey::Tickets {
        v.push(FieldError::new(
            "portal_editable",
            "not_allowed",
            "only ticket fields can be filled in on the customer portal",
        ));
    }
}

/// Only text-like fields that are stored in clear can be searched.
pub(super) fn check_searchable(v: &mut Validator, ty: FieldType, encrypted: bool) {
    if !ty.is_textual() || encrypted {
        v.push(FieldError::new(
            "searchable",
            "not_allowed",
            "only text, long_text, email, phone and url fields stored in clear can be searched",
        ));
    }
}

/// The trigram index `q` searches a column through.
pub(super) fn trgm_index(table: &str, column: &str) -> String {
    format!("CREATE INDEX IF NOT EXISTS \"{table}_{column}_trgm\" ON {table} USING gin (\"{column}\" gin_trgm_ops)")
}

/// Longest label of a field, in characters.
pub const LABEL_MAX_CHARS: usize = 100;
/// Longest option of a select field, in characters.
pub const OPTION_MAX_CHARS: usize = 100;

pub(super) fn check_label(v: &mut Validator, field: &str, label: &str) {
    if label.trim().is_empty() || label.chars().count() > LABEL_MAX_CHARS {
        v.push(FieldError::new(
            field,
            "invalid",
            format!("must be 1-{LABEL_MAX_CHARS} characters"),
        ));
    }
}

pub(super) fn check_options(v: &mut Validator, ty: FieldType, options: &[String]) {
    let needs = matches!(ty, FieldType::Select | FieldType::MultiSelect);
    if needs && options.is_empty() {
        v.push(FieldError::new(
            "options",
            "required",
            "select and multi_select fields need at least one option, e.g. [\"gold\", \"silver\"]",
        ));
    }
    if !needs && !options.is_empty() {
        v.push(FieldError::new(
            "options",
            "not_allowed",
            "only select and multi_select fields have options",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, o) in options.iter().enumerate() {
        if o.trim().is_empty() || o.chars().count() > OPTION_MAX_CHARS || o.trim() != o {
            v.push(FieldError::new(
                format!("options[{i}]"),
                "invalid",
                format!("options are 1-{OPTION_MAX_CHARS} characters without surrounding spaces"),
            ));
        } else if !seen.insert(o.as_str()) {
            v.push(FieldError::new(
                format!("options[{i}]"),
                "duplicate",
                format!("'{o}' is listed twice"),
            ));
        }
    }
}

pub(super) fn check_option_labels(v: &mut Validator, labels: &Value, options: &[String]) {
    let Some(map) = labels.as_object() else {
        v.push(FieldError::new(
            "option_labels",
            "invalid",
            "must be an object: {option: {locale: label}}",
        ));
        return;
    };
    for (option, per_locale) in map {
        let ok = options.contains(option)
            && per_locale
                .as_object()
                .is_some_and(|m| m.values().all(Value::is_string));
        if !ok {
            v.push(FieldError::new(
                format!("option_labels.{option}"),
                "invalid",
                "keys must be options, values objects of locale to label, e.g. {\"gold\": {\"zh-CN\": \"金牌\"}}",
            ));
        }
    }
}

/// A default must be a valid value of the field; encrypted fields have none.
pub(super) fn check_default(
    v: &mut Validator,
    ty: FieldType,
    options: &[String],
    target: Option<ObjectKey>,
    encrypted: bool,
    default: Option<&Value>,
) {
    let Some(default) = default else { return };
    if encrypted {
        v.push(FieldError::new(
            "default",
            "not_allowed",
            "encrypted fields have no default",
        ));
    } else {
        let spec = values::Spec {
            ty,
            options,
            target,
        };
        v.check(values::parse(&spec, "default", default).map(|_| ()));
    }
}
