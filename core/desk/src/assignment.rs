//! Automatic assignment inside a team: round-robin, or the member with the fewest open
//! tickets; only active members marked available take tickets.

use super::workflow::{self, StateCategory};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::identity::PrincipalKind;
use uuid::Uuid;

/// Assignment modes of a team.
pub const MODES: &[&str] = &["manual", "round_robin", "least_open"];

/// The next assignee of `team` under its mode (`None` when manual or nobody is available).
/// Locks the team row, so concurrent tickets take turns.
pub async fn pick(tx: &mut TenantTx, team: Uuid) -> Result<Option<Uuid>> {
    pick_with(tx, team, None).await
}

/// Like [`pick`], with the mode given (`round_robin` or `least_open`) instead of the team's
/// own — what a workflow rule's `assign_to("round_robin:<team>")` asks for.
pub async fn pick_with(tx: &mut TenantTx, team: Uuid, mode: Option<&str>) -> Result<Option<Uuid>> {
    let row: Option<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT assignment, last_assigned_user FROM teams WHERE id = $1 FOR UPDATE")
            .bind(team)
            .fetch_optional(tx.conn())
            .await?;
    let Some((team_mode, last)) = row else {
        return Err(Error::invalid_field(
            "team_id",
            "unknown_reference",
            format!("no team {team}"),
        ));
    };
    let mode = mode.unwrap_or(&team_mode);
    if mode == "manual" {
        return Ok(None);
    }
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT u.id FROM team_members m JOIN users u ON u.id = m.user_id \
         WHERE m.team_id = $1 AND u.status = 'active' AND u.available ORDER BY u.id",
    )
    .bind(team)
    .fetch_all(tx.conn())
    .await?;
    if members.is_empty() {
        return Ok(None);
    }
    // Round-robin order: the members after the last one assigned, then from the start.
    let start = last
        .and_then(|l| members.iter().position(|m| *m > l))
        .unwrap_or(0);
    let rotation: Vec<Uuid> = members[start..]
        .iter()
        .chain(members[..start].iter())
        .copied()
        .collect();
    let chosen = if mode == "least_open" {
        let wf = workflow::load(tx).await?;
        let open: Vec<String> = wf
            .states
            .iter()
            .filter(|s| s.category == StateCategory::Open)
            .map(|s| s.key.clone())
            .collect();
        let counts: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT assignee_id, count(*) FROM tickets WHERE deleted_at IS NULL \
               AND assignee_id = ANY($1) AND status = ANY($2) GROUP BY assignee_id",
        )
        .bind(&members)
        .bind(&open)
        .fetch_all(tx.conn())
        .await?;
        let load = |u: &Uuid| counts.iter().find(|(a, _)| a == u).map_or(0, |(_, n)| *n);
        // Fewest open tickets; ties go round-robin.
        rotation.iter().copied().min_by_key(load)
    } else {
        rotation.first().copied()
    };
    if let Some(user) = chosen {
        sqlx::query("UPDATE teams SET last_assigned_user = $2 WHERE id = $1")
            .bind(team)
            .bind(user)
            .execute(tx.conn())
            .await?;
    }
    Ok(chosen)
}

/// A member as the assignment sees them.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Candidate {
    pub user_id: Uuid,
    pub name: String,
    pub active: bool,
    pub available: bool,
    /// Live tickets assigned to them in an open state.
    pub open_tickets: i64,
}

/// A team's mode and its members with their load (`users:read`).
pub async fn overview(
    tx: &mut TenantTx,
    caller: &Caller,
    team: Uuid,
) -> Result<(String, Vec<Candidate>)> {
    caller.require(Permission::UsersRead)?;
    let mode: Option<String> = sqlx::query_scalar("SELECT assignment FROM teams WHERE id = $1")
        .bind(team)
        .fetch_optional(tx.conn())
        .await?;
    let mode = mode.ok_or_else(|| Error::not_found("team.not_found", format!("no team {team}")))?;
    let wf = workflow::load(tx).await?;
    let open: Vec<String> = wf
        .states
        .iter()
        .filter(|s| s.category == StateCategory::Open)
        .map(|s| s.key.clone())
        .collect();
    let members = sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.status = 'active' AS active, u.available, \
           (SELECT count(*) FROM tickets t WHERE t.assignee_id = u.id AND t.deleted_at IS NULL \
              AND t.status = ANY($2)) AS open_tickets \
         FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY u.id",
    )
    .bind(team)
    .bind(&open)
    .fetch_all(tx.conn())
    .await?;
    Ok((mode, members))
}

/// Sets a team's assignment mode (`users:manage`).
pub async fn set_mode(tx: &mut TenantTx, caller: &Caller, team: Uuid, mode: &str) -> Result<()> {
    caller.require(Permission::UsersManage)?;
    if !MODES.contains(&mode) {
        return Err(Error::invalid_field(
            "mode",
            "unknown_mode",
            format!("use one of: {}", MODES.join(", ")),
        ));
    }
    let done = sqlx::query("UPDATE teams SET assignment = $2, updated_at = now() WHERE id = $1")
        .bind(team)
        .bind(mode)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(
            "team.not_found",
            format!("no team {team}"),
        ));
    }
    Ok(())
}

/// Marks a user available (takes automatic assignments) or away: the user themself, or a
/// holder of `users:manage`.
pub async fn set_available(
    tx: &mut TenantTx,
    caller: &Caller,
    user: Uuid,
    available: bool,
) -> Result<()> {
    let own = caller.principal.kind == PrincipalKind::User && caller.principal.id == user;
    if !own {
        caller.require(Permission::UsersManage)?;
    }
    let done = sqlx::query("UPDATE users SET available = $2, updated_at = now() WHERE id = $1")
        .bind(user)
        .bind(available)
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found(
            "user.not_found",
            format!("no user {user}"),
        ));
    }
    Ok(())
}
