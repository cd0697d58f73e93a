//! Assembles a tenant's schema from its [`Model`]: the shared scalars and inputs, every
//! object's types, `Query`, `Mutation` and `Subscription`, with the depth and complexity
//! limits, checked before any resolver (and so any database work) runs.

use crate::ext::{self, ExtModel};
use crate::model::Model;
use crate::resolve::{self, json_to_value};
use crate::{mutate, subscribe, types};
use async_graphql::dynamic::{
    Enum, EnumItem, Field, FieldFuture, InputObject, InputValue, Object, Scalar, Schema,
    SchemaError, Subscription, TypeRef,
};
use crm_records::ObjectKey;
use std::sync::Arc;

/// Limits of every tenant's schema (`[graphql]` in the config).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Records one request may read in all (lists nested in lists multiply): past it the
    /// request fails with `graphql.too_many_records` instead of loading on.
    pub max_records: usize,
    /// Fields of all a tenant's objects beyond which no schema is built
    /// (`graphql.schema_too_large`): about 8 KB of memory and 10 µs of build time each.
    pub max_fields: usize,
    /// Estimated memory of the cached schemas, in MB.
    pub cache_mb: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 5000,
            max_records: 10_000,
            max_fields: 20_000,
            cache_mb: 256,
        }
    }
}

/// A JSON object handed to a type whose fields read its keys (`PageInfo`, `Me`, …).
pub struct JsonObject(pub serde_json::Value);

/// An object type whose fields are keys of a [`JsonObject`] parent.
fn json_type(name: &str, fields: &[(&str, &str, TypeRef)]) -> Object {
    let mut t = Object::new(name);
    for (gql, key, ty) in fields {
        let key = (*key).to_owned();
        t = t.field(Field::new(*gql, ty.clone(), move |ctx| {
            let v = ctx
                .parent_value
                .try_downcast_ref::<JsonObject>()
                .ok()
                .and_then(|o| json_to_value(&o.0[key.as_str()]));
            FieldFuture::Value(v)
        }));
    }
    t
}

fn scalar_filter(name: &str, scalar: &str, ordered: bool) -> InputObject {
    let mut f = InputObject::new(name)
        .field(InputValue::new("eq", TypeRef::named(scalar)))
        .field(InputValue::new("ne", TypeRef::named(scalar)))
        .field(InputValue::new("in", TypeRef::named_nn_list(scalar)))
        .field(InputValue::new("isNull", TypeRef::named(TypeRef::BOOLEAN)));
    if ordered {
        for op in ["lt", "lte", "gt", "gte"] {
            f = f.field(InputValue::new(op, TypeRef::named(scalar)));
        }
    }
    if scalar == TypeRef::STRING {
        f = f.field(InputValue::new("contains", TypeRef::named(scalar)));
    }
    f
}

