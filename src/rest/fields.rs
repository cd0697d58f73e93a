//! `/objects/{object}/fields`: the field designer's API. Creating a field adds a real column.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_records::field_service;
use crm_records::fields::{FieldDef, FieldPatch, NewField};
use crm_records::{ObjectKey, ObjectSchema};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use std::collections::BTreeMap;

pub struct FieldsApi(pub AppState);

/// A field of an object: built-in (fixed) or custom (a `cf_<key>` column).
#[derive(Object)]
pub struct FieldOut {
    pub key: String,
    pub builtin: bool,
    pub label: String,
    pub labels: BTreeMap<String, String>,
    #[oai(rename = "type")]
    pub ty: String,
    pub required: bool,
    pub unique: bool,
    pub indexed: bool,
    #[oai(skip_serializing_if_is_none)]
    pub default: Option<Value>,
    pub options: Vec<String>,
    pub option_labels: Value,
    #[oai(skip_serializing_if_is_none)]
    pub target: Option<String>,
    /// Relation fields: what deleting the target does (restrict, set_null, cascade).
    #[oai(skip_serializing_if_is_none)]
    pub on_delete: Option<String>,
    /// Rollup fields: `{relation, child, via, fn, field?, filter?}`.
    #[oai(skip_serializing_if_is_none)]
    pub rollup: Option<Value>,
    /// Searched by `q`.
    pub searchable: bool,
    pub sensitive: bool,
    pub encrypted: bool,
    /// Ticket fields: a customer may fill it in on the portal.
    pub portal_editable: bool,
    pub position: i32,
    #[oai(skip_serializing_if_is_none)]
    pub created_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<FieldDef> for FieldOut {
    fn from(d: FieldDef) -> Self {
        FieldOut {
            key: d.key.as_str().to_owned(),
            builtin: false,
            label: d.label,
            labels: d.labels,
            ty: d.ty.as_str().to_owned(),
            required: d.required,
            unique: d.unique,
            indexed: d.indexed,
            default: d.default,
            options: d.options,
            option_labels: d.option_labels,
            target: d.target.map(|t| t.as_str().to_owned()),
            on_delete: d.on_delete.map(|o| o.as_str().to_owned()),
            rollup: d.rollup,
            searchable: d.searchable,
            sensitive: d.sensitive,
            encrypted: d.encrypted,
            portal_editable: d.portal_editable,
            position: d.position,
            created_at: Some(d.created_at),
            updated_at: Some(d.updated_at),
        }
    }
}

#[derive(Object)]
pub struct CreateFieldRequest {
    /// `[a-z][a-z0-9_]{0,40}`; the column becomes `cf_<key>`.
    pub key: String,
    pub label: String,
    /// Per locale, e.g. {"zh-CN": "客户等级", "en": "Customer tier"}.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// text, long_text, integer, decimal, boolean, date, datetime, email, phone, url,
    /// select, multi_select, currency, user, relation.
    #[oai(rename = "type")]
    pub ty: String,
    #[oai(default)]
    pub required: bool,
    #[oai(default)]
    pub unique: bool,
    #[oai(default)]
    pub indexed: bool,
    pub default: Option<Value>,
    #[oai(default)]
    pub options: Vec<String>,
    pub option_labels: Option<Value>,
    /// For relation fields: the object it points to (a built-in one or one of yours).
    pub target: Option<String>,
    /// For relation fields: what deleting the record it points to does here — `restrict`
    /// (default: 409 while records point to it), `set_null`, or `cascade` (to the recycle
    /// bin with it).
    pub on_delete: Option<String>,
    /// For rollup fields (read-only numbers kept by the server): `{"relation":
    /// "policies.customer", "fn": "count"|"sum"|"min"|"max", "field"?: "premium",
    /// "filter"?: {"product": ["life"]}}`.
    pub rollup: Option<Value>,
    /// Searched by `q` through a trigram index (default: text fields yes; long_text, email,
    /// phone and url when set).
    pub searchable: Option<bool>,
    /// Masked without sensitive:read.
    #[oai(default)]
    pub sensitive: bool,
    /// Stored AES-256-GCM encrypted (text-like types); exact-match filters still work.
    #[oai(default)]
    pub encrypted: bool,
    /// Ticket fields only: customers may fill it in when they open a ticket on the portal
    /// (default false: the portal refuses custom fields not marked so).
    #[oai(default)]
    pub portal_editable: bool,
}

#[derive(Object)]
pub struct PatchFieldRequest {
    pub label: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub required: Option<bool>,
    pub unique: Option<bool>,
    pub indexed: Option<bool>,
    /// null removes the default.
    pub default: MaybeUndefined<Value>,
    pub options: Option<Vec<String>>,
    pub option_labels: Option<Value>,
    pub sensitive: Option<bool>,
    /// Ticket fields only: customers may fill it in on the portal.
    pub portal_editable: Option<bool>,
    pub position: Option<i32>,
    /// Searched by `q` (adds or drops the trigram index).
    pub searchable: Option<bool>,
}

/// A built-in object or a well-formed custom object key (the services answer 404 for a key
/// the tenant does not have).
pub(super) fn object_of(raw: &str) -> ApiResult<ObjectKey> {
    ObjectKey::named(raw).ok_or_else(|| crm_core::objects::not_found(raw).into())
}

pub(super) fn builtin_fields(object: ObjectKey) -> Vec<FieldOut> {
    let schema = ObjectSchema {
        object,
        def: None,
        custom: Vec::new(),
        feeds: Vec::new(),
        referrers: Vec::new(),
        record_types: Vec::new(),
        city_column: false,
    };
    schema
        .builtins()
        .enumerate()
        .map(|(i, f)| FieldOut {
            key: f.key.to_owned(),
            builtin: true,
            label: crm_records::labels::field_label(object, f.key),
            labels: crm_records::labels::field_labels(object, f.key)
                .into_iter()
                .filter_map(|(locale, label)| Some((locale, label.as_str()?.to_owned())))
                .collect(),
            ty: f.ty.as_str().to_owned(),
            required: f.required,
            unique: false,
            indexed: false,
            default: None,
            options: f.options.to_vec(),
            option_labels: crm_records::labels::option_labels(&f.options),
            target: f.target.map(|t| t.as_str().to_owned()),
            on_delete: None,
            rollup: None,
            searchable: f.searchable,
            sensitive: f.sensitive,
            encrypted: false,
            portal_editable: object == ObjectKey::Tickets
                && crm_desk::portal::TICKET_FIELDS.contains(&f.key),
            position: i as i32 - 1000,
            created_at: None,
            updated_at: None,
        })
        .collect()
}

#[OpenApi(tag = "Tag::Fields")]
impl FieldsApi {
    /// The fields of an object: built-in ones first (`builtin: true`), then custom ones.
    #[oai(path = "/objects/:object/fields", method = "get")]
    async fn list(&self, auth: Auth, object: Path<String>) -> ApiResult<Json<Vec<FieldOut>>> {
        let object = object_of(&object.0)?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let custom = field_service::list(&mut tx, &caller, object).await?;
        tx.commit().await?;
        let mut all = builtin_fields(object);
        all.extend(custom.into_iter().map(FieldOut::from));
        Ok(Json(all))
    }

