//! The GraphQL types of one object: the record type (fields typed by metadata, relation
//! fields with the record they point to, related lists, `custom`), its enums, connection,
//! filter, sort and input types. Resolvers of fields only read the record the parent
//! resolver loaded; the ones that load (links, related lists) go through `loaders`.

use crate::model::{FieldModel, Model, ObjectModel};
use crate::resolve;
use crate::values::{output, raw, AddressValue, Rec};
use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, FieldValue, InputObject, InputValue, Object, TypeRef,
};
use crm_records::meta::{FieldType, ObjectKey};
use std::sync::Arc;

/// Everything one object adds to the schema.
pub struct ObjectTypes {
    pub objects: Vec<Object>,
    pub inputs: Vec<InputObject>,
    pub enums: Vec<Enum>,
}

/// The scalar or enum a field's values have (not yet wrapped in list / non-null).
fn base_type(f: &FieldModel) -> String {
    match f.ty {
        FieldType::Integer => TypeRef::INT.to_owned(),
        FieldType::Decimal | FieldType::Currency | FieldType::Rollup => "Decimal".to_owned(),
        FieldType::Boolean => TypeRef::BOOLEAN.to_owned(),
        FieldType::Date => "Date".to_owned(),
        FieldType::Datetime => "DateTime".to_owned(),
        FieldType::Select | FieldType::MultiSelect => f
            .options
            .as_ref()
            .map_or_else(|| TypeRef::STRING.to_owned(), |e| e.name.clone()),
        FieldType::User | FieldType::Relation => TypeRef::ID.to_owned(),
        FieldType::Address => "Address".to_owned(),
        FieldType::Tags
        | FieldType::Text
        | FieldType::LongText
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => TypeRef::STRING.to_owned(),
    }
}

fn is_list(f: &FieldModel) -> bool {
    matches!(f.ty, FieldType::MultiSelect | FieldType::Tags)
}

fn output_type(f: &FieldModel) -> TypeRef {
    let base = base_type(f);
    if is_list(f) {
        TypeRef::named_nn_list(base)
    } else if f.required && f.read_only {
        TypeRef::named_nn(base)
    } else {
        TypeRef::named(base)
    }
}

fn input_type(f: &FieldModel) -> TypeRef {
    let base = match f.ty {
        FieldType::Address => "AddressInput".to_owned(),
        _ => base_type(f),
    };
    if is_list(f) {
        TypeRef::named_nn_list(base)
    } else {
        TypeRef::named(base)
    }
}

/// The filter input type for a field, `None` when it cannot be filtered.
fn filter_type(f: &FieldModel) -> Option<String> {
    if !f.filterable {
        return None;
    }
    Some(match f.ty {
        FieldType::Integer => "IntFilter".to_owned(),
        FieldType::Decimal | FieldType::Currency | FieldType::Rollup => "DecimalFilter".to_owned(),
        FieldType::Boolean => "BooleanFilter".to_owned(),
        FieldType::Date => "DateFilter".to_owned(),
        FieldType::Datetime => "DateTimeFilter".to_owned(),
        FieldType::Select | FieldType::MultiSelect => f.options.as_ref()?.filter.clone(),
        FieldType::User | FieldType::Relation => "IDFilter".to_owned(),
        FieldType::Text
        | FieldType::LongText
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => "StringFilter".to_owned(),
        FieldType::Address | FieldType::Tags => return None,
    })
}

/// A field read from the parent record.
fn value_field(f: &Arc<FieldModel>) -> Field {
    let model = f.clone();
    let mut field = Field::new(f.gql.clone(), output_type(f), move |ctx| {
        let value = ctx
            .parent_value
            .try_downcast_ref::<Rec>()
            .ok()
            .and_then(|rec| output(&model, raw(&model, &rec.0)));
        FieldFuture::Value(value)
    });
    if let Some(d) = &f.description {
        field = field.description(d.clone());
    }
    field
}

