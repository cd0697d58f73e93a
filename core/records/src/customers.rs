//! Customer-specific behaviour around the engine: dedupe on entry (查重), duplicate
//! candidates, and merging two customers into one.

use super::engine::{self, Access, Input, Visibility};
use super::history;
use super::meta::{ObjectKey, RecordAction};
use super::schema::ObjectSchema;
use super::values::SqlValue;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

/// Refuses a new customer whose normalised phone or e-mail already belongs to a live
/// customer (tenant-wide, whatever the caller's scope), naming the existing one.
pub async fn ensure_not_duplicate(
    tx: &mut TenantTx,
    input: &Input<'_>,
    except: Option<Uuid>,
) -> Result<()> {
    let phone = match input.get("phone") {
        Some(SqlValue::Text(p)) => Some(p.clone()),
        _ => None,
    };
    let email = match input.get("email") {
        Some(SqlValue::Text(e)) => Some(e.clone()),
        _ => None,
    };
    if phone.is_none() && email.is_none() {
        return Ok(());
    }
    let existing: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, CASE WHEN phone = $1 THEN 'phone' ELSE 'email' END FROM customers \
         WHERE deleted_at IS NULL AND (phone = $1 OR email = $2) AND ($3::uuid IS NULL OR id <> $3) \
         ORDER BY id LIMIT 1",
    )
    .bind(&phone)
    .bind(&email)
    .bind(except)
    .fetch_optional(tx.conn())
    .await?;
    match existing {
        None => Ok(()),
        Some((id, field)) => Err(Error::Duplicate {
            code: "customer.duplicate",
            message: format!(
                "customer {id} already has this {}; open it instead, or send ?allow_duplicate=true to create another",
                field.as_deref().unwrap_or("phone or e-mail")
            ),
            existing_id: id,
        }),
    }
}

/// The live customer with a (normalised) phone, preferring one visible in `scope` over an
/// older one that is not; the flag says whether it is visible.
pub async fn find_by_phone(
    tx: &mut TenantTx,
    scope: super::RecordScope,
    phone: &str,
) -> Result<Option<(Uuid, bool)>> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT id, (true");
    scope.push_predicate(&mut q, "owner_id");
    q.push(") FROM customers WHERE deleted_at IS NULL AND phone = ")
        .push_bind(phone.to_owned());
    q.push(" ORDER BY 2 DESC, id LIMIT 1");
    Ok(q.build_query_as()
        .persistent(false)
        .fetch_optional(tx.conn())
        .await?)
}

/// A pair of live customers sharing a phone or e-mail.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicatePair {
    pub customer_id: Uuid,
    pub customer_name: String,
    pub other_id: Uuid,
    pub other_name: String,
    /// `phone` or `email`.
    pub reason: String,
}

/// Duplicate candidates among the customers the caller sees, oldest pairs first.
pub async fn duplicates(
    tx: &mut TenantTx,
    access: &Access<'_>,
    limit: i64,
) -> Result<Vec<DuplicatePair>> {
    access.require(ObjectKey::Customers, RecordAction::Read)?;
    let mut q = QueryBuilder::<Postgres>::new(
        "WITH visible AS (SELECT id, name, phone, email FROM customers WHERE deleted_at IS NULL",
    );
    access.scope.push_predicate(&mut q, "owner_id");
    q.push(
        ") SELECT a.id, a.name, b.id, b.name, 'phone' FROM visible a JOIN visible b ON a.phone = b.phone AND a.id < b.id \
         UNION ALL \
         SELECT a.id, a.name, b.id, b.name, 'email' FROM visible a JOIN visible b ON a.email = b.email AND a.id < b.id \
         ORDER BY 1, 3 LIMIT ",
    );
    q.push_bind(limit);
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    rows.iter()
        .map(|r| {
            Ok(DuplicatePair {
                customer_id: r.try_get(0)?,
                customer_name: r.try_get(1)?,
                other_id: r.try_get(2)?,
                other_name: r.try_get(3)?,
                reason: r.try_get(4)?,
            })
        })
        .collect()
}

/// What `keep` may say per field: whose value the merged customer keeps.
pub const MERGE_CHOICES: &[&str] = &["this", "other"];

