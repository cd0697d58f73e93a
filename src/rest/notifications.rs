//! `/notifications`: the caller's in-app inbox (task reminders, later SLA and approval alerts).

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::authz::Caller;
use crm_core::context::page_size;
use crm_core::notifications::{self, Notification};
use crm_core::Error;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct NotificationsApi(pub AppState);

#[derive(Object)]
pub struct NotificationOut {
    pub id: i64,
    /// E.g. `task.reminder`.
    pub kind: String,
    pub title: String,
    #[oai(skip_serializing_if_is_none)]
    pub body: Option<String>,
    /// Object of the record it is about (`tasks`).
    #[oai(skip_serializing_if_is_none)]
    pub object: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub record_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub read_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationOut {
    fn from(n: Notification) -> Self {
        NotificationOut {
            id: n.id,
            kind: n.kind,
            title: n.title,
            body: n.body,
            object: n.object,
            record_id: n.record_id,
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

#[derive(Object)]
pub struct NotificationPage {
    pub items: Vec<NotificationOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
    /// Unread notifications in all.
    pub unread: i64,
}

#[derive(Object)]
pub struct MarkedRead {
    /// Notifications that were unread.
    pub marked: u64,
}

/// The user whose inbox the caller reads (an API key reads its creator's).
fn inbox_owner(caller: &Caller) -> ApiResult<Uuid> {
    caller.user_id.ok_or_else(|| {
        Error::forbidden(
            "auth.no_user",
            "this API key belongs to no user, so it has no notifications",
        )
        .into()
    })
}

#[OpenApi(tag = "Tag::Account")]
impl NotificationsApi {
    /// The caller's notifications, newest first; `unread=true` for unread ones only.
    #[oai(path = "/notifications", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        unread: Query<Option<bool>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<NotificationPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let user = inbox_owner(&caller)?;
        let page = notifications::list(
            &mut tx,
            user,
            unread.0.unwrap_or(false),
            cursor.0.as_deref(),
            page_size(limit.0),
        )
        .await?;
        let unread = notifications::unread_count(&mut tx, user).await?;
        tx.commit().await?;
        Ok(Json(NotificationPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
            unread,
        }))
    }

    /// Marks one notification read.
    #[oai(path = "/notifications/:id/read", method = "post")]
    async fn read(&self, auth: Auth, id: Path<i64>) -> ApiResult<Json<NotificationOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let user = inbox_owner(&caller)?;
        let n = notifications::mark_read(&mut tx, user, id.0).await?;
        tx.commit().await?;
        Ok(Json(n.into()))
    }

    /// Marks every notification of the caller read.
    #[oai(path = "/notifications/read-all", method = "post")]
    async fn read_all(&self, auth: Auth) -> ApiResult<Json<MarkedRead>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let user = inbox_owner(&caller)?;
        let marked = notifications::mark_all_read(&mut tx, user).await?;
        tx.commit().await?;
        Ok(Json(MarkedRead { marked }))
    }
}
