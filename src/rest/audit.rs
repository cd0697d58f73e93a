//! `/audit`: the security log, newest first.

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, AuditEntry, AuditQuery};
use crm_core::context::page_size;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct AuditApi(pub AppState);

#[derive(Object)]
pub struct AuditEntryOut {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// E.g. `auth.login`, `auth.login_failed`, `user.created`, `role.updated`.
    pub action: String,
    /// `user`, `api_key`, `anonymous` or `system`.
    pub actor_kind: String,
    #[oai(skip_serializing_if_is_none)]
    pub actor_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub actor_name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub target_kind: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub target_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        AuditEntryOut {
            id: e.id,
            at: e.at,
            action: e.action,
            actor_kind: e.actor_kind,
            actor_id: e.actor_id,
            actor_name: e.actor_name,
            target_kind: e.target_kind,
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

#[derive(Object)]
pub struct AuditPage {
    pub items: Vec<AuditEntryOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[OpenApi(tag = "Tag::Audit")]
impl AuditApi {
    /// The audit log, newest first. `action` matches exactly or as a prefix (`auth` finds
    /// every `auth.*`).
    #[oai(path = "/audit", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
        action: Query<Option<String>>,
        actor_id: Query<Option<Uuid>>,
        since: Query<Option<DateTime<Utc>>>,
        until: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<AuditPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = audit::list(
            &mut tx,
            &caller,
            AuditQuery {
                cursor: cursor.0,
                limit: page_size(limit.0),
                action: action.0,
                actor_id: actor_id.0,
                since: since.0,
                until: until.0,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Json(AuditPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
