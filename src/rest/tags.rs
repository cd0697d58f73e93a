//! `/tags`: the tag catalogue.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, Tag as ApiTag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::Error;
use crm_records::{tags, values};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

pub struct TagsApi(pub AppState);

#[derive(Object)]
pub struct TagOut {
    pub name: String,
    #[oai(skip_serializing_if_is_none)]
    pub color: Option<String>,
    /// Live customers carrying the tag.
    pub customers: i64,
    /// Live contacts carrying the tag.
    pub contacts: i64,
    pub created_at: DateTime<Utc>,
}

impl From<tags::Tag> for TagOut {
    fn from(t: tags::Tag) -> Self {
        TagOut {
            name: t.name,
            color: t.color,
            customers: t.customers,
            contacts: t.contacts,
            created_at: t.created_at,
        }
    }
}

#[derive(Object)]
pub struct CreateTagRequest {
    pub name: String,
    /// `#rrggbb`.
    pub color: Option<String>,
}

#[OpenApi(tag = "ApiTag::Records")]
impl TagsApi {
    /// Every tag with its usage.
    #[oai(path = "/tags", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<TagOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = tags::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Add a tag to the catalogue (tags used on records are added automatically).
    #[oai(path = "/tags", method = "post")]
    async fn create(&self, auth: Auth, body: Json<CreateTagRequest>) -> ApiResult<Created<TagOut>> {
        let name = values::parse_tag("name", &serde_json::json!(body.name))?;
        if let Some(c) = body.color.as_deref() {
            if !tags::valid_color(c) {
                return Err(
                    Error::invalid_field("color", "invalid", "use a colour like #1677ff").into(),
                );
            }
        }
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let tag = tags::create(&mut tx, &caller, &name, body.color.as_deref()).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(tag.into())))
    }
}
