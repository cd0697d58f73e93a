//! `/objects/{object}/record-types` and `/objects/{object}/layouts`: kinds of records with
//! their own fields, required fields and defaults, and the form layouts the web app reads.

use super::auth::Auth;
use super::error::ApiResult;
use super::fields::object_of;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::context::RequestCtx;
use crm_core::db::TenantTx;
use crm_core::objects::RecordType;
use crm_records::record_types::{self, Layout, NewRecordType};
use crm_records::ObjectSchema;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct RecordTypesApi(pub AppState);

/// A kind of record of an object.
#[derive(Object)]
pub struct RecordTypeOut {
    pub key: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// Field paths its form shows, in order (empty: all).
    pub fields: Vec<String>,
    /// Field paths its records must have (checked by the API).
    pub required: Vec<String>,
    /// Field path → value its new records start with.
    pub defaults: BTreeMap<String, Value>,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RecordType> for RecordTypeOut {
    fn from(t: RecordType) -> Self {
        RecordTypeOut {
            key: t.key,
            name: t.name,
            labels: t.labels,
            description: t.description,
            fields: t.fields,
            required: t.required,
            defaults: t.defaults.into_iter().collect(),
            position: t.position,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A record type as written (POST names its key; PUT replaces everything else).
#[derive(Object)]
pub struct RecordTypeRequest {
    /// `[a-z][a-z0-9_]{0,40}`; fixed once created (ignored on PUT).
    #[oai(default)]
    pub key: String,
    pub name: String,
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    pub description: Option<String>,
    /// Field paths the form shows, in order (`name`, `custom.vip_level`; a custom object's
    /// fields by their key). Empty: all.
    #[oai(default)]
    pub fields: Vec<String>,
    /// Field paths records of this type must have.
    #[oai(default)]
    pub required: Vec<String>,
    /// Field path → value new records of this type start with.
    #[oai(default)]
    pub defaults: BTreeMap<String, Value>,
    #[oai(default)]
    pub position: i32,
}

impl RecordTypeRequest {
    fn into_new(self, key: String) -> NewRecordType {
        NewRecordType {
            key,
            name: self.name,
            labels: self.labels,
            description: self.description,
            fields: self.fields,
            required: self.required,
            defaults: self.defaults.into_iter().collect::<Map<String, Value>>(),
            position: self.position,
        }
    }
}

/// A form layout: the object's default one (`record_type` absent) or a record type's.
#[derive(Object)]
pub struct LayoutOut {
    #[oai(skip_serializing_if_is_none)]
    pub record_type: Option<RecordTypeOut>,
    pub fields: Vec<String>,
    pub required: Vec<String>,
    pub defaults: BTreeMap<String, Value>,
}

impl From<Layout> for LayoutOut {
    fn from(l: Layout) -> Self {
        LayoutOut {
            record_type: l.record_type.map(Into::into),
            fields: l.fields,
            required: l.required,
            defaults: l.defaults.into_iter().collect(),
        }
    }
}

impl RecordTypesApi {
    /// The tenant transaction, the caller and the object's schema (404 for an object the
    /// tenant does not have).
    async fn open(
        &self,
        auth: &Auth,
        object: &str,
    ) -> ApiResult<(TenantTx, Caller, RequestCtx, Arc<ObjectSchema>)> {
        let object = object_of(object)?;
        let (mut tx, caller, ctx) = self.0.begin(auth).await?;
        let schema = self
            .0
            .schemas
            .get(&mut tx, object, ctx.principal.metadata_version)
            .await?;
        Ok((tx, caller, ctx, schema))
    }
}

#[OpenApi(tag = "Tag::Fields")]
impl RecordTypesApi {
    /// The record types of an object.
    #[oai(path = "/objects/:object/record-types", method = "get")]
    async fn list(&self, auth: Auth, object: Path<String>) -> ApiResult<Json<Vec<RecordTypeOut>>> {
        let (tx, caller, _, schema) = self.open(&auth, &object.0).await?;
        let types = record_types::list(&caller, &schema)?;
        tx.commit().await?;
        Ok(Json(types.into_iter().map(Into::into).collect()))
    }

    /// Add a record type (`objects:manage`). Records then carry `record_type`; roles can be
    /// limited to some types (`record_types` on the role).
    #[oai(path = "/objects/:object/record-types", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        object: Path<String>,
        body: Json<RecordTypeRequest>,
    ) -> ApiResult<Created<RecordTypeOut>> {
        let (mut tx, caller, ctx, schema) = self.open(&auth, &object.0).await?;
        let key = body.0.key.clone();
        let created = record_types::create(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            &schema,
            body.0.into_new(key),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(created.into())))
    }

    /// Replace a record type's name, labels, fields, required fields and defaults.
    #[oai(path = "/objects/:object/record-types/:key", method = "put")]
    async fn replace(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
        body: Json<RecordTypeRequest>,
    ) -> ApiResult<Json<RecordTypeOut>> {
        let (mut tx, caller, ctx, schema) = self.open(&auth, &object.0).await?;
        let updated = record_types::update(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            &schema,
            body.0.into_new(key.0),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(updated.into()))
    }

    /// Delete a record type no record has.
    #[oai(path = "/objects/:object/record-types/:key", method = "delete")]
    async fn delete(
        &self,
        auth: Auth,
        object: Path<String>,
        key: Path<String>,
    ) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx, schema) = self.open(&auth, &object.0).await?;
        record_types::delete(&mut tx, &caller, &Actor::of(&ctx), &schema, &key.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The form layouts you use for an object: its default layout (unless your role is
    /// limited to some record types) and one per record type you may create.
    #[oai(path = "/objects/:object/layouts", method = "get")]
    async fn layouts(&self, auth: Auth, object: Path<String>) -> ApiResult<Json<Vec<LayoutOut>>> {
        let (tx, caller, _, schema) = self.open(&auth, &object.0).await?;
        let layouts = record_types::layouts(&caller, &schema)?;
        tx.commit().await?;
        Ok(Json(layouts.into_iter().map(Into::into).collect()))
    }
}
