//! The tenant as GraphQL sees it: for every object (built-in and custom) its type names, its
//! fields with their GraphQL names and kinds, its select options as enum values, and the
//! related lists other objects' relation fields give it. Built from the tenant's
//! [`ObjectSchema`]s; the schema builder and the resolvers both read it, so a name maps back
//! to the same field path the REST API uses.

use crate::names::{self, Registry, Scope};
use crm_records::meta::{FieldType, ObjectKey};
use crm_records::ObjectSchema;
use std::sync::Arc;

/// The system fields every object has in GraphQL (id, createdAt, updatedAt, createdBy,
/// version, deletedAt).
pub const SYSTEM_FIELD_COUNT: usize = 6;

/// Names the schema declares itself; derived names never take them.
pub const FIXED_TYPES: &[&str] = &[
    "Query",
    "Mutation",
    "Subscription",
    "Date",
    "DateTime",
    "Decimal",
    "JSON",
    "Address",
    "AddressInput",
    "AddressFilter",
    "PageInfo",
    "Me",
    "SortDirection",
    "StringFilter",
    "IntFilter",
    "DecimalFilter",
    "DateFilter",
    "DateTimeFilter",
    "BooleanFilter",
    "IDFilter",
    "TimelineEntry",
    "TicketComment",
    "RecordChange",
    "ApprovalDecision",
    "Ext",
    "ExtMutation",
    "PluginResponse",
    "PluginHeader",
    "String",
    "Int",
    "Float",
    "Boolean",
    "ID",
];

/// A select field's options as enum values (`values[i]` names `options[i]`).
#[derive(Debug, Clone)]
pub struct EnumModel {
    pub name: String,
    /// Its filter input (`CustomerLevelFilter`).
    pub filter: String,
    pub values: Vec<String>,
    pub options: Vec<String>,
    pub labels: Vec<Option<String>>,
}

impl EnumModel {
    pub fn value_of(&self, option: &str) -> Option<&str> {
        let i = self.options.iter().position(|o| o == option)?;
        self.values.get(i).map(String::as_str)
    }

    pub fn option_of(&self, value: &str) -> Option<&str> {
        let i = self.values.iter().position(|v| v == value)?;
        self.options.get(i).map(String::as_str)
    }
}

/// One field of a type.
#[derive(Debug, Clone)]
pub struct FieldModel {
    /// `vipLevel`.
    pub gql: String,
    /// The key in the record's JSON (`vip_level`; inside `custom` when `nested`).
    pub key: String,
    /// The path filters and sort use (`custom.vip_level`, `phone`).
    pub path: String,
    pub nested: bool,
    pub ty: FieldType,
    /// Set by the engine (`id`, `createdAt`, a roll-up): never in an input.
    pub read_only: bool,
    pub required: bool,
    pub sortable: bool,
    pub filterable: bool,
    pub options: Option<EnumModel>,
    /// A relation to a record object, with the field that resolves the record itself
    /// (`customer` beside `customerId`).
    pub link: Option<(String, ObjectKey)>,
    pub description: Option<String>,
}

/// A list of the records of `child` whose relation field `via` points here.
#[derive(Debug, Clone)]
pub struct RelatedList {
    pub gql: String,
    pub child: ObjectKey,
    /// The relation field's path on `child` (`customer_id`, `policy`).
    pub via: String,
}

/// The names of an object's helper types.
pub struct TypeNames {
    pub connection: String,
    pub edge: String,
    pub filter: String,
    pub custom_filter: Option<String>,
    pub sort_field: String,
    pub sort: String,
    pub input: String,
    pub custom_input: Option<String>,
    /// `TSortField` values with the path each sorts by.
    pub sort_values: Vec<(String, String)>,
}

/// One object of the tenant.
pub struct ObjectModel {
    pub names: TypeNames,
    pub object: ObjectKey,
    pub schema: Arc<ObjectSchema>,
    /// `Customer`, `Policy`.
    pub type_name: String,
    /// `CustomerCustom` when a built-in object has custom fields.
    pub custom_type: Option<String>,
    /// Query fields: `customer`, `customers`.
    pub single: String,
    pub plural: String,
    /// Top-level fields (system, built-in, and a custom object's own fields); shared with the
    /// resolvers that read them.
    pub fields: Vec<Arc<FieldModel>>,
    /// A built-in object's custom fields (under `custom`).
    pub custom_fields: Vec<Arc<FieldModel>>,
    pub related: Vec<RelatedList>,
    pub description: String,
}

