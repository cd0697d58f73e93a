//! What the APIs call: create and update with the object hooks applied (default owner,
//! contact's customer, customer dedupe, tag catalogue), around the one engine.

use super::customers;
use super::engine::{self, Access, Input};
use super::meta::ObjectKey;
use super::sales;
use super::schema::ObjectSchema;
use super::tags;
use super::values::SqlValue;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// Options of a create.
#[derive(Debug, Default, Clone, Copy)]
pub struct CreateOptions {
    /// Skip customer dedupe (`?allow_duplicate=true`).
    pub allow_duplicate: bool,
}

/// The owner of a live customer visible to `access`, or a 422 on `customer_id`.
async fn parent_customer(tx: &mut TenantTx, access: &Access<'_>, id: Uuid) -> Result<Option<Uuid>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT owner_id FROM customers WHERE deleted_at IS NULL AND id = ",
    );
    q.push_bind(id);
    access.customer_scope.push_predicate(&mut q);
    let owner: Option<Option<Uuid>> = q
        .build_query_scalar()
        .persistent(false)
        .fetch_optional(tx.conn())
        .await?;
    owner.ok_or_else(|| {
        Error::invalid_field(
            "customer_id",
            "unknown_reference",
            format!("customer {id} not found"),
        )
    })
}

/// An opportunity's customer must be a live customer the caller sees, and its contact a
/// contact of that customer.
async fn check_opportunity_parents(
    tx: &mut TenantTx,
    access: &Access<'_>,
    input: &Input<'_>,
    current: Option<&Value>,
) -> Result<()> {
    let current_uuid = |key: &str| {
        current
            .and_then(|c| c[key].as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
    };
    let customer = match input.get("customer_id") {
        Some(SqlValue::Uuid(c)) => {
            parent_customer(tx, access, *c).await?;
            Some(*c)
        }
        _ => current_uuid("customer_id"),
    };
    let contact = match input.get("contact_id") {
        Some(SqlValue::Uuid(c)) => Some(*c),
        Some(_) => None,
        None => current_uuid("contact_id"),
    };
    if let (Some(contact), Some(customer)) = (contact, customer) {
        sales::ensure_contact_of(tx, contact, customer).await?;
    }
    Ok(())
}

async fn register_tags(tx: &mut TenantTx, input: &Input<'_>) -> Result<()> {
    if let Some(SqlValue::TextArray(names)) = input.get("tags") {
        tags::register(tx, names).await?;
    }
    Ok(())
}

/// Creates a record of `schema`'s object from a JSON body.
pub async fn create(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    body: &Value,
    options: CreateOptions,
) -> Result<Value> {
    let mut input = engine::parse_input(schema, body, true)?;
    let mut default_owner = access.user_id;
    match schema.object {
        ObjectKey::Customers => {
            if !options.allow_duplicate {
                customers::ensure_not_duplicate(tx, &input, None).await?;
            }
        }
        ObjectKey::Contacts => {
            if let Some(SqlValue::Uuid(customer)) = input.get("customer_id") {
                // A contact belongs to its customer's owner unless told otherwise.
                default_owner = parent_customer(tx, access, *customer)
                    .await?
                    .or(default_owner);
            }
        }
        ObjectKey::Opportunities => {
            check_opportunity_parents(tx, access, &input, None).await?;
            sales::prepare_opportunity(tx, schema, &mut input, None).await?;
        }
    }
    if input.get("owner_id").is_none() {
        if let (Some(owner), Some(field)) = (default_owner, schema.builtin("owner_id")) {
            input.values.push((field, SqlValue::Uuid(owner)));
        }
    }
    register_tags(tx, &input).await?;
    engine::insert(tx, schema, access, &input).await
}

/// Updates a record from a JSON body of the fields to change.
pub async fn update(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    expected_version: Option<i64>,
    body: &Value,
) -> Result<Value> {
    let mut input = engine::parse_input(schema, body, false)?;
    match schema.object {
        ObjectKey::Customers => {}
        ObjectKey::Contacts => {
            if let Some(SqlValue::Uuid(customer)) = input.get("customer_id") {
                parent_customer(tx, access, *customer).await?;
            }
        }
        ObjectKey::Opportunities => {
            let unmasked = Access {
                unmask: true,
                ..*access
            };
            let current =
                engine::fetch(tx, schema, &unmasked, id, engine::Visibility::Live, true).await?;
            check_opportunity_parents(tx, access, &input, Some(&current)).await?;
            sales::prepare_opportunity(tx, schema, &mut input, Some(&current)).await?;
        }
    }
    register_tags(tx, &input).await?;
    engine::update(tx, schema, access, id, expected_version, &input).await
}

/// The tags of a live record, locked for a read-modify-write.
async fn current_tags(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<Vec<Value>> {
    let current = engine::fetch(tx, schema, access, id, engine::Visibility::Live, true).await?;
    Ok(current["tags"].as_array().cloned().unwrap_or_default())
}

async fn set_tags(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    tags: Vec<Value>,
) -> Result<Value> {
    update(
        tx,
        schema,
        access,
        id,
        None,
        &serde_json::json!({ "tags": tags }),
    )
    .await
}

/// Adds tags to a record (keeping its others).
pub async fn add_tags(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    add: &[String],
) -> Result<Value> {
    let mut all = current_tags(tx, schema, access, id).await?;
    for t in add {
        let t = Value::String(t.clone());
        if !all.contains(&t) {
            all.push(t);
        }
    }
    set_tags(tx, schema, access, id, all).await
}

/// Removes a tag from a record.
pub async fn remove_tag(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    tag: &str,
) -> Result<Value> {
    let tags = current_tags(tx, schema, access, id).await?;
    if !tags.iter().any(|t| t == tag) {
        return Err(Error::not_found(
            "tag.not_on_record",
            format!("the record has no tag '{tag}'"),
        ));
    }
    set_tags(
        tx,
        schema,
        access,
        id,
        tags.into_iter().filter(|t| t != tag).collect(),
    )
    .await
}
