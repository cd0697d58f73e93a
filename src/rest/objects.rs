//! `/objects`: the tenant's objects, built-in and custom, with their fields; creating,
//! relabelling and deleting custom objects (`objects:manage`).

use super::auth::Auth;
use super::error::ApiResult;
use super::fields::{builtin_fields, FieldOut};
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_records::objects::{self, NewObject, ObjectInfo, ObjectPatch};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use std::collections::BTreeMap;

pub struct ObjectsApi(pub AppState);

/// An object: built-in (`builtin: true`) or one of the company's own.
#[derive(Object)]
pub struct ObjectOut {
    /// The plural API name: `/api/v1/records/<key>`, permissions `<key>:read`.
    pub key: String,
    pub builtin: bool,
    pub name: String,
    pub name_plural: String,
    /// Per locale, e.g. {"zh-CN": "保单"}.
    pub labels: BTreeMap<String, String>,
    #[oai(skip_serializing_if_is_none)]
    pub icon: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// Built-in fields first, then custom ones.
    pub fields: Vec<FieldOut>,
    #[oai(skip_serializing_if_is_none)]
    pub created_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<ObjectInfo> for ObjectOut {
    fn from(info: ObjectInfo) -> Self {
        let mut fields = builtin_fields(info.object);
        fields.extend(info.fields.into_iter().map(FieldOut::from));
        match info.def {
            Some(def) => ObjectOut {
                key: def.key.to_string(),
                builtin: false,
                name: def.name,
                name_plural: def.name_plural,
                labels: def.labels,
                icon: def.icon,
                description: def.description,
                fields,
                created_at: Some(def.created_at),
                updated_at: Some(def.updated_at),
            },
            None => {
                let (name, plural, zh) = objects::builtin_names(info.object);
                ObjectOut {
                    key: info.object.to_string(),
                    builtin: true,
                    name: name.to_owned(),
                    name_plural: plural.to_owned(),
                    labels: BTreeMap::from([
                        ("en".to_owned(), plural.to_owned()),
                        ("zh-CN".to_owned(), zh.to_owned()),
                    ]),
                    icon: None,
                    description: None,
                    fields,
                    created_at: None,
                    updated_at: None,
                }
            }
        }
    }
}

#[derive(Object)]
pub struct CreateObjectRequest {
    /// The plural API name, `[a-z][a-z0-9_]{1,23}` (e.g. `policies`); its table is
    /// `o_<key>`. Fixed once created.
    pub key: String,
    /// Singular display name, e.g. "Policy".
    pub name: String,
    /// Plural display name, e.g. "Policies".
    pub name_plural: String,
    /// Per locale, e.g. {"en": "Policies", "zh-CN": "保单"}.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    pub icon: Option<String>,
    pub description: Option<String>,
}

#[derive(Object)]
pub struct PatchObjectRequest {
    pub name: Option<String>,
    pub name_plural: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    /// null removes it.
    pub icon: MaybeUndefined<String>,
    /// null removes it.
    pub description: MaybeUndefined<String>,
}

fn maybe(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[OpenApi(tag = "Tag::Fields")]
impl ObjectsApi {
    /// Every object whose records you may read — built-in ones first, then the company's
    /// own — with their fields.
    #[oai(path = "/objects", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<ObjectOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = objects::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(ObjectOut::from).collect()))
    }

    /// Create an object (`objects:manage`): a table of its own with name, owner, team and
    /// tags; add fields with POST /objects/{key}/fields and use its records at
    /// /records/{key}. Every role gets on it what it holds on customers. At most 200 objects
    /// (`[objects] max_per_tenant`).
    #[oai(path = "/objects", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreateObjectRequest>,
    ) -> ApiResult<Created<ObjectOut>> {
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let def = objects::create(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            &self.0.config.objects,
            NewObject {
                key: b.key,
                name: b.name,
                name_plural: b.name_plural,
                labels: b.labels,
                icon: b.icon,
                description: b.description,
            },
        )
        .await?;
        let info = objects::get(&mut tx, &caller, def.key.as_str()).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(info.into())))
    }

    /// One object with its fields.
    #[oai(path = "/objects/:object", method = "get")]
    async fn get(&self, auth: Auth, object: Path<String>) -> ApiResult<Json<ObjectOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let info = objects::get(&mut tx, &caller, &object.0).await?;
        tx.commit().await?;
        Ok(Json(info.into()))
    }

    /// Rename or relabel one of your objects (`objects:manage`); its key is fixed.
    #[oai(path = "/objects/:object", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        object: Path<String>,
        body: Json<PatchObjectRequest>,
    ) -> ApiResult<Json<ObjectOut>> {
        let b = body.0;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        objects::update(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            &object.0,
            ObjectPatch {
                name: b.name,
                name_plural: b.name_plural,
                labels: b.labels,
                icon: maybe(b.icon),
                description: maybe(b.description),
            },
        )
        .await?;
        let info = objects::get(&mut tx, &caller, &object.0).await?;
        tx.commit().await?;
        Ok(Json(info.into()))
    }

    /// Delete one of your objects with its table (`objects:manage`, audited). One with
    /// records (the recycle bin counts) is 409 `object.has_records` unless `purge=true`; one
    /// that relation fields point to is 409 `object.referenced`.
    #[oai(path = "/objects/:object", method = "delete")]
    async fn delete(
        &self,
        auth: Auth,
        object: Path<String>,
        purge: Query<Option<bool>>,
    ) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        objects::delete(
            &mut tx,
            &caller,
            &Actor::of(&ctx),
            &object.0,
            purge.0.unwrap_or(false),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