/// Types every tenant's schema has.
fn shared(builder: async_graphql::dynamic::SchemaBuilder) -> async_graphql::dynamic::SchemaBuilder {
    let nn = TypeRef::named_nn;
    let opt = TypeRef::named;
    builder
        .register(Scalar::new("Date").description("A calendar date, YYYY-MM-DD."))
        .register(Scalar::new("DateTime").description("An RFC 3339 timestamp."))
        .register(
            Scalar::new("Decimal")
                .description("An exact decimal number as a string (money: \"1234.50\")."),
        )
        .register(Scalar::new("JSON").description("Any JSON value."))
        .register(
            Enum::new("SortDirection")
                .item(EnumItem::new("ASC"))
                .item(EnumItem::new("DESC")),
        )
        .register(scalar_filter("StringFilter", TypeRef::STRING, true))
        .register(scalar_filter("IntFilter", TypeRef::INT, true))
        .register(scalar_filter("DecimalFilter", "Decimal", true))
        .register(scalar_filter("DateFilter", "Date", true))
        .register(scalar_filter("DateTimeFilter", "DateTime", true))
        .register(scalar_filter("BooleanFilter", TypeRef::BOOLEAN, false))
        .register(scalar_filter("IDFilter", TypeRef::ID, false))
        .register(types::address_type())
        .register(
            ["province", "city", "district", "street", "postcode"]
                .into_iter()
                .fold(InputObject::new("AddressInput"), |i, p| {
                    i.field(InputValue::new(p, opt(TypeRef::STRING)))
                }),
        )
        .register(
            ["province", "city", "district"]
                .into_iter()
                .fold(InputObject::new("AddressFilter"), |i, p| {
                    i.field(InputValue::new(p, opt("StringFilter")))
                }),
        )
        .register(json_type(
            "PageInfo",
            &[
                ("hasNextPage", "hasNextPage", nn(TypeRef::BOOLEAN)),
                ("hasPreviousPage", "hasPreviousPage", nn(TypeRef::BOOLEAN)),
                ("startCursor", "startCursor", opt(TypeRef::STRING)),
                ("endCursor", "endCursor", opt(TypeRef::STRING)),
            ],
        ))
        .register(json_type(
            "Me",
            &[
                ("id", "id", nn(TypeRef::ID)),
                ("userId", "userId", opt(TypeRef::ID)),
                ("name", "name", nn(TypeRef::STRING)),
                ("kind", "kind", nn(TypeRef::STRING)),
                ("tenantId", "tenantId", nn(TypeRef::ID)),
                (
                    "permissions",
                    "permissions",
                    TypeRef::named_nn_list_nn(TypeRef::STRING),
                ),
            ],
        ))
        .register(json_type(
            "TimelineEntry",
            &[
                ("kind", "kind", nn(TypeRef::STRING)),
                ("at", "at", nn("DateTime")),
                ("id", "id", nn(TypeRef::ID)),
                ("data", "data", opt("JSON")),
            ],
        ))
        .register(json_type(
            "TicketComment",
            &[
                ("id", "id", nn(TypeRef::ID)),
                ("ticketId", "ticket_id", nn(TypeRef::ID)),
                ("body", "body", nn(TypeRef::STRING)),
                ("public", "public", nn(TypeRef::BOOLEAN)),
                ("authorKind", "author_kind", nn(TypeRef::STRING)),
                ("authorId", "author_id", opt(TypeRef::ID)),
                ("authorName", "author_name", opt(TypeRef::STRING)),
                ("createdAt", "created_at", nn("DateTime")),
            ],
        ))
        .register(json_type(
            "Approval",
            &[
                ("id", "id", nn(TypeRef::ID)),
                ("object", "object", nn(TypeRef::STRING)),
                ("recordId", "record_id", nn(TypeRef::ID)),
                ("title", "title", nn(TypeRef::STRING)),
                ("status", "status", nn(TypeRef::STRING)),
                ("currentStep", "current_step", nn(TypeRef::INT)),
                ("createdAt", "created_at", nn("DateTime")),
                ("decidedAt", "decided_at", opt("DateTime")),
                ("decisions", "decisions", opt("JSON")),
            ],
        ))
        .register(json_type(
            "RecordChange",
            &[
                ("object", "object", nn(TypeRef::STRING)),
                ("id", "id", nn(TypeRef::ID)),
                ("action", "action", nn(TypeRef::STRING)),
                ("record", "record", opt("JSON")),
            ],
        ))
}

/// Builds the schema of a tenant with `model` and its plugins' endpoints `ext`.
pub fn build(model: Arc<Model>, ext: &ExtModel, limits: Limits) -> Result<Schema, SchemaError> {
    let mut query = Object::new("Query").field(resolve::me_field());
    let mut mutation = Object::new("Mutation");
    let mut builder = Schema::build("Query", Some("Mutation"), Some("Subscription"));
    for obj in &model.objects {
        query = query
            .field(resolve::one(obj))
            .field(resolve::many(obj, model.clone()));
        for m in mutate::record_mutations(obj, &model) {
            mutation = mutation.field(m);
        }
        let t = types::object_types(&model, obj);
        for o in t.objects {
            builder = builder.register(o);
        }
        for i in t.inputs {
            builder = builder.register(i);
        }
        for e in t.enums {
            builder = builder.register(e);
        }
    }
    if let Some(opp) = model.of(ObjectKey::Opportunities) {
        mutation = mutation.field(mutate::move_stage(&opp.type_name));
    }
    mutation = mutation
        .field(mutate::add_ticket_comment())
        .field(mutate::decide("approve", true))
        .field(mutate::decide("reject", false));
    let subscription: Subscription = subscribe::subscription(&model);
    let (builder, query, mutation) = ext::register(builder, query, mutation, ext);
    shared(builder)
        .register(query)
        .register(mutation)
        .register(subscription)
        .extension(crate::limits::DepthLimit(limits.max_depth))
        .limit_complexity(limits.max_complexity)
        .finish()
}
