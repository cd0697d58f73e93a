//! Custom objects: a tenant defines its own record types (policies, claims, vehicles). Each
//! is a catalogue entry (`crm_core::objects`) plus a real table `o_<key>` in the tenant's
//! schema, created in the same transaction, owned by the tenant role like every other table,
//! with the columns every record table has. From then on the engine serves it like a built-in
//! object: custom fields, CRUD, search, history, events, tags, recycle bin, scopes and its own
//! permissions (`<key>:read|create|update|delete|purge|export`).

use crate::fields::{self, FieldDef};
use crate::meta::{ObjectKey, RecordAction};
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::domain::{ObjectName, Validator};
use crm_core::error::{Error, FieldError, Result};
use crm_core::objects::{self as catalogue, Entry, ObjectDef};
use std::collections::BTreeMap;

/// Default: at most this many custom objects per tenant.
pub const MAX_OBJECTS: i64 = 200;

/// How many objects a company may define and how many custom fields an object may have
/// (`[objects]` in crm.toml: `max_per_tenant`, `max_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectLimits {
    pub max_per_tenant: i64,
    pub max_fields: i64,
}

impl Default for ObjectLimits {
    fn default() -> Self {
        ObjectLimits {
            max_per_tenant: MAX_OBJECTS,
            max_fields: crate::fields::MAX_CUSTOM_FIELDS,
        }
    }
}
/// Longest name, plural name or label, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest icon name, in characters.
pub const ICON_MAX_CHARS: usize = 64;
/// Longest description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// Display names of the built-in objects: singular, plural, zh-CN.
pub fn builtin_names(object: ObjectKey) -> (&'static str, &'static str, &'static str) {
    match object {
        ObjectKey::Customers => ("Customer", "Customers", "客户"),
        ObjectKey::Contacts => ("Contact", "Contacts", "联系人"),
        ObjectKey::Opportunities => ("Opportunity", "Opportunities", "商机"),
        ObjectKey::Activities => ("Activity", "Activities", "跟进记录"),
        ObjectKey::Tasks => ("Task", "Tasks", "任务"),
        ObjectKey::Tickets => ("Ticket", "Tickets", "工单"),
        ObjectKey::Custom(_) => ("", "", ""),
    }
}

/// An object as listed: a built-in one (`def: None`) or a custom one, with its custom fields.
#[derive(Debug)]
pub struct ObjectInfo {
    pub object: ObjectKey,
    pub def: Option<ObjectDef>,
    pub fields: Vec<FieldDef>,
}

/// A new object as requested.
#[derive(Debug, Clone, Default)]
pub struct NewObject {
    pub key: String,
    pub name: String,
    pub name_plural: String,
    pub labels: BTreeMap<String, String>,
    pub icon: Option<String>,
    pub description: Option<String>,
}

