//! An object's fields as the engine sees them: built-ins and the tenant's custom fields,
//! resolved by the same names clients use (`phone`, `custom.vip_level`).

use super::fields::{self, FieldDef};
use super::meta::{FieldType, ObjectKey};
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::objects::ObjectDef;
use serde_json::Value;
use std::borrow::Cow;

/// One field, built-in or custom.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The name in JSON: `phone`, or the custom key (inside `custom` on built-in objects).
    pub key: &'a str,
    /// A custom field of a built-in object: its value travels inside the record's `custom`
    /// object. A custom object's fields sit at the top level.
    pub nested: bool,
    /// The column (a fixed built-in name, or `cf_<key>` from a validated `FieldKey`).
    pub column: String,
    pub ty: FieldType,
    pub custom: bool,
    pub required: bool,
    pub options: Cow<'a, [String]>,
    pub target: Option<ObjectKey>,
    pub sensitive: bool,
    pub encrypted: bool,
    pub searchable: bool,
    pub default: Option<&'a Value>,
    pub unique: bool,
}

impl Field<'_> {
    pub fn spec(&self) -> super::values::Spec<'_> {
        super::values::Spec {
            ty: self.ty,
            options: &self.options,
            target: self.target,
        }
    }

    /// The path clients use for this field in errors and filters.
    pub fn path(&self) -> String {
        if self.nested {
            format!("custom.{}", self.key)
        } else {
            self.key.to_owned()
        }
    }

    /// This field's value in a record as the engine returns it.
    pub fn value_in<'v>(&self, record: &'v Value) -> &'v Value {
        if self.nested {
            &record["custom"][self.key]
        } else {
            &record[self.key]
        }
    }
}

/// An object with the tenant's custom fields loaded.
pub struct ObjectSchema {
    pub object: ObjectKey,
    /// A custom object's catalogue entry (names, labels); `None` for built-in objects.
    pub def: Option<ObjectDef>,
    pub custom: Vec<FieldDef>,
    /// The roll-ups this object's records feed (recomputed after each of their writes).
    pub feeds: Vec<crate::rollups::Feed>,
    /// The relation fields (of any object) that point to this one: what deleting one of its
    /// records must restrict, empty or cascade to.
    pub referrers: Vec<FieldDef>,
    /// The object's record types; when it has any, records carry a `record_type` field.
    pub record_types: Vec<crm_core::objects::RecordType>,
    /// Customers from tenant schema v14 on: the address's city is also the generated column
    /// `address_city`, which filters on `address.city` use (an index covers it with the level).
    pub city_column: bool,
}

impl ObjectSchema {
    /// An object's fields as a caller reads them (the tenant's API document, say): needs
    /// `customers:read`, as the field list does.
    pub async fn of_caller(
        tx: &mut TenantTx,
        caller: &crm_core::authz::Caller,
        object: ObjectKey,
    ) -> Result<ObjectSchema> {
        caller.require(object.permission(crate::meta::RecordAction::Read))?;
        ObjectSchema::load(tx, object).await
    }

