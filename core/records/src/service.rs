//! What the APIs call: create and update with the object hooks applied (default owner,
//! contact's customer, customer dedupe, tag catalogue), around the one engine.

use super::customers;
use super::engine::{self, Access, Input};
use super::idempotency;
use super::meta::{FieldType, ObjectKey, RecordAction};
use super::reminders;
use super::sales;
use super::schema::ObjectSchema;
use super::tags;
use super::values::SqlValue;
use crate::hooks;
use crate::record_types;
use crate::relations;
use crate::rollups;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
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
    access.customer_scope.push_predicate(&mut q, "owner_id");
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

async fn register_tags(tx: &mut TenantTx, input: &Input<'_>) -> Result<()> {
    if let Some(SqlValue::TextArray(names)) = input.get("tags") {
        tags::register(tx, names).await?;
    }
    Ok(())
}

/// A record's customer must be a live customer the caller sees; its contact and opportunity
/// must belong to that customer. `current` is the stored record on update.
async fn check_related(
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
    let given = |key: &str| match input.get(key) {
        Some(SqlValue::Uuid(u)) => Some(Some(*u)),
        Some(_) => Some(None),
        None => None,
    };
    let customer = match given("customer_id") {
        Some(Some(c)) => {
            parent_customer(tx, access, c).await?;
            Some(c)
        }
        Some(None) => None,
        None => current_uuid("customer_id"),
    };
    let contact = given("contact_id").unwrap_or_else(|| current_uuid("contact_id"));
    let opportunity = given("opportunity_id").unwrap_or_else(|| current_uuid("opportunity_id"));
    if let Some(contact) = contact {
        match customer {
            Some(customer) => sales::ensure_contact_of(tx, contact, customer).await?,
            None => {
                return Err(Error::invalid_field(
                    "customer_id",
                    "required",
                    "name the customer the contact belongs to",
                ))
            }
        }
    }
    if let Some(opportunity) = opportunity {
        let of_customer: Option<Uuid> = sqlx::query_scalar(
            "SELECT customer_id FROM opportunities WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(opportunity)
        .fetch_optional(tx.conn())
        .await?;
        match (of_customer, customer) {
            (Some(a), Some(b)) if a == b => {}
            (Some(_), None) => {
                return Err(Error::invalid_field(
                    "customer_id",
                    "required",
                    "name the customer the opportunity belongs to",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid_field(
                    "opportunity_id",
                    "not_of_customer",
                    "the opportunity belongs to another customer",
                ))
            }
            (None, _) => {
                return Err(Error::invalid_field(
                    "opportunity_id",
                    "unknown_reference",
                    format!("opportunity {opportunity} not found"),
                ))
            }
        }
    }
    Ok(())
}

/// Recomputes a customer's follow-up status (`last_activity_at`, `next_task_due`) after its
/// activities or tasks changed. Derived columns: no version, no history.
pub async fn refresh_followups(tx: &mut TenantTx, customer: Option<Uuid>) -> Result<()> {
    let Some(customer) = customer else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE customers SET \
           last_activity_at = (SELECT max(occurred_at) FROM activities WHERE customer_id = $1 AND deleted_at IS NULL \
             AND occurred_at <= clock_timestamp() + interval '5 minutes'), \
           next_task_due = (SELECT min(due_at) FROM tasks WHERE customer_id = $1 AND deleted_at IS NULL AND done_at IS NULL) \
         WHERE id = $1",
    )
    .bind(customer)
    .execute(tx.conn())
    .await?;
    Ok(())
}

fn customer_of(record: &Value) -> Option<Uuid> {
    record["customer_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
}

fn record_id(record: &Value) -> Option<Uuid> {
    record["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// Keeps a task's reminder job in step with the task (other objects have none).
async fn sync_reminder(tx: &mut TenantTx, object: ObjectKey, id: Option<Uuid>) -> Result<()> {
    match (object, id) {
        (ObjectKey::Tasks, Some(id)) => reminders::sync(tx, id).await,
        _ => Ok(()),
    }
}

/// Whether changes to this object move its customer's follow-up status.
fn tracks_followups(object: ObjectKey) -> bool {
    matches!(object, ObjectKey::Activities | ObjectKey::Tasks)
}

/// Creates a record of `schema`'s object from a JSON body.
pub async fn create(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    body: &Value,
    options: CreateOptions,
) -> Result<Value> {
    access.require(schema.object, RecordAction::Create)?;
    let mut input = engine::parse_input(schema, body, true)?;
    record_types::prepare_create(schema, access, &mut input)?;
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
            check_related(tx, access, &input, None).await?;
            sales::prepare_opportunity(tx, schema, &mut input, None).await?;
        }
        ObjectKey::Activities => {
            check_related(tx, access, &input, None).await?;
            if input.get("occurred_at").is_none() {
                input.set(
                    schema,
                    "occurred_at",
                    SqlValue::Timestamp(chrono::Utc::now()),
                );
            }
        }
        ObjectKey::Tasks => check_related(tx, access, &input, None).await?,
        ObjectKey::Custom(_) => {}
        ObjectKey::Tickets => {
            check_related(tx, access, &input, None).await?;
            if let Some(h) = hooks::of(schema.object) {
                h.before_create(tx, schema, &mut input).await?;
            }
            // A new ticket waits for assignment (by hand or by its team), not on its creator.
            default_owner = None;
        }
    }
    relations::check_targets(tx, access, &input).await?;
    let owner_key = schema.object.owner_column();
    if input.get(owner_key).is_none() {
        if let Some(owner) = default_owner {
            input.set(schema, owner_key, SqlValue::Uuid(owner));
        }
    }
    register_tags(tx, &input).await?;
    let record = engine::insert(tx, schema, access, &input).await?;
    if let Some(id) = record_id(&record).filter(|_| !schema.feeds.is_empty()) {
        let parents = rollups::parents(tx, schema, id).await?;
        rollups::refresh(tx, schema, &parents).await?;
    }
    if tracks_followups(schema.object) {
        refresh_followups(tx, customer_of(&record)).await?;
    }
    sync_reminder(tx, schema.object, record_id(&record)).await?;
    if let (Some(h), Some(id)) = (hooks::of(schema.object), record_id(&record)) {
        if h.after_create(tx, id, access.actor).await? {
            return engine::read(tx, schema, access, id, engine::Visibility::Live, false).await;
        }
    }
    Ok(record)
}

/// An `Idempotency-Key` sent with a create: who sent it and the request it names.
pub struct Idempotent<'r> {
    pub principal: &'r str,
    pub key: &'r str,
    /// Method, path and options of the request (a key reused for another request is 422).
    pub route: &'r str,
}

/// [`create`], once per idempotency key: a repeat of the same request answers what the first
/// one did (the record re-read, so no decrypted value is ever stored). Returns the status to
/// answer (201 for a create) and the record.
pub async fn create_once(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    body: &Value,
    options: CreateOptions,
    idempotent: Option<Idempotent<'_>>,
) -> Result<(u16, Value)> {
    access.require(schema.object, RecordAction::Create)?;
    let Some(idem) = idempotent else {
        return Ok((201, create(tx, schema, access, body, options).await?));
    };
    if let Some(replay) = idempotency::claim(tx, idem.principal, idem.key, idem.route, body).await?
    {
        let record = engine::read(
            tx,
            schema,
            access,
            replay.record_id,
            engine::Visibility::Any,
            false,
        )
        .await?;
        return Ok((replay.status, record));
    }
    let record = create(tx, schema, access, body, options).await?;
    let id = record_id(&record).ok_or_else(|| Error::internal("created record has no id"))?;
    idempotency::complete(tx, idem.principal, idem.key, 201, id).await?;
    Ok((201, record))
}

/// Refuses a change to a record a listener has locked (a pending approval: 409
/// `record.pending_approval`); 404 instead for callers who cannot see the record at all.
pub async fn ensure_unlocked(
    tx: &mut TenantTx,
    access: &Access<'_>,
    object: ObjectKey,
    id: Uuid,
) -> Result<()> {
    for listener in hooks::listeners() {
        if let Some(refusal) = listener.write_lock(tx, object, id).await? {
            engine::ensure_visible(tx, object, access.scope, id, engine::Visibility::Any).await?;
            return Err(refusal);
        }
    }
    Ok(())
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
    access.require(schema.object, RecordAction::Update)?;
    let mut input = engine::parse_input(schema, body, false)?;
    ensure_unlocked(tx, access, schema.object, id).await?;
    record_types::check_update(tx, schema, access, id, &input).await?;
    let mut before: Option<Value> = None;
    match schema.object {
        ObjectKey::Customers | ObjectKey::Custom(_) => {}
        ObjectKey::Contacts => {
            if let Some(SqlValue::Uuid(customer)) = input.get("customer_id") {
                parent_customer(tx, access, *customer).await?;
            }
        }
        ObjectKey::Opportunities
        | ObjectKey::Activities
        | ObjectKey::Tasks
        | ObjectKey::Tickets => {
            let unmasked = Access {
                unmask: true,
                ..*access
            };
            let current =
                engine::read(tx, schema, &unmasked, id, engine::Visibility::Live, true).await?;
            check_related(tx, access, &input, Some(&current)).await?;
            if schema.object == ObjectKey::Opportunities {
                sales::prepare_opportunity(tx, schema, &mut input, Some(&current)).await?;
            }
            if let Some(h) = hooks::of(schema.object) {
                h.before_update(tx, &input, &current).await?;
            }
            before = Some(current);
        }
    }
    relations::check_targets(tx, access, &input).await?;
    register_tags(tx, &input).await?;
    let mut fed = rollups::parents(tx, schema, id).await?;
    let record = engine::update(tx, schema, access, id, expected_version, &input).await?;
    if !schema.feeds.is_empty() {
        fed.extend(rollups::parents(tx, schema, id).await?);
        rollups::refresh(tx, schema, &fed).await?;
    }
    if tracks_followups(schema.object) {
        let old = before.as_ref().and_then(customer_of);
        let new = customer_of(&record);
        refresh_followups(tx, new).await?;
        if old != new {
            refresh_followups(tx, old).await?;
        }
    }
    sync_reminder(tx, schema.object, Some(id)).await?;
    if let (Some(h), Some(before)) = (hooks::of(schema.object), before.as_ref()) {
        if h.after_update(tx, id, before, &record, access.actor)
            .await?
        {
            return engine::read(tx, schema, access, id, engine::Visibility::Live, false).await;
        }
    }
    Ok(record)
}

/// The customer a record hangs off (activities, tasks), read before it changes.
async fn followup_customer(tx: &mut TenantTx, object: ObjectKey, id: Uuid) -> Result<Option<Uuid>> {
    if !tracks_followups(object) {
        return Ok(None);
    }
    let customer: Option<Option<Uuid>> = sqlx::query_scalar(&format!(
        "SELECT customer_id FROM {} WHERE id = $1",
        object.table()
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(customer.flatten())
}

/// Moves a record to the recycle bin (keeping follow-up status right).
pub async fn soft_delete(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<()> {
    soft_delete_nested(tx, schema, access, id, 0).await
}

/// [`soft_delete`] at `depth` levels of cascade from the record a caller deleted.
pub(crate) async fn soft_delete_nested(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    depth: u8,
) -> Result<()> {
    access.require(schema.object, RecordAction::Delete)?;
    ensure_unlocked(tx, access, schema.object, id).await?;
    relations::check_restrict(tx, schema, id, false).await?;
    let customer = followup_customer(tx, schema.object, id).await?;
    engine::soft_delete(tx, schema, access, id).await?;
    let fed = rollups::parents(tx, schema, id).await?;
    rollups::refresh(tx, schema, &fed).await?;
    relations::apply_on_delete(tx, schema, access, id, false, depth).await?;
    sync_reminder(tx, schema.object, Some(id)).await?;
    refresh_followups(tx, customer).await
}

/// Restores a record from the recycle bin (keeping follow-up status right).
pub async fn restore(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<Value> {
    access.require(schema.object, RecordAction::Delete)?;
    let mut record = engine::restore(tx, schema, access, id).await?;
    let fed = rollups::parents(tx, schema, id).await?;
    rollups::refresh(tx, schema, &fed).await?;
    if schema.custom.iter().any(|d| d.ty == FieldType::Rollup) {
        rollups::recompute_own(tx, schema, id).await?;
        record = engine::read(tx, schema, access, id, engine::Visibility::Live, false).await?;
    }
    if tracks_followups(schema.object) {
        refresh_followups(tx, customer_of(&record)).await?;
    }
    sync_reminder(tx, schema.object, Some(id)).await?;
    Ok(record)
}

/// Deletes a record for good (keeping follow-up status right).
pub async fn purge(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<()> {
    purge_nested(tx, schema, access, id, 0).await
}

/// [`purge`] at `depth` levels of cascade from the record a caller purged.
pub(crate) async fn purge_nested(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    depth: u8,
) -> Result<()> {
    access.require(schema.object, RecordAction::Purge)?;
    ensure_unlocked(tx, access, schema.object, id).await?;
    relations::check_restrict(tx, schema, id, true).await?;
    let customer = followup_customer(tx, schema.object, id).await?;
    if let Some(h) = hooks::of(schema.object) {
        h.before_purge(tx, id).await?;
    }
    // Pointing records first: no foreign key may be left pointing at the purged row.
    relations::apply_on_delete(tx, schema, access, id, true, depth).await?;
    let fed = rollups::parents(tx, schema, id).await?;
    engine::purge(tx, schema, access, id).await?;
    rollups::refresh(tx, schema, &fed).await?;
    sync_reminder(tx, schema.object, Some(id)).await?;
    refresh_followups(tx, customer).await
}

/// The tags of a live record, locked for a read-modify-write.
async fn current_tags(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
) -> Result<Vec<Value>> {
    let current = engine::read(tx, schema, access, id, engine::Visibility::Live, true).await?;
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
    access.require(schema.object, RecordAction::Update)?;
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
    access.require(schema.object, RecordAction::Update)?;
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