/// What may change on an object (its key is fixed); `Some(None)` clears icon or description.
#[derive(Debug, Clone, Default)]
pub struct ObjectPatch {
    pub name: Option<String>,
    pub name_plural: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub icon: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

fn check_text(v: &mut Validator, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() || value.chars().count() > max {
        v.push(FieldError::new(
            field,
            "invalid",
            format!("must be 1-{max} characters"),
        ));
    }
}

fn check_entry(v: &mut Validator, entry: &Entry) {
    check_text(v, "name", &entry.name, NAME_MAX_CHARS);
    check_text(v, "name_plural", &entry.name_plural, NAME_MAX_CHARS);
    for (locale, label) in &entry.labels {
        check_text(v, &format!("labels.{locale}"), label, NAME_MAX_CHARS);
    }
    if let Some(icon) = &entry.icon {
        check_text(v, "icon", icon, ICON_MAX_CHARS);
    }
    if let Some(description) = &entry.description {
        if description.chars().count() > DESCRIPTION_MAX_CHARS {
            v.push(FieldError::new(
                "description",
                "too_long",
                format!("must be at most {DESCRIPTION_MAX_CHARS} characters"),
            ));
        }
    }
}

fn trimmed(entry: Entry) -> Entry {
    Entry {
        name: entry.name.trim().to_owned(),
        name_plural: entry.name_plural.trim().to_owned(),
        labels: entry
            .labels
            .into_iter()
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect(),
        icon: entry.icon.map(|i| i.trim().to_owned()),
        description: entry.description,
    }
}

/// The statements that create a custom object's table: the system columns every record
/// table has, name, owner, team and tags, and the indexes lists, search and scopes use.
fn table_ddl(name: ObjectName) -> Vec<String> {
    let t = format!("o_{name}");
    vec![
        format!(
            "CREATE TABLE \"{t}\" (\
               id uuid PRIMARY KEY, \
               name text NOT NULL, \
               owner_id uuid REFERENCES users (id), \
               team_id uuid REFERENCES teams (id), \
               tags text[] NOT NULL DEFAULT '{{}}', \
               record_type text, \
               name_grams text[] NOT NULL DEFAULT '{{}}', \
               created_at timestamptz NOT NULL DEFAULT now(), \
               updated_at timestamptz NOT NULL DEFAULT now(), \
               created_by uuid, \
               version bigint NOT NULL DEFAULT 1, \
               deleted_at timestamptz)"
        ),
        format!("CREATE INDEX \"{t}_name_trgm\" ON \"{t}\" USING gin (name gin_trgm_ops)"),
        format!("CREATE INDEX \"{t}_name_grams\" ON \"{t}\" USING gin (name_grams)"),
        format!("CREATE INDEX \"{t}_tags\" ON \"{t}\" USING gin (tags)"),
        format!("CREATE INDEX \"{t}_owner\" ON \"{t}\" (owner_id, id)"),
        format!("CREATE INDEX \"{t}_team\" ON \"{t}\" (team_id) WHERE team_id IS NOT NULL"),
        format!("CREATE INDEX \"{t}_updated\" ON \"{t}\" (updated_at, id)"),
    ]
}

/// Creates a custom object (`objects:manage`): its catalogue entry, its table and its
/// permissions (every role gets on it what it holds on customers; the admin role everything).
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    limits: &ObjectLimits,
    new: NewObject,
) -> Result<ObjectDef> {
    caller.require(Permission::ObjectsManage)?;
    let mut v = Validator::new();
    let key = v.check(ObjectName::parse("key", &new.key));
    let entry = Entry {
        name: new.name,
        name_plural: new.name_plural,
        labels: new.labels,
        icon: new.icon,
        description: new.description,
    };
    check_entry(&mut v, &entry);
    v.finish()?;
    let Some(key) = key else {
        return Err(Error::internal("validated object key missing"));
    };
    let count = catalogue::count(tx).await?;
    if count >= limits.max_per_tenant {
        return Err(Error::invalid_field(
            "key",
            "object.limit_reached",
            format!(
                "the company already has the maximum of {} custom objects; delete one first",
                limits.max_per_tenant
            ),
        ));
    }
    let def = catalogue::insert(tx, key, &trimmed(entry), caller.user_id).await?;
    for sql in table_ddl(key) {
        sqlx::query(&sql).execute(tx.conn()).await?;
    }
    crm_core::roles::object_created(tx, key).await?;
    fields::bump_metadata_version(tx).await?;
    audit::record(
        tx,
        actor,
        "object.created",
        Some(("object", key.to_string())),
        serde_json::json!({ "name": def.name }),
    )
    .await?;
    Ok(def)
}

async fn info(tx: &mut TenantTx, object: ObjectKey, def: Option<ObjectDef>) -> Result<ObjectInfo> {
    Ok(ObjectInfo {
        object,
        def,
        fields: fields::list(tx, object).await?,
    })
}

/// Every object the caller may read records of, built-in ones first, with their fields.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for object in ObjectKey::ALL {
        if caller.holds(object.permission(RecordAction::Read)) {
            out.push(info(tx, *object, None).await?);
        }
    }
    for def in catalogue::list(tx).await? {
        let object = ObjectKey::Custom(def.key);
        if caller.holds(object.permission(RecordAction::Read))
            || caller.holds(Permission::ObjectsManage)
        {
            out.push(info(tx, object, Some(def)).await?);
        }
    }
    Ok(out)
}

