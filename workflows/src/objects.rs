//! The objects rules and approvals may be about: the built-in ones and the company's own
//! (custom) objects. A custom object is checked to exist when a rule or an approval names
//! it, so a typo is a 422 rather than a rule that never fires; stored names are read back
//! with `ObjectKey::named` (a rule or approval of a deleted object is turned off or removed
//! with it, see `listener::WorkflowListener::object_removed`).

use crm_core::db::TenantTx;
use crm_core::{Error, FieldError, Result};
use crm_records::ObjectKey;

/// The object `raw` names, if the tenant has it.
pub async fn known(tx: &mut TenantTx, raw: &str) -> Result<Option<ObjectKey>> {
    match ObjectKey::named(raw.trim()) {
        Some(ObjectKey::Custom(name)) => Ok(crm_core::objects::get(tx, name)
            .await?
            .map(|_| ObjectKey::Custom(name))),
        other => Ok(other),
    }
}

/// The 422 entry for `field` naming no object of the tenant: how to find the objects.
pub fn unknown(field: &str, raw: &str) -> FieldError {
    let builtins: Vec<&str> = ObjectKey::ALL.iter().map(ObjectKey::as_str).collect();
    FieldError::new(
        field,
        "unknown_object",
        format!(
            "'{raw}' is not an object; use a built-in one ({}) or one of the company's own objects (GET /api/v1/objects lists them)",
            builtins.join(", ")
        ),
    )
}

/// The object `raw` names, or 422 `unknown_object` on `field`.
pub async fn require(tx: &mut TenantTx, raw: &str, field: &str) -> Result<ObjectKey> {
    known(tx, raw)
        .await?
        .ok_or_else(|| Error::invalid(vec![unknown(field, raw)]))
}
