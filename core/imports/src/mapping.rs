//! Which column fills which field. A mapping names, for each column header, a field path as
//! the records API names it (`name`, `phone`, `address.city`, `custom.birthday`; a custom
//! object's fields by key; `id` to match records by id), or nothing to leave the column out.
//! When the client sends none, one is suggested from the headers: field keys, their English
//! and Chinese labels, a custom field's labels, and the words our users' spreadsheets use
//! (`客户名称`, `手机`, `Mobile`, `负责人` …).

use crm_core::error::{Error, FieldError, Result};
use crm_records::labels;
use crm_records::{FieldType, ObjectSchema};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The parts of an address a column may fill.
pub const ADDRESS_PARTS: [&str; 5] = ["province", "city", "district", "street", "postcode"];

/// What a column fills.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The record's id (to match existing records).
    Id,
    /// A field (`path` as the API names it), or one part of an address field.
    Field {
        path: String,
        key: String,
        nested: bool,
        ty: FieldType,
        part: Option<&'static str>,
    },
}

impl Target {
    /// The path as the mapping names it (`id`, `name`, `address.city`, `custom.birthday`).
    pub fn path(&self) -> String {
        match self {
            Target::Id => "id".to_owned(),
            Target::Field { path, part, .. } => match part {
                Some(p) => format!("{path}.{p}"),
                None => path.clone(),
            },
        }
    }
}

/// A mapping checked against the headers and the object: (column index, target).
#[derive(Debug, Clone)]
pub struct Plan {
    pub columns: Vec<(usize, Target)>,
}

impl Plan {
    /// The column that fills `path`, if one does.
    pub fn column_of(&self, path: &str) -> Option<usize> {
        self.columns
            .iter()
            .find(|(_, t)| {
                t.path() == path || matches!(t, Target::Field { path: p, .. } if p == path)
            })
            .map(|(i, _)| *i)
    }
}

/// Resolves a mapping path against the object's writable fields.
pub fn target(schema: &ObjectSchema, path: &str) -> Option<Target> {
    if path == "id" {
        return Some(Target::Id);
    }
    let field_of = |name: &str| schema.resolve(name).filter(|f| f.ty != FieldType::Rollup);
    if let Some(f) = field_of(path) {
        if f.ty == FieldType::Address {
            return None;
        }
        return Some(Target::Field {
            path: f.path(),
            key: f.key.to_owned(),
            nested: f.nested,
            ty: f.ty,
            part: None,
        });
    }
    let (base, part) = path.rsplit_once('.')?;
    let part = ADDRESS_PARTS.iter().find(|p| **p == part)?;
    let f = field_of(base).filter(|f| f.ty == FieldType::Address)?;
    Some(Target::Field {
        path: f.path(),
        key: f.key.to_owned(),
        nested: f.nested,
        ty: f.ty,
        part: Some(part),
    })
}

/// Every path a column may be mapped to, for error messages and the preview.
pub fn targets(schema: &ObjectSchema) -> Vec<String> {
    let mut out = vec!["id".to_owned()];
    for f in schema.all() {
        match f.ty {
            FieldType::Rollup => {}
            FieldType::Address => {
                out.extend(ADDRESS_PARTS.iter().map(|p| format!("{}.{p}", f.path())));
            }
            _ => out.push(f.path()),
        }
    }
    out
}

/// Checks a client's mapping (`{"header": "path" | null}`) against the headers and object.
pub fn check(
    schema: &ObjectSchema,
    headers: &[String],
    mapping: &Map<String, Value>,
) -> Result<Plan> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut columns: Vec<(usize, Target)> = Vec::new();
    for (header, raw) in mapping {
        let field = format!("mapping.{header}");
        let Some(index) = headers.iter().position(|h| h == header) else {
            errors.push(FieldError::new(
                field,
                "unknown_column",
                format!(
                    "the file has no column '{header}'; its columns: {}",
                    headers.join(", ")
                ),
            ));
            continue;
        };
        let path = match raw {
            Value::Null => continue,
            Value::String(s) if s.trim().is_empty() => continue,
            Value::String(s) => s.trim(),
            _ => {
                errors.push(FieldError::new(
                    field,
                    "invalid_type",
                    "map a column to a field path such as \"name\" or \"custom.birthday\", or to null to leave it out",
                ));
                continue;
            }
        };
        let Some(t) = target(schema, path) else {
            errors.push(FieldError::new(
                field,
                "unknown_field",
                format!(
                    "{} has no field '{path}' a column can fill; use one of: {}",
                    schema.noun(),
                    targets(schema).join(", ")
                ),
            ));
            continue;
        };
        if columns.iter().any(|(_, other)| other.path() == t.path()) {
            errors.push(FieldError::new(
                field,
                "duplicate_target",
                format!("another column already fills '{}'; map only one", t.path()),
            ));
            continue;
        }
        columns.push((index, t));
    }
    if !errors.is_empty() {
        return Err(Error::Invalid {
            code: "import.invalid_mapping",
            message: "the mapping does not fit the file or the object; see fields".into(),
            fields: errors,
        });
    }
    if columns.is_empty() {
        return Err(Error::invalid_field(
            "mapping",
            "empty",
            "map at least one column to a field",
        ));
    }
    columns.sort_by_key(|(i, _)| *i);
    Ok(Plan { columns })
}