    /// Add a custom field: a typed column `cf_<key>` (plus index / unique index when asked).
    #[oai(path = "/objects/:object/fields", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        object: Path<String>,
        body: Json<CreateFieldRequest>,
    ) -> ApiResult<Created<FieldOut>> {
        let object = object_of(&object.0)?;
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let def = field_service::create(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            self.0.master_key.as_deref(),
            object,
            NewField {
                key: b.key,
                label: b.label,
                labels: b.labels,
                ty: b.ty,
                required: b.required,
                unique: b.unique,
                indexed: b.indexed,
                default: b.default,
                options: b.options,
                option_labels: b.option_labels,
                target: b.target,
                on_delete: b.on_delete,
                rollup: b.rollup,
                searchable: b.searchable,
                sensitive: b.sensitive,
                encrypted: b.encrypted,
                portal_editable: b.portal_editable,
            },
            self.0.config.objects.max_fields,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(def.into())))
    }

    /// One custom field.
    #[oai(path = "/objects/:object/fields/:key", method = "get")]
    async fn get(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
    ) -> ApiResult<Json<FieldOut>> {
        let object = object_of(&object.0)?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let def = field_service::get(&mut tx, &caller, object, &key.0).await?;
        tx.commit().await?;
        Ok(Json(def.into()))
    }

    /// Change a custom field's label, options, required, default, unique, indexed, sensitive
    /// or position. Key, type, target and encryption are fixed.
    #[oai(path = "/objects/:object/fields/:key", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
        body: Json<PatchFieldRequest>,
    ) -> ApiResult<Json<FieldOut>> {
        let object = object_of(&object.0)?;
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let def = field_service::update(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            object,
            &key.0,
            FieldPatch {
                label: b.label,
                labels: b.labels,
                required: b.required,
                unique: b.unique,
                indexed: b.indexed,
                default: match b.default {
                    MaybeUndefined::Undefined => None,
                    MaybeUndefined::Null => Some(None),
                    MaybeUndefined::Value(v) => Some(Some(v)),
                },
                options: b.options,
                option_labels: b.option_labels,
                sensitive: b.sensitive,
                portal_editable: b.portal_editable,
                position: b.position,
                searchable: b.searchable,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Json(def.into()))
    }

    /// Delete a custom field and drop its column with all its values. Needs `confirm=true`.
    #[oai(path = "/objects/:object/fields/:key", method = "delete")]
    async fn delete(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
        confirm: Query<Option<bool>>,
    ) -> ApiResult<NoContent> {
        let object = object_of(&object.0)?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let confirmed = confirm.0 == Some(true);
        field_service::delete(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            object,
            &key.0,
            confirmed,
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Recompute a roll-up field on every record of the object (`fields:manage`): after an
    /// import, or to check a total.
    #[oai(path = "/objects/:object/fields/:key/rebuild", method = "post")]
    async fn rebuild(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
    ) -> ApiResult<Json<RebuildOut>> {
        let object = object_of(&object.0)?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let updated =
            field_service::rebuild_rollup(&mut tx, &caller, &Actor::of(&ctx), object, &key.0)
                .await?;
        tx.commit().await?;
        Ok(Json(RebuildOut { updated }))
    }
}

/// What a roll-up rebuild did.
#[derive(Object)]
pub struct RebuildOut {
    /// Records whose roll-up was recomputed.
    pub updated: u64,
}