/// Merges `other` into `this`: field values per `keep` (`"this"` or `"other"`; unnamed fields
/// keep this customer's value, or take the other's where this one is empty), tags united,
/// contacts moved, `other` retired to the recycle bin with `merged_into`. Both histories stay.
pub async fn merge(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    this_id: Uuid,
    other_id: Uuid,
    keep: &Map<String, Value>,
) -> Result<Value> {
    // The other customer goes to the recycle bin: both permissions are needed.
    access.require(ObjectKey::Customers, RecordAction::Update)?;
    access.require(ObjectKey::Customers, RecordAction::Delete)?;
    if this_id == other_id {
        return Err(Error::invalid_field(
            "other_id",
            "same_record",
            "a customer cannot be merged with itself",
        ));
    }
    let unmasked = Access {
        unmask: true,
        ..*access
    };
    let this = engine::read(tx, schema, &unmasked, this_id, Visibility::Live, true).await?;
    let other = engine::read(tx, schema, &unmasked, other_id, Visibility::Live, true)
        .await
        .map_err(|_| {
            Error::invalid_field(
                "other_id",
                "not_found",
                format!("customer {other_id} not found"),
            )
        })?;
    let mut v = crm_core::domain::Validator::new();
    for (k, choice) in keep {
        if schema.resolve(k).is_none() {
            v.push(crm_core::error::FieldError::new(
                format!("keep.{k}"),
                "unknown_field",
                "not a field of customers",
            ));
        } else if !choice.as_str().is_some_and(|c| MERGE_CHOICES.contains(&c)) {
            v.push(crm_core::error::FieldError::new(
                format!("keep.{k}"),
                "invalid",
                "use \"this\" or \"other\"",
            ));
        }
    }
    v.finish()?;

    let mut body = Map::new();
    let mut custom = Map::new();
    for f in schema.all() {
        let (mine, theirs) = if f.custom {
            (
                this["custom"][f.key].clone(),
                other["custom"][f.key].clone(),
            )
        } else {
            (this[f.key].clone(), other[f.key].clone())
        };
        let chosen = match keep
            .get(&f.path())
            .or_else(|| keep.get(f.key))
            .and_then(Value::as_str)
        {
            Some("other") => theirs,
            Some(_) => mine,
            None if f.key == "tags" && !f.custom => {
                let mut all: Vec<Value> = mine.as_array().cloned().unwrap_or_default();
                for t in theirs.as_array().cloned().unwrap_or_default() {
                    if !all.contains(&t) {
                        all.push(t);
                    }
                }
                Value::Array(all)
            }
            None if mine.is_null() || mine == json!({}) => theirs,
            None => mine,
        };
        if f.custom {
            custom.insert(f.key.to_owned(), chosen);
        } else {
            body.insert(f.key.to_owned(), chosen);
        }
    }
    body.insert("custom".into(), Value::Object(custom));

    // Retire the other first, so its unique values can move over.
    sqlx::query(
        "UPDATE customers SET deleted_at = now(), merged_into = $2, version = version + 1, updated_at = now() WHERE id = $1",
    )
    .bind(other_id)
    .bind(this_id)
    .execute(tx.conn())
    .await?;
    let input = engine::parse_input(schema, &Value::Object(body), false)?;
    engine::update(tx, schema, access, this_id, None, &input).await?;
    // Everything hanging off the other customer moves over, each move in its own history.
    let mut moved = serde_json::Map::new();
    for object in [
        ObjectKey::Contacts,
        ObjectKey::Opportunities,
        ObjectKey::Activities,
        ObjectKey::Tasks,
    ] {
        let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
            "UPDATE {} SET customer_id = $1, version = version + 1, updated_at = now() WHERE customer_id = $2 RETURNING id",
            object.table()
        ))
        .bind(this_id)
        .bind(other_id)
        .fetch_all(tx.conn())
        .await?;
        for id in &ids {
            let change = json!({ "customer_id": { "before": other_id, "after": this_id } });
            history::log(
                tx,
                object,
                *id,
                "updated",
                access.actor,
                &change,
                json!({ "changes": change }),
            )
            .await?;
        }
        moved.insert(object.as_str().to_owned(), json!(ids.len()));
    }
    super::service::refresh_followups(tx, Some(this_id)).await?;
    super::service::refresh_followups(tx, Some(other_id)).await?;
    let detail = json!({ "merged_from": other_id, "merged_into": this_id, "moved": moved });
    history::log(
        tx,
        schema.object,
        this_id,
        "merged",
        access.actor,
        &detail,
        detail.clone(),
    )
    .await?;
    // The other customer: merged in its history, deleted for consumers of events.
    history::record(tx, schema.object, other_id, "merged", access.actor, &detail).await?;
    history::emit(tx, schema.object, other_id, "deleted", access.actor, detail).await?;
    engine::read(tx, schema, access, this_id, Visibility::Live, false).await
}
