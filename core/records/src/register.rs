//! The walk-in and call register, the use case: log a call or visit by phone on the customer
//! with that phone, or (when asked) create the customer and log it in one step.

use crate::engine::Access;
use crate::meta::ObjectKey;
use crate::schema::ObjectSchema;
use crate::scope::CallerScope;
use crate::service::{self, CreateOptions};
use crate::{customers, values};
use crm_core::audit::Actor;
use crm_core::authz::{Caller, Permission};
use crm_core::crypto::MasterKey;
use crm_core::db::TenantTx;
use crm_core::{Error, Result};
use serde_json::{json, Value};
use uuid::Uuid;

/// The activity kinds the register logs.
pub const KINDS: &[&str] = &["call", "visit"];

/// A call or visit to log.
pub struct Entry {
    /// Any common format; China is the default region.
    pub phone: String,
    /// For a new customer (default: the phone number).
    pub name: Option<String>,
    /// `call` (default) or `visit`.
    pub kind: Option<String>,
    /// `inbound` (default) or `outbound`.
    pub direction: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    /// Create the customer when no customer has this phone.
    pub create_customer: bool,
}

/// What the register did.
pub struct Registered {
    pub customer_id: Uuid,
    pub customer_created: bool,
    pub activity: Value,
}

/// Logs the entry as an activity (needs `customers:create`). A phone of a customer outside the
/// caller's scope is 409 `register.customer_of_another`; an unknown phone is 404
/// `register.unknown_caller` unless `create_customer`.
pub async fn register(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    master: Option<&MasterKey>,
    entry: Entry,
) -> Result<Registered> {
    caller.require(Permission::CustomersCreate)?;
    let phone =
        values::normalize_phone("phone", &entry.phone).map_err(|e| Error::invalid(vec![e]))?;
    let kind = entry.kind.unwrap_or_else(|| "call".into());
    if !KINDS.contains(&kind.as_str()) {
        return Err(Error::invalid_field(
            "kind",
            "invalid",
            "the register logs calls and visits",
        ));
    }
    let customer_scope = caller.record_scope(ObjectKey::Customers);
    let (customer_id, created) = match customers::find_by_phone(tx, customer_scope, &phone).await? {
        Some((id, true)) => (id, false),
        Some((id, false)) => {
            return Err(Error::Duplicate {
                code: "register.customer_of_another",
                message: format!("customer {id} with this phone is looked after by someone else; ask them or an administrator"),
                existing_id: id,
            })
        }
        None if !entry.create_customer => {
            return Err(Error::not_found(
                "register.unknown_caller",
                format!("no customer has the phone {phone}; repeat with \"create_customer\": true (and a \"name\") to create one and log the {kind}"),
            ))
        }
        None => {
            let schema = ObjectSchema::load(tx, ObjectKey::Customers).await?;
            let key = schema.data_key(tx, master).await?;
            let access = Access::of_caller(caller, actor, ObjectKey::Customers, key.as_ref());
            let source = if kind == "visit" { "到店 walk-in" } else { "来电 inbound call" };
            let name = entry.name.unwrap_or_else(|| phone.clone());
            let customer = service::create(
                tx,
                &schema,
                &access,
                &json!({"name": name, "kind": "person", "phone": phone, "source": source}),
                CreateOptions::default(),
            )
            .await?;
            let id = customer["id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| Error::internal("created customer has no id"))?;
            (id, true)
        }
    };
    let schema = ObjectSchema::load(tx, ObjectKey::Activities).await?;
    let key = schema.data_key(tx, master).await?;
    let access = Access::of_caller(caller, actor, ObjectKey::Activities, key.as_ref());
    let activity = service::create(
        tx,
        &schema,
        &access,
        &json!({
            "kind": kind, "direction": entry.direction.unwrap_or_else(|| "inbound".into()),
            "subject": entry.subject, "body": entry.body, "customer_id": customer_id
        }),
        CreateOptions::default(),
    )
    .await?;
    Ok(Registered {
        customer_id,
        customer_created: created,
        activity,
    })
}
