//! The read limit and the read-access log (`crm_core::read_limit`): `/settings/read-limit`,
//! `POST /users/{id}/unfreeze` and `/read-access-log`.

use super::auth::Auth;
use super::error::ApiResult;
use super::users::UserOut;
use super::Tag;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::page_size;
use crm_core::read_limit::log::{self, ReadAccess, ReadAccessQuery};
use crm_core::read_limit::settings::{self, ReadLimitSettings};
use crm_core::staff;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct ReadLimitApi(pub AppState);

/// The company's read limit and read-access log.
#[derive(Object)]
pub struct ReadLimitSettingsDto {
    /// Freeze users who read more than `max_reads` customer records within `window_minutes`
    /// (default false).
    pub enabled: bool,
    /// 1 to 1,000,000 (default 1,000). Customer records returned by GET /customers/{id},
    /// customer list and search rows, and exported rows all count.
    pub max_reads: i32,
    /// 1 to 10,080 minutes (default 60); windows are fixed, not sliding.
    pub window_minutes: i32,
    /// Users (or API keys) holding any of these roles are never counted (still logged).
    #[oai(default)]
    pub exempt_roles: Vec<String>,
    /// Log every customer record read (default false).
    pub log_enabled: bool,
    /// Days the log keeps a read, 1 to 3,650 (default 180).
    #[oai(default = "default_retention")]
    pub log_retention_days: i32,
}

fn default_retention() -> i32 {
    180
}

impl From<ReadLimitSettings> for ReadLimitSettingsDto {
    fn from(s: ReadLimitSettings) -> Self {
        ReadLimitSettingsDto {
            enabled: s.enabled,
            max_reads: s.max_reads,
            window_minutes: s.window_minutes,
            exempt_roles: s.exempt_roles,
            log_enabled: s.log_enabled,
            log_retention_days: s.log_retention_days,
        }
    }
}

impl From<ReadLimitSettingsDto> for ReadLimitSettings {
    fn from(s: ReadLimitSettingsDto) -> Self {
        ReadLimitSettings {
            enabled: s.enabled,
            max_reads: s.max_reads,
            window_minutes: s.window_minutes,
            exempt_roles: s.exempt_roles,
            log_enabled: s.log_enabled,
            log_retention_days: s.log_retention_days,
        }
    }
}

/// One customer record read.
#[derive(Object)]
pub struct ReadAccessOut {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The user who read it (an API key's creator for a key).
    #[oai(skip_serializing_if_is_none)]
    pub user_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<Uuid>,
    pub customer_id: Uuid,
    /// `get`, `list` or `export`.
    pub via: String,
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

impl From<ReadAccess> for ReadAccessOut {
    fn from(r: ReadAccess) -> Self {
        ReadAccessOut {
            id: r.id,
            at: r.at,
            user_id: r.user_id,
            api_key_id: r.api_key_id,
            customer_id: r.customer_id,
            via: r.via,
            request_id: r.request_id,
        }
    }
}

#[derive(Object)]
pub struct ReadAccessPage {
    pub items: Vec<ReadAccessOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[OpenApi(tag = "Tag::Audit")]
impl ReadLimitApi {
    /// The read limit and read-access log settings (`tenant:manage`).
    #[oai(path = "/settings/read-limit", method = "get")]
    async fn get_settings(&self, auth: Auth) -> ApiResult<Json<ReadLimitSettingsDto>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let saved = settings::get(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(saved.into()))
    }

    /// Replaces the read limit and read-access log settings (`tenant:manage`, audited
    /// `settings.read_limit_updated`); 422 names every invalid value. Applies from each
    /// user's next request.
    #[oai(path = "/settings/read-limit", method = "put")]
    async fn put_settings(
        &self,
        auth: Auth,
        body: Json<ReadLimitSettingsDto>,
    ) -> ApiResult<Json<ReadLimitSettingsDto>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let saved = settings::update(&mut tx, &caller, &actor, body.0.into()).await?;
        tx.commit().await?;
        Ok(Json(saved.into()))
    }

    /// Lifts a read-limit freeze (`users:manage`, audited `user.unfrozen`); the user starts
    /// a fresh window and may log in again. 409 `user.not_frozen` if it is not frozen.
    #[oai(path = "/users/:id/unfreeze", method = "post", tag = "Tag::Users")]
    async fn unfreeze(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<UserOut>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let user = staff::unfreeze(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(Json(user.into()))
    }

    /// Who read which customer record when, newest first (`audit:read`); filters combine.
    /// Written only while the log is on; kept `log_retention_days`.
    #[oai(path = "/read-access-log", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn log(
        &self,
        auth: Auth,
        user_id: Query<Option<Uuid>>,
        customer_id: Query<Option<Uuid>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<ReadAccessPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let query = ReadAccessQuery {
            cursor: cursor.0,
            limit: page_size(limit.0),
            user_id: user_id.0,
            customer_id: customer_id.0,
            from: from.0,
            to: to.0,
        };
        let page = log::list(&mut tx, &caller, query).await?;
        tx.commit().await?;
        Ok(Json(ReadAccessPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
