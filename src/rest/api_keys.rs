//! `/api-keys`: credentials for integrations, each acting with one role.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::domain::{DisplayName, RoleName};
use crm_core::identity::api_keys::{self, ApiKey};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct ApiKeysApi(pub AppState);

#[derive(Object)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    /// Recognisable start of the key; the full secret is shown only at creation.
    pub prefix: String,
    pub role: String,
    pub active: bool,
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(k: ApiKey) -> Self {
        ApiKeyOut {
            active: k.revoked_at.is_none(),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_by: k.created_by,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key with its secret — store it now, it is never shown again.
#[derive(Object)]
pub struct CreatedApiKey {
    #[oai(flatten)]
    pub key: ApiKeyOut,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(Object)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// The role the key acts with.
    pub role: String,
}

#[OpenApi(tag = "Tag::ApiKeys")]
impl ApiKeysApi {
    /// All keys, newest first (revoked ones included, marked inactive).
    #[oai(path = "/api-keys", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<ApiKeyOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let keys = api_keys::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Create a key acting with `role` (which may not exceed your own permissions).
    #[oai(path = "/api-keys", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreateApiKeyRequest>,
    ) -> ApiResult<Created<CreatedApiKey>> {
        let name = DisplayName::parse("name", &body.name)?;
        let role = RoleName::parse("role", &body.role)?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (key, secret) =
            api_keys::create(&mut tx, &caller, name.as_str(), role.as_str()).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "api_key.created",
            Some(("api_key", key.id.to_string())),
            serde_json::json!({ "name": key.name, "role": key.role }),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(CreatedApiKey {
            key: key.into(),
            secret,
        })))
    }

    /// Revoke a key; requests with it fail from now on.
    #[oai(path = "/api-keys/:id", method = "delete")]
    async fn revoke(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let key = api_keys::revoke(&mut tx, &caller, id.0).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "api_key.revoked",
            Some(("api_key", key.id.to_string())),
            serde_json::json!({ "name": key.name }),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