async fn load(tx: &mut TenantTx, key: &str) -> Result<(ObjectKey, Option<ObjectDef>)> {
    match ObjectKey::named(key) {
        Some(ObjectKey::Custom(name)) => {
            let def = catalogue::get(tx, name)
                .await?
                .ok_or_else(|| catalogue::not_found(key))?;
            Ok((ObjectKey::Custom(name), Some(def)))
        }
        Some(builtin) => Ok((builtin, None)),
        None => Err(catalogue::not_found(key)),
    }
}

/// One object with its fields (its read permission, or `objects:manage`).
pub async fn get(tx: &mut TenantTx, caller: &Caller, key: &str) -> Result<ObjectInfo> {
    let (object, def) = load(tx, key).await?;
    if !caller.holds(Permission::ObjectsManage) {
        caller.require(object.permission(RecordAction::Read))?;
    }
    info(tx, object, def).await
}

fn custom_only(object: ObjectKey, def: Option<ObjectDef>) -> Result<(ObjectName, ObjectDef)> {
    match (object, def) {
        (ObjectKey::Custom(name), Some(def)) => Ok((name, def)),
        _ => Err(Error::conflict(
            "object.builtin",
            format!(
                "{object} is a built-in object; only your own objects can be changed or deleted"
            ),
        )),
    }
}

/// Renames or relabels a custom object (`objects:manage`).
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    key: &str,
    patch: ObjectPatch,
) -> Result<ObjectDef> {
    caller.require(Permission::ObjectsManage)?;
    let (object, def) = load(tx, key).await?;
    let (name, def) = custom_only(object, def)?;
    let entry = Entry {
        name: patch.name.unwrap_or(def.name),
        name_plural: patch.name_plural.unwrap_or(def.name_plural),
        labels: patch.labels.unwrap_or(def.labels),
        icon: patch.icon.unwrap_or(def.icon),
        description: patch.description.unwrap_or(def.description),
    };
    let mut v = Validator::new();
    check_entry(&mut v, &entry);
    v.finish()?;
    let updated = catalogue::update(tx, name, &trimmed(entry)).await?;
    fields::bump_metadata_version(tx).await?;
    audit::record(
        tx,
        actor,
        "object.updated",
        Some(("object", name.to_string())),
        serde_json::json!({ "name": updated.name }),
    )
    .await?;
    Ok(updated)
}

/// Deletes a custom object with its table (`objects:manage`). One that still has records
/// (live or in the recycle bin) is 409 `object.has_records` unless `purge` says to drop them
/// too; one that other objects' relation fields point to is 409 `object.referenced`.
pub async fn delete(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    key: &str,
    purge: bool,
) -> Result<()> {
    caller.require(Permission::ObjectsManage)?;
    let (object, def) = load(tx, key).await?;
    let (name, _) = custom_only(object, def)?;
    let referencing = fields::referencing(tx, object).await?;
    if !referencing.is_empty() {
        return Err(Error::conflict(
            "object.referenced",
            format!(
                "relation and roll-up fields of other objects use {name}: {}; delete them first",
                referencing.join(", ")
            ),
        ));
    }
    let table = object.table();
    let records: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
        .fetch_one(tx.conn())
        .await?;
    if records > 0 && !purge {
        return Err(Error::conflict(
            "object.has_records",
            format!(
                "{name} still has {records} record(s), counting the recycle bin; delete with ?purge=true to drop them for good"
            ),
        ));
    }
    sqlx::query(&format!("DROP TABLE \"{table}\""))
        .execute(tx.conn())
        .await?;
    fields::forget_object(tx, object).await?;
    catalogue::forget_record_types(tx, name.as_str()).await?;
    crate::history::forget_object(tx, object).await?;
    for listener in crate::hooks::listeners() {
        listener.object_removed(tx, object).await?;
    }
    catalogue::remove(tx, name).await?;
    crm_core::roles::object_removed(tx, name).await?;
    fields::bump_metadata_version(tx).await?;
    audit::record(
        tx,
        actor,
        "object.deleted",
        Some(("object", name.to_string())),
        serde_json::json!({ "records_purged": records }),
    )
    .await
}