/// Words our users' spreadsheets head built-in fields with, beyond the fields' labels.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "name",
        &[
            "客户名称",
            "客户名",
            "公司名称",
            "公司",
            "企业名称",
            "单位名称",
            "姓名",
            "联系人姓名",
            "customer",
            "customername",
            "company",
            "companyname",
            "account",
            "accountname",
            "fullname",
        ],
    ),
    (
        "phone",
        &[
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "电话号码",
            "联系电话",
            "联系方式",
            "移动电话",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "phonenumber",
            "tel",
            "telephone",
            "cell",
            "cellphone",
        ],
    ),
    (
        "email",
        &[
            "邮箱",
            "电子邮箱",
            "电子邮件",
            "邮件",
            "邮箱地址",
            "mail",
            "emailaddress",
        ],
    ),
    (
        "address.province",
        &["省", "省份", "所在省", "province", "state"],
    ),
    ("address.city", &["市", "城市", "所在城市", "city", "town"]),
    (
        "address.district",
        &["区", "区县", "县区", "district", "county"],
    ),
    (
        "address.street",
        &[
            "地址",
            "详细地址",
            "街道",
            "街道地址",
            "通讯地址",
            "address",
            "street",
            "streetaddress",
        ],
    ),
    (
        "address.postcode",
        &[
            "邮编",
            "邮政编码",
            "postcode",
            "zip",
            "zipcode",
            "postalcode",
        ],
    ),
    (
        "level",
        &[
            "客户级别",
            "级别",
            "等级",
            "意向",
            "意向等级",
            "意向程度",
            "rating",
            "level",
        ],
    ),
    (
        "source",
        &["客户来源", "来源", "渠道来源", "leadsource", "source"],
    ),
    ("industry", &["行业", "所属行业", "industry"]),
    ("region", &["地区", "区域", "region", "area"]),
    ("tags", &["标签", "tag", "tags", "labels"]),
    (
        "owner_id",
        &[
            "负责人",
            "所有者",
            "归属人",
            "跟进人",
            "销售",
            "业务员",
            "owner",
            "salesrep",
            "assignedto",
        ],
    ),
    ("kind", &["客户类型", "类型", "type", "kind"]),
    ("title", &["职务", "职位", "jobtitle", "position"]),
    ("stage", &["阶段", "客户阶段", "stage", "lifecycle"]),
];

/// A header or label reduced for comparison: lower case, without spaces, punctuation or a
/// required-column star.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !"_-*.:：()（）[]【】/\\#".contains(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The names a target is known by, squashed.
fn names_of(schema: &ObjectSchema, t: &Target) -> Vec<String> {
    let path = t.path();
    let mut names = vec![squash(&path)];
    let Target::Field {
        key, nested, part, ..
    } = t
    else {
        return names;
    };
    names.push(squash(key));
    let custom_def = schema.custom.iter().find(|d| d.key.as_str() == key);
    match (custom_def, part) {
        (Some(def), None) => {
            names.push(squash(&def.label));
            names.extend(def.labels.values().map(|l| squash(l)));
        }
        (None, None) if !nested => {
            let labels = labels::field_labels(schema.object, key);
            names.extend(labels.values().filter_map(Value::as_str).map(squash));
        }
        _ => {}
    }
    if let Some((_, words)) = SYNONYMS.iter().find(|(p, _)| *p == path) {
        names.extend(words.iter().map(|w| squash(w)));
    }
    names
}

/// A mapping suggested from the headers: each header to the first field known by its name,
/// no field twice; headers nothing matched map to null.
pub fn suggest(schema: &ObjectSchema, headers: &[String]) -> BTreeMap<String, Option<String>> {
    let candidates: Vec<(Target, Vec<String>)> = targets(schema)
        .into_iter()
        .filter_map(|p| target(schema, &p))
        .map(|t| {
            let names = names_of(schema, &t);
            (t, names)
        })
        .collect();
    let mut used: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for header in headers {
        let h = squash(header);
        let hit = candidates
            .iter()
            .find(|(t, names)| !used.contains(&t.path()) && names.contains(&h))
            .map(|(t, _)| t.path());
        if let Some(path) = &hit {
            used.push(path.clone());
        }
        out.insert(header.clone(), hit);
    }
    out
}
