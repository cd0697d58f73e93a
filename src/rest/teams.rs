//! `/teams` and their members.

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::domain::DisplayName;
use crm_core::teams::{self, Member, Team, TeamPatch};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct TeamsApi(pub AppState);

#[derive(Object)]
pub struct TeamOut {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    #[oai(skip_serializing_if_is_none)]
    pub lead_id: Option<Uuid>,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Team> for TeamOut {
    fn from(t: Team) -> Self {
        TeamOut {
            id: t.id,
            name: t.name,
            description: t.description,
            lead_id: t.lead_id,
            member_count: t.member_count,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Object)]
pub struct CreateTeamRequest {
    pub name: String,
    #[oai(default)]
    pub description: String,
    /// The team lead (also added as a member).
    pub lead_id: Option<Uuid>,
}

#[derive(Object)]
pub struct PatchTeamRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    /// null clears the lead.
    pub lead_id: MaybeUndefined<Uuid>,
}

#[derive(Object)]
pub struct AddMemberRequest {
    pub user_id: Uuid,
}

#[derive(Object)]
pub struct MemberOut {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub status: String,
    pub added_at: DateTime<Utc>,
}

impl From<Member> for MemberOut {
    fn from(m: Member) -> Self {
        MemberOut {
            user_id: m.user_id,
            name: m.name,
            email: m.email,
            status: m.status,
            added_at: m.added_at,
        }
    }
}

#[OpenApi(tag = "Tag::Teams")]
impl TeamsApi {
    /// All teams.
    #[oai(path = "/teams", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<TeamOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = teams::list(&mut tx, &caller).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Create a team.
    #[oai(path = "/teams", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreateTeamRequest>,
    ) -> ApiResult<Created<TeamOut>> {
        let name = DisplayName::parse("name", &body.name)?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let team = teams::create(
            &mut tx,
            &caller,
            &name,
            body.description.trim(),
            body.lead_id,
        )
        .await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "team.created",
            Some(("team", team.id.to_string())),
            serde_json::json!({ "name": team.name }),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(team.into())))
    }

    /// One team.
    #[oai(path = "/teams/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<TeamOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let team = teams::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(team.into()))
    }

    /// Rename a team, change its description or lead.
    #[oai(path = "/teams/:id", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PatchTeamRequest>,
    ) -> ApiResult<Json<TeamOut>> {
        let name = body
            .name
            .as_deref()
            .map(|n| DisplayName::parse("name", n))
            .transpose()?;
        let lead_id = match &body.lead_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(*v)),
        };
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let team = teams::update(
            &mut tx,
            &caller,
            id.0,
            TeamPatch {
                name,
                description: body.description.as_deref().map(|d| d.trim().to_owned()),
                lead_id,
            },
        )
        .await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "team.updated",
            Some(("team", team.id.to_string())),
            serde_json::json!({ "name": team.name, "lead_id": team.lead_id }),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(team.into()))
    }

    /// Delete a team (its members stay users).
    #[oai(path = "/teams/:id", method = "delete")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        teams::delete(&mut tx, &caller, id.0).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "team.deleted",
            Some(("team", id.0.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Members of a team.
    #[oai(path = "/teams/:id/members", method = "get")]
    async fn members(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<Vec<MemberOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let members = teams::members(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(members.into_iter().map(Into::into).collect()))
    }

    /// Add a user to a team.
    #[oai(path = "/teams/:id/members", method = "post")]
    async fn add_member(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<AddMemberRequest>,
    ) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        teams::add_member(&mut tx, &caller, id.0, body.user_id).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "team.member_added",
            Some(("team", id.0.to_string())),
            serde_json::json!({ "user_id": body.user_id }),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// Remove a user from a team.
    #[oai(path = "/teams/:id/members/:user_id", method = "delete")]
    async fn remove_member(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        teams::remove_member(&mut tx, &caller, id.0, user_id.0).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "team.member_removed",
            Some(("team", id.0.to_string())),
            serde_json::json!({ "user_id": user_id.0 }),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }
}
