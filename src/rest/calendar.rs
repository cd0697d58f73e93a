//! Calendar feeds: `POST/DELETE /users/{id}/calendar-token` and the token-authenticated
//! `GET /users/{id}/calendar.ics` that calendar apps subscribe to.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use crm_core::audit::Actor;
use crm_core::identity::tokens::{self, CredentialKind};
use crm_core::Error;
use crm_records::calendar;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

pub struct CalendarApi(pub AppState);

#[derive(Object)]
pub struct CalendarToken {
    /// The feed token (shown once; a new one replaces it).
    pub token: String,
    /// The URL to subscribe to in Google Calendar, Outlook or Apple Calendar.
    pub url: String,
}

/// An iCalendar document.
#[derive(ApiResponse)]
pub enum IcsResponse {
    #[oai(status = 200, content_type = "text/calendar; charset=utf-8")]
    Ok(PlainText<String>),
}

#[OpenApi(tag = "Tag::Records")]
impl CalendarApi {
    /// Issue the user's calendar feed token (a new one replaces the old).
    #[oai(path = "/users/:id/calendar-token", method = "post")]
    async fn issue(
        &self,
        auth: Auth,
        req: &Request,
        id: Path<Uuid>,
    ) -> ApiResult<Created<CalendarToken>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let token = calendar::issue_token(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        let host = req.header("host").unwrap_or("127.0.0.1:8080");
        // Behind a trusted TLS-terminating proxy the public scheme is the proxy's.
        let scheme = self
            .0
            .config
            .trust_forwarded_for
            .then(|| req.header("x-forwarded-proto"))
            .flatten()
            .filter(|p| *p == "https")
            .unwrap_or("http");
        let url = format!(
            "{scheme}://{host}/api/v1/users/{}/calendar.ics?token={token}",
            id.0
        );
        Ok(Created::Created(Json(CalendarToken { token, url })))
    }

    /// Revoke the user's calendar feed token.
    #[oai(path = "/users/:id/calendar-token", method = "delete")]
    async fn revoke(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        calendar::revoke_token(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The user's tasks (with due times) and meetings as iCalendar, for calendar apps.
    /// Authenticated by the feed token in the URL, not by a bearer token.
    #[oai(path = "/users/:id/calendar.ics", method = "get")]
    async fn feed(&self, id: Path<Uuid>, token: Query<String>) -> ApiResult<IcsResponse> {
        let invalid = || {
            Error::unauthenticated(
                "auth.invalid_token",
                "the calendar link is unknown or was replaced; get a new one",
            )
        };
        let parsed = tokens::parse(&token.0)
            .filter(|p| p.kind == CredentialKind::Calendar)
            .ok_or_else(invalid)?;
        let tenant = self
            .0
            .tenants
            .by_id(parsed.tenant_id)
            .await?
            .ok_or_else(invalid)?;
        if !tenant.is_active() {
            return Err(super::auth::tenant_suspended().into());
        }
        let mut tx = self.0.db.tenant_tx(&tenant.ctx()?).await?;
        if !calendar::token_valid(&mut tx, id.0, &parsed.hash).await? {
            return Err(invalid().into());
        }
        let ics = calendar::feed(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(IcsResponse::Ok(PlainText(ics)))
    }
}
