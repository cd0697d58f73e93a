//! An object's fields as the engine sees them: built-ins and the tenant's custom fields,
//! resolved by the same names clients use (`phone`, `custom.vip_level`).

use super::fields::{self, FieldDef};
use super::meta::{FieldType, ObjectKey};
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use serde_json::Value;
use std::borrow::Cow;

/// One field, built-in or custom.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// The name in JSON: `phone`, or the custom key inside `custom`.
    pub key: &'a str,
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
        if self.custom {
            format!("custom.{}", self.key)
        } else {
            self.key.to_owned()
        }
    }
}

/// An object with the tenant's custom fields loaded.
pub struct ObjectSchema {
    pub object: ObjectKey,
    pub custom: Vec<FieldDef>,
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
        caller.require(crm_core::authz::Permission::CustomersRead)?;
        ObjectSchema::load(tx, object).await
    }

    pub async fn load(tx: &mut TenantTx, object: ObjectKey) -> Result<ObjectSchema> {
        let city_column = object == ObjectKey::Customers
            && sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'customers'::regclass \
                 AND attname = 'address_city' AND NOT attisdropped)",
            )
            .fetch_one(tx.conn())
            .await?;
        Ok(ObjectSchema {
            object,
            custom: fields::list(tx, object).await?,
            city_column,
        })
    }

    pub fn builtins(&self) -> impl Iterator<Item = Field<'_>> {
        self.object.builtins().iter().map(|b| Field {
            key: b.key,
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
    }

    pub fn customs(&self) -> impl Iterator<Item = Field<'_>> {
        self.custom.iter().map(|d| Field {
            key: d.key.as_str(),
            column: d.key.column(),
            ty: d.ty,
            custom: true,
            required: d.required,
            options: Cow::Borrowed(&d.options),
            target: d.target,
            sensitive: d.sensitive,
            encrypted: d.encrypted,
            searchable: d.ty == FieldType::Text && !d.encrypted,
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

    /// The field whose unique index or foreign key a constraint name belongs to.
    pub fn by_constraint(&self, constraint: &str) -> Option<Field<'_>> {
        let table = self.object.table();
        let rest = constraint.strip_prefix(table)?.strip_prefix('_')?;
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
