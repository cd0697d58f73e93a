//! Teams: groups of users. Record scope `team` means "owned by someone in one of my teams".

use crate::authz::{Caller, Permission, Scope};
use crate::db::TenantTx;
use crate::domain::DisplayName;
use crate::error::{unique_violation, Error, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// A team.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub lead_id: Option<Uuid>,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT t.id, t.name, t.description, t.lead_id, \
    (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count, \
    t.created_at, t.updated_at FROM teams t";

fn not_found(id: Uuid) -> Error {
    Error::not_found("team.not_found", format!("no team {id}"))
}

fn name_taken(e: sqlx::Error, name: &DisplayName) -> Error {
    match unique_violation(&e) {
        Some(_) => Error::conflict(
            "team.exists",
            format!("a team named '{}' exists already", name.as_str()),
        ),
        None => e.into(),
    }
}

/// Creates a team.
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    name: &DisplayName,
    description: &str,
    lead_id: Option<Uuid>,
) -> Result<Team> {
    caller.require(Permission::UsersManage)?;
    if let Some(lead) = lead_id {
        crate::users::get(tx, lead).await.map_err(|_| {
            Error::invalid_field("lead_id", "unknown_user", format!("no user {lead}"))
        })?;
    }
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO teams (id, name, description, lead_id) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name.as_str())
        .bind(description)
        .bind(lead_id)
        .execute(tx.conn())
        .await
        .map_err(|e| name_taken(e, name))?;
    if let Some(lead) = lead_id {
        insert_member(tx, id, lead).await?;
    }
    load(tx, id).await
}

/// All teams by name.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Team>> {
    caller.require(Permission::UsersRead)?;
    Ok(sqlx::query_as(&format!("{SELECT} ORDER BY t.name"))
        .fetch_all(tx.conn())
        .await?)
}

/// One team.
/// One team (needs `users:read`).
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Team> {
    caller.require(Permission::UsersRead)?;
    load(tx, id).await
}

async fn load(tx: &mut TenantTx, id: Uuid) -> Result<Team> {
    let team: Option<Team> = sqlx::query_as(&format!("{SELECT} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    team.ok_or_else(|| not_found(id))
}

/// What may change on a team.
#[derive(Debug, Default)]
pub struct TeamPatch {
    pub name: Option<DisplayName>,
    pub description: Option<String>,
    /// `Some(None)` clears the lead.
    pub lead_id: Option<Option<Uuid>>,
}

/// Edits a team.
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    patch: TeamPatch,
) -> Result<Team> {
    caller.require(Permission::UsersManage)?;
    let current = load(tx, id).await?;
    if let Some(Some(lead)) = patch.lead_id {
        crate::users::get(tx, lead).await.map_err(|_| {
            Error::invalid_field("lead_id", "unknown_user", format!("no user {lead}"))
        })?;
    }
    let name = patch.name.clone();
    sqlx::query(
        "UPDATE teams SET name = $2, description = $3, lead_id = $4, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(name.as_ref().map_or(current.name.as_str(), |n| n.as_str()))
    .bind(patch.description.unwrap_or(current.description))
    .bind(patch.lead_id.unwrap_or(current.lead_id))
    .execute(tx.conn())
    .await
    .map_err(|e| match &name {
        Some(n) => name_taken(e, n),
        None => e.into(),
    })?;
    load(tx, id).await
}

/// Deletes a team (memberships go with it; users stay).
pub async fn delete(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    let done = sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// A member as listed under a team.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub status: String,
    pub added_at: DateTime<Utc>,
}

/// Members of a team, by name.
pub async fn members(tx: &mut TenantTx, caller: &Caller, team_id: Uuid) -> Result<Vec<Member>> {
    caller.require(Permission::UsersRead)?;
    load(tx, team_id).await?;
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.email, u.status, m.added_at \
         FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY u.name, u.id",
    )
    .bind(team_id)
    .fetch_all(tx.conn())
    .await?)
}

/// Refuses a team change that would widen what `caller` sees through a `team` record scope:
/// joining teams themselves, or bringing someone (`member`; `None` for a user being created)
/// into a team they belong to. `joined` are the teams newly joined. A caller whose scopes
/// are all `own` or `all` is unaffected.
pub async fn ensure_may_join(
    tx: &mut TenantTx,
    caller: &Caller,
    joined: &[Uuid],
    member: Option<Uuid>,
) -> Result<()> {
    let team_scoped = caller.grants.scopes.values().any(|s| *s == Scope::Team);
    let Some(me) = caller.user_id.filter(|_| team_scoped && !joined.is_empty()) else {
        return Ok(());
    };
    let widens = member == Some(me)
        || sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM team_members WHERE user_id = $1 AND team_id = ANY($2))",
        )
        .bind(me)
        .bind(joined)
        .fetch_one(tx.conn())
        .await?;
    if widens {
        return Err(Error::forbidden(
            "auth.escalation",
            "your record scope is 'team', so joining a team or bringing someone into one of your teams would widen what you see; ask someone whose scope is 'all'",
        ));
    }
    Ok(())
}

/// Adds a user to a team (idempotent), within [`ensure_may_join`].
pub async fn add_member(
    tx: &mut TenantTx,
    caller: &Caller,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    load(tx, team_id).await?;
    crate::users::get(tx, user_id).await.map_err(|_| {
        Error::invalid_field("user_id", "unknown_user", format!("no user {user_id}"))
    })?;
    ensure_may_join(tx, caller, &[team_id], Some(user_id)).await?;
    insert_member(tx, team_id, user_id).await
}

async fn insert_member(tx: &mut TenantTx, team_id: Uuid, user_id: Uuid) -> Result<()> {
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(team_id)
    .bind(user_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Removes a user from a team.
pub async fn remove_member(
    tx: &mut TenantTx,
    caller: &Caller,
    team_id: Uuid,
    user_id: Uuid,
) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    load(tx, team_id).await?;
    let done = sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
        .bind(team_id)
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(
            "team.member_not_found",
            format!("user {user_id} is not a member of team {team_id}"),
        ));
    }
    Ok(())
}

/// Checks that every team id exists; a 422 naming the unknown ones otherwise.
pub async fn ensure_exist(tx: &mut TenantTx, field: &str, ids: &[Uuid]) -> Result<()> {
    let known: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM teams WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(tx.conn())
        .await?;
    crate::error::ensure_known(field, ids, &known, "unknown_team", |id| {
        format!("no team {id}")
    })
}