    /// Reads the object's fields in `tx`; a custom object the tenant does not have is 404
    /// `object.not_found`.
    pub async fn load(tx: &mut TenantTx, object: ObjectKey) -> Result<ObjectSchema> {
        let def = match object {
            ObjectKey::Custom(name) => Some(
                crm_core::objects::get(tx, name)
                    .await?
                    .ok_or_else(|| crm_core::objects::not_found(name.as_str()))?,
            ),
            _ => None,
        };
        let city_column = object == ObjectKey::Customers
            && sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'customers'::regclass \
                 AND attname = 'address_city' AND NOT attisdropped)",
            )
            .fetch_one(tx.conn())
            .await?;
        let mut schema = ObjectSchema {
            object,
            def,
            custom: fields::list(tx, object).await?,
            feeds: Vec::new(),
            referrers: fields::relations_to(tx, object).await?,
            record_types: crm_core::objects::record_types(tx, object.as_str()).await?,
            city_column,
        };
        schema.feeds = crate::rollups::feeds_of(tx, &schema).await?;
        Ok(schema)
    }

    /// What one record is called in messages: `customer`, or a custom object's name.
    pub fn noun(&self) -> Cow<'_, str> {
        match &self.def {
            Some(def) => Cow::Borrowed(def.name.as_str()),
            None => Cow::Borrowed(self.object.singular()),
        }
    }

    /// The built-in fields, then `record_type` when the object has record types.
    pub fn builtins(&self) -> impl Iterator<Item = Field<'_>> {
        let record_type = (!self.record_types.is_empty()).then(|| Field {
            key: "record_type",
            nested: false,
            column: "record_type".to_owned(),
            ty: FieldType::Select,
            custom: false,
            required: false,
            options: Cow::Owned(self.record_types.iter().map(|t| t.key.clone()).collect()),
            target: None,
            sensitive: false,
            encrypted: false,
            searchable: false,
            default: None,
            unique: false,
        });
        self.object
            .builtins()
            .iter()
            .map(|b| Field {
                key: b.key,
                nested: false,
                column: b.key.to_owned(),
                ty: b.ty,
                custom: false,
                required: b.required,
                options: Cow::Owned(b.options.iter().map(|o| (*o).to_owned()).collect()),
                target: b.target,
                sensitive: b.sensitive,
                encrypted: false,
                searchable: b.searchable,
                default: None,
                unique: false,
            })
            .chain(record_type)
    }

    pub fn customs(&self) -> impl Iterator<Item = Field<'_>> {
        let nested = !self.object.is_custom();
        self.custom.iter().map(move |d| Field {
            key: d.key.as_str(),
            nested,
            column: d.key.column(),
            ty: d.ty,
            custom: true,
            required: d.required,
            options: Cow::Borrowed(&d.options),
            target: d.target,
            sensitive: d.sensitive,
            encrypted: d.encrypted,
            searchable: d.searchable && !d.encrypted,
            default: d.default.as_ref(),
            unique: d.unique,
        })
    }

    pub fn all(&self) -> impl Iterator<Item = Field<'_>> {
        self.builtins().chain(self.customs())
    }

    pub fn builtin(&self, key: &str) -> Option<Field<'_>> {
        self.builtins().find(|f| f.key == key)
    }

    pub fn custom_field(&self, key: &str) -> Option<Field<'_>> {
        self.customs().find(|f| f.key == key)
    }

    /// Resolves a client-facing name: `custom.<key>`, a built-in, or a custom key that no
    /// built-in shadows.
    pub fn resolve(&self, name: &str) -> Option<Field<'_>> {
        match name.strip_prefix("custom.") {
            Some(key) => self.custom_field(key),
            None => self.builtin(name).or_else(|| self.custom_field(name)),
        }
    }

    /// A relation field to a record object named by its key or, for built-in `*_id` fields,
    /// without the suffix (`customer` for `customer_id`), with the object it points to.
    pub fn relation(&self, name: &str) -> Option<(Field<'_>, ObjectKey)> {
        let field = self
            .resolve(name)
            .or_else(|| self.builtin(&format!("{name}_id")))?;
        let target = field.target?;
        (field.ty == FieldType::Relation).then_some((field, target))
    }

    /// This object's relation fields that point to `target`.
    pub fn pointing_to(&self, target: ObjectKey) -> impl Iterator<Item = Field<'_>> {
        self.all()
            .filter(move |f| f.ty == FieldType::Relation && f.target == Some(target))
    }

    /// The field whose unique index or foreign key a constraint name belongs to.
    pub fn by_constraint(&self, constraint: &str) -> Option<Field<'_>> {
        let table = self.object.table();
        let rest = constraint.strip_prefix(table.as_ref())?.strip_prefix('_')?;
        let column = rest
            .strip_suffix("_unique")
            .or_else(|| rest.strip_suffix("_fkey"))?;
        self.all().find(|f| f.column == column)
    }

    /// Whether any field is encrypted (the data key is needed).
    pub fn has_encrypted(&self) -> bool {
        self.custom.iter().any(|d| d.encrypted)
    }

    /// The tenant's data key when the object has encrypted fields (else `None`, with no query).
    pub async fn data_key(
        &self,
        tx: &mut TenantTx,
        master: Option<&MasterKey>,
    ) -> Result<Option<DataKey>> {
        if self.has_encrypted() {
            crm_core::keys::data_key(tx, master, false).await
        } else {
            Ok(None)
        }
    }
}