/// The record type of `obj` and what it needs.
pub fn object_types(model: &Arc<Model>, obj: &ObjectModel) -> ObjectTypes {
    let names = &obj.names;
    let mut record = Object::new(obj.type_name.clone()).description(obj.description.clone());
    let mut enums = Vec::new();
    let mut inputs = Vec::new();
    for f in &obj.fields {
        record = record.field(value_field(f));
        if let Some((link, target)) = &f.link {
            if let Some(target_model) = model.of(*target) {
                record = record.field(resolve::link_field(
                    link,
                    f,
                    *target,
                    &target_model.type_name,
                ));
            }
        }
    }
    for f in obj.all_fields() {
        if let Some(e) = &f.options {
            let mut en = Enum::new(e.name.clone());
            for (i, value) in e.values.iter().enumerate() {
                let mut item = EnumItem::new(value.clone());
                let option = &e.options[i];
                // Described when the name alone does not say the option (`OPTION_1` for
                // `普通`) or the company labelled it.
                let plain = *value == option.to_ascii_uppercase();
                if let Some(text) = e.labels[i]
                    .clone()
                    .or_else(|| (!plain).then(|| format!("the option '{option}'")))
                {
                    item = item.description(text);
                }
                en = en.item(item);
            }
            enums.push(en);
            inputs.push(
                InputObject::new(e.filter.clone())
                    .description(format!("Filters on a {} field.", e.name))
                    .field(InputValue::new("eq", TypeRef::named(&e.name)))
                    .field(InputValue::new("ne", TypeRef::named(&e.name)))
                    .field(InputValue::new("in", TypeRef::named_nn_list(&e.name)))
                    .field(InputValue::new("contains", TypeRef::named(&e.name)))
                    .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN))),
            );
        }
    }
    let mut objects = Vec::new();
    if let Some(custom_type) = &obj.custom_type {
        record = record.field(Field::new(
            "custom",
            TypeRef::named_nn(custom_type),
            |ctx| {
                let rec = ctx.parent_value.try_downcast_ref::<Rec>().ok().cloned();
                FieldFuture::Value(rec.map(FieldValue::owned_any))
            },
        ));
        let mut custom = Object::new(custom_type.clone())
            .description(format!("The company's own fields of a {}.", obj.type_name));
        for f in &obj.custom_fields {
            custom = custom.field(value_field(f));
            if let Some((link, target)) = &f.link {
                if let Some(target_model) = model.of(*target) {
                    custom = custom.field(resolve::link_field(
                        link,
                        f,
                        *target,
                        &target_model.type_name,
                    ));
                }
            }
        }
        objects.push(custom);
    }
    for r in &obj.related {
        if let Some(child) = model.of(r.child) {
            record = record.field(resolve::related_field(r, &child.type_name));
        }
    }
    if obj.object == ObjectKey::Customers {
        record = record.field(resolve::timeline_field());
    }
    objects.push(record);
    objects.push(
        Object::new(names.edge.clone())
            .field(Field::new(
                "cursor",
                TypeRef::named_nn(TypeRef::STRING),
                resolve::edge_cursor,
            ))
            .field(Field::new(
                "node",
                TypeRef::named_nn(&obj.type_name),
                resolve::edge_node,
            )),
    );
    objects.push(
        Object::new(names.connection.clone())
            .description(format!("A page of {}.", obj.plural))
            .field(Field::new(
                "edges",
                TypeRef::named_nn_list_nn(&names.edge),
                resolve::connection_edges,
            ))
            .field(Field::new(
                "nodes",
                TypeRef::named_nn_list_nn(&obj.type_name),
                resolve::connection_nodes,
            ))
            .field(Field::new(
                "pageInfo",
                TypeRef::named_nn("PageInfo"),
                resolve::connection_page_info,
            ))
            .field(
                Field::new(
                    "totalCount",
                    TypeRef::named_nn(TypeRef::INT),
                    resolve::connection_total,
                )
                .description("How many records match the filter (one more query)."),
            ),
    );
    inputs.extend(filter_inputs(obj));
    inputs.extend(write_inputs(obj));
    let mut sort_fields = Enum::new(names.sort_field.clone());
    for (value, _) in &names.sort_values {
        sort_fields = sort_fields.item(EnumItem::new(value.clone()));
    }
    enums.push(sort_fields);
    inputs.push(
        InputObject::new(names.sort.clone())
            .field(InputValue::new(
                "field",
                TypeRef::named_nn(&names.sort_field),
            ))
            .field(
                InputValue::new("direction", TypeRef::named("SortDirection"))
                    .default_value(async_graphql::Value::Enum(async_graphql::Name::new("ASC"))),
            ),
    );
    ObjectTypes {
        objects,
        inputs,
        enums,
    }
}

fn filter_inputs(obj: &ObjectModel) -> Vec<InputObject> {
    let names = &obj.names;
    let mut filter = InputObject::new(names.filter.clone()).description(format!(
        "Conditions on {} (all must hold), as REST's filter[field][op].",
        obj.plural
    ));
    for f in &obj.fields {
        if let Some(t) = filter_type(f) {
            filter = filter.field(InputValue::new(f.gql.clone(), TypeRef::named(t)));
        }
        if f.ty == FieldType::Address {
            filter = filter.field(InputValue::new(
                f.gql.clone(),
                TypeRef::named("AddressFilter"),
            ));
        }
    }
    let mut out = Vec::new();
    if let Some(custom_filter) = &names.custom_filter {
        filter = filter.field(InputValue::new("custom", TypeRef::named(custom_filter)));
        let mut custom = InputObject::new(custom_filter.clone());
        for f in &obj.custom_fields {
            if let Some(t) = filter_type(f) {
                custom = custom.field(InputValue::new(f.gql.clone(), TypeRef::named(t)));
            }
        }
        out.push(custom);
    }
    out.push(filter);
    out
}

fn write_inputs(obj: &ObjectModel) -> Vec<InputObject> {
    let names = &obj.names;
    let mut input = InputObject::new(names.input.clone()).description(format!(
        "Fields to set on a {} (leave a field out to keep it; null clears it).",
        obj.type_name
    ));
    for f in obj.writable() {
        input = input.field(InputValue::new(f.gql.clone(), input_type(f)));
    }
    let mut out = Vec::new();
    if let Some(custom_input) = &names.custom_input {
        input = input.field(InputValue::new("custom", TypeRef::named(custom_input)));
        let mut custom = InputObject::new(custom_input.clone());
        for f in obj.custom_fields.iter().filter(|f| !f.read_only) {
            custom = custom.field(InputValue::new(f.gql.clone(), input_type(f)));
        }
        out.push(custom);
    }
    out.push(input);
    out
}

/// The `Address` output type, read from the address JSON.
pub fn address_type() -> Object {
    let mut t = Object::new("Address");
    for part in ["province", "city", "district", "street", "postcode"] {
        t = t.field(Field::new(
            part,
            TypeRef::named(TypeRef::STRING),
            move |ctx| {
                let v = ctx
                    .parent_value
                    .try_downcast_ref::<AddressValue>()
                    .ok()
                    .and_then(|a| a.0[part].as_str().map(str::to_owned));
                FieldFuture::Value(v.map(|s| FieldValue::value(async_graphql::Value::String(s))))
            },
        ));
    }
    t
}