impl ObjectModel {
    pub fn all_fields(&self) -> impl Iterator<Item = &Arc<FieldModel>> {
        self.fields.iter().chain(self.custom_fields.iter())
    }

    pub fn writable(&self) -> impl Iterator<Item = &Arc<FieldModel>> {
        self.fields.iter().filter(|f| !f.read_only)
    }
}

/// Every object of one tenant at one metadata version.
pub struct Model {
    pub objects: Vec<ObjectModel>,
}

impl Model {
    pub fn of(&self, object: ObjectKey) -> Option<&ObjectModel> {
        self.objects.iter().find(|o| o.object == object)
    }

    /// Names every object, field, option and related list of `schemas` (built-in objects
    /// first, then custom ones in key order, so names are stable for the same metadata).
    pub fn build(schemas: Vec<Arc<ObjectSchema>>, registry: &mut Registry) -> Model {
        registry.reserve(FIXED_TYPES);
        let mut query_fields = Scope::with(&["me", "timeline", "ext"]);
        let mut objects: Vec<ObjectModel> = schemas
            .iter()
            .map(|schema| object_model(schema.clone(), registry, &mut query_fields))
            .collect();
        // Related lists: every relation field of every object, on the object it points to.
        for model in &mut objects {
            let target = model.object;
            let mut taken: Scope = Scope::with(
                &model
                    .fields
                    .iter()
                    .flat_map(|f| {
                        std::iter::once(f.gql.as_str())
                            .chain(f.link.as_ref().map(|(l, _)| l.as_str()))
                    })
                    .chain(["custom", "timeline"])
                    .collect::<Vec<_>>(),
            );
            let mut related = Vec::new();
            for child in &schemas {
                let pointing: Vec<_> = child.pointing_to(target).collect();
                for f in &pointing {
                    let base = names::camel(child.object.as_str());
                    let wanted = if pointing.len() == 1 {
                        base.clone()
                    } else {
                        format!("{base}By{}", names::pascal(f.key.trim_end_matches("_id")))
                    };
                    related.push(RelatedList {
                        gql: taken.claim(Some(wanted), &format!("{base}Related")),
                        child: child.object,
                        via: f.path(),
                    });
                }
            }
            model.related = related;
        }
        Model { objects }
    }
}

fn object_model(
    schema: Arc<ObjectSchema>,
    registry: &mut Registry,
    query_fields: &mut Scope,
) -> ObjectModel {
    let object = schema.object;
    let (wanted_type, description) = match &schema.def {
        Some(def) => {
            let from_name = names::pascal(&def.name);
            let wanted = if names::is_name(&from_name) {
                from_name
            } else {
                names::pascal(object.as_str())
            };
            (
                wanted,
                def.description.clone().unwrap_or_else(|| def.name.clone()),
            )
        }
        None => (
            names::pascal(object.singular()),
            format!("A {}.", object.singular()),
        ),
    };
    let type_name = registry.claim(&wanted_type);
    let mut lower = type_name.clone();
    if let Some(first) = lower.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    let single = query_fields.claim(Some(lower), "record");
    let plural = query_fields.claim(Some(names::camel(object.as_str())), "records");

    let mut scope = Scope::with(&["custom"]);
    let mut fields = system_fields(object, &mut scope);
    let mut custom_fields = Vec::new();
    let mut custom_scope = Scope::default();
    for f in schema.all() {
        let nested = f.nested;
        let scope = if nested {
            &mut custom_scope
        } else {
            &mut scope
        };
        let gql = if f.ty == FieldType::Relation && f.key.ends_with("_id") {
            scope.claim(Some(names::camel(f.key)), "field")
        } else if f.ty == FieldType::Relation && f.target.is_some() {
            scope.claim(Some(format!("{}Id", names::camel(f.key))), "field")
        } else {
            scope.claim(Some(names::camel(f.key)), "field")
        };
        let link = match (f.ty, f.target) {
            (FieldType::Relation, Some(target)) => Some((
                scope.claim(
                    Some(names::camel(f.key.trim_end_matches("_id"))),
                    &format!("{gql}Record"),
                ),
                target,
            )),
            _ => None,
        };
        let options = matches!(f.ty, FieldType::Select | FieldType::MultiSelect).then(|| {
            let owner = if nested {
                format!("{type_name}Custom")
            } else {
                type_name.clone()
            };
            let mut values = Scope::default();
            let labels = f
                .custom
                .then(|| {
                    schema
                        .custom
                        .iter()
                        .find(|d| d.key.as_str() == f.key)
                        .map(|d| d.option_labels.clone())
                })
                .flatten();
            let name = registry.claim(&format!("{owner}{}", names::pascal(f.key)));
            EnumModel {
                filter: registry.claim(&format!("{name}Filter")),
                name,
                values: f
                    .options
                    .iter()
                    .map(|o| values.claim(names::enum_value(o), "OPTION_"))
                    .collect(),
                options: f.options.to_vec(),
                labels: f
                    .options
                    .iter()
                    .map(|o| -> Option<String> {
                        let per_locale = labels.as_ref()?.get(o)?.as_object()?;
                        let text: Vec<String> = per_locale
                            .iter()
                            .filter_map(|(locale, l)| Some(format!("{locale}: {}", l.as_str()?)))
                            .collect();
                        (!text.is_empty()).then(|| format!("{o} ({})", text.join(", ")))
                    })
                    .collect(),
            }
        });
        let description = f
            .custom
            .then(|| {
                schema
                    .custom
                    .iter()
                    .find(|d| d.key.as_str() == f.key)
                    .map(|d| d.label.clone())
            })
            .flatten();
        let model = FieldModel {
            gql,
            key: f.key.to_owned(),
            path: f.path(),
            nested,
            ty: f.ty,
            read_only: f.ty == FieldType::Rollup,
            required: f.required,
            sortable: f.ty.is_ordered() && !f.encrypted && f.ty != FieldType::Rollup,
            filterable: !f.encrypted && !matches!(f.ty, FieldType::Tags | FieldType::Address),
            options,
            link,
            description,
        };
        if nested {
            custom_fields.push(Arc::new(model));
        } else {
            fields.push(Arc::new(model));
        }
    }
    let has_custom = !custom_fields.is_empty();
    let custom_type = has_custom.then(|| registry.claim(&format!("{type_name}Custom")));
    let mut sort_scope = Scope::default();
    let sort_values = fields
        .iter()
        .chain(custom_fields.iter())
        .filter(|f| f.sortable)
        .map(|f| {
            let wanted = if f.nested {
                format!("custom{}", names::pascal(&f.key))
            } else {
                f.gql.clone()
            };
            (sort_scope.claim(Some(wanted), "field"), f.path.clone())
        })
        .collect();
    let names = TypeNames {
        connection: registry.claim(&format!("{type_name}Connection")),
        edge: registry.claim(&format!("{type_name}Edge")),
        filter: registry.claim(&format!("{type_name}Filter")),
        custom_filter: has_custom.then(|| registry.claim(&format!("{type_name}CustomFilter"))),
        sort_field: registry.claim(&format!("{type_name}SortField")),
        sort: registry.claim(&format!("{type_name}Sort")),
        input: registry.claim(&format!("{type_name}Input")),
        custom_input: has_custom.then(|| registry.claim(&format!("{type_name}CustomInput"))),
        sort_values,
    };
    ObjectModel {
        names,
        object,
        schema,
        type_name,
        custom_type,
        single,
        plural,
        fields,
        custom_fields,
        related: Vec::new(),
        description,
    }
}

/// The system columns every record has, and the engine-kept ones of some objects.
fn system_fields(object: ObjectKey, scope: &mut Scope) -> Vec<Arc<FieldModel>> {
    let base: [(&str, FieldType); 6] = [
        ("id", FieldType::Relation),
        ("created_at", FieldType::Datetime),
        ("updated_at", FieldType::Datetime),
        ("created_by", FieldType::User),
        ("version", FieldType::Integer),
        ("deleted_at", FieldType::Datetime),
    ];
    base.into_iter()
        .chain(crm_records::engine::extra_system(object).iter().copied())
        .map(|(key, ty)| {
            let ty = if key == "id" { FieldType::User } else { ty };
            Arc::new(FieldModel {
                gql: scope.claim(Some(names::camel(key)), "field"),
                key: key.to_owned(),
                path: key.to_owned(),
                nested: false,
                ty: if ty == FieldType::Relation {
                    FieldType::User
                } else {
                    ty
                },
                read_only: true,
                required: key == "id" || key == "version" || key == "created_at",
                sortable: matches!(key, "created_at" | "updated_at"),
                filterable: matches!(key, "id" | "created_at" | "updated_at"),
                options: None,
                link: None,
                description: None,
            })
        })
        .collect()
}
