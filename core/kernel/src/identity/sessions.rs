//! Login sessions: opaque tokens stored hashed, with a sliding expiry, revocable one by one
//! or all at once for a user. A session may be restricted ([`Restriction`]): until the user
//! changes an expired password or enrols in MFA it opens only the endpoints that do that.

use super::tokens::{self, CredentialKind};
use super::{Principal, PrincipalKind, Restriction};
use crate::db::TenantTx;
use crate::error::Result;
use crate::read_limit::{ReadPolicy, READ_POLICY_SQL};
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use uuid::Uuid;

/// A freshly opened session; the token is shown to the client once.
pub struct NewSession {
    pub id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for `user_id`.
pub async fn create(
    tx: &mut TenantTx,
    user_id: Uuid,
    ttl: Duration,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSession> {
    let token = tokens::generate(CredentialKind::Session, tx.tenant().id);
    let id = Uuid::now_v7();
    let expires_at = Utc::now() + ttl;
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, expires_at, ip, user_agent) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(tokens::hash(&token))
    .bind(user_id)
    .bind(expires_at)
    .bind(ip)
    .bind(user_agent.map(|ua| ua.chars().take(300).collect::<String>()))
    .execute(tx.conn())
    .await?;
    Ok(NewSession {
        id,
        token,
        expires_at,
    })
}

/// Resolves a session token hash to its active user, refusing a restricted session with its
/// 403 ([`Restriction::error`]): what every endpoint but the account-repair ones calls.
/// `None` as for [`authenticate_any`].
pub async fn authenticate(
    tx: &mut TenantTx,
    token_hash: &str,
    ttl: Duration,
    max_age: Duration,
) -> Result<Option<Principal>> {
    let principal = authenticate_any(tx, token_hash, ttl, max_age).await?;
    if let Some(p) = &principal {
        p.ensure_unrestricted()?;
    }
    Ok(principal)
}

/// Resolves a session token hash to its active user, restricted or not; extends the expiry
/// once half of `ttl` has passed, but never past `max_age` after the login: a session in use
/// still ends then. `None` for unknown, expired, too old, revoked, or a deactivated user.
pub async fn authenticate_any(
    tx: &mut TenantTx,
    token_hash: &str,
    ttl: Duration,
    max_age: Duration,
) -> Result<Option<Principal>> {
    // `restriction` arrived with schema v10: read through the row's JSON so a tenant one
    // version behind still authenticates (as unrestricted sessions). The settings row is read
    // as JSON `j` for the same reason: metadata_version came with schema version 2 (a tenant
    // still at 1 signs in with 0), the read-limit columns with 12 (off before).
    let row = sqlx::query(&format!(
        "SELECT s.id, s.user_id, s.expires_at, u.name, st.policy_version, \
                coalesce((j ->> 'metadata_version')::bigint, 0) AS metadata_version, \
                to_jsonb(s) ->> 'restriction' AS restriction, {READ_POLICY_SQL} AS reads \
         FROM sessions s JOIN users u ON u.id = s.user_id CROSS JOIN settings st \
           CROSS JOIN LATERAL (SELECT to_jsonb(st) AS j) sj \
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now() \
           AND s.created_at > now() - make_interval(secs => $2) \
           AND u.status = 'active'"
    ))
    .bind(token_hash)
    .bind(max_age.num_seconds() as f64)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        return refuse_frozen(tx, token_hash).await;
    };
    let session_id: Uuid = row.get("id");
    let expires_at: DateTime<Utc> = row.get("expires_at");
    if expires_at - Utc::now() < ttl / 2 {
        sqlx::query("UPDATE sessions SET expires_at = $2, last_used_at = now() WHERE id = $1")
            .bind(session_id)
            .bind(Utc::now() + ttl)
            .execute(tx.conn())
            .await?;
    }
    Ok(Some(Principal {
        kind: PrincipalKind::User,
        id: row.get("user_id"),
        name: row.get("name"),
        session_id: Some(session_id),
        policy_version: row.get("policy_version"),
        metadata_version: row.get("metadata_version"),
        restriction: row
            .get::<Option<String>, _>("restriction")
            .as_deref()
            .and_then(Restriction::parse),
        reads: ReadPolicy::from_json(row.get("reads")),
    }))
}

/// For a token that opens no session: 403 `user.frozen` when it was a session of a user who
/// has been frozen since (its sessions were revoked then), else `None` (401). Runs only on
/// this failure path, never for a live session.
async fn refuse_frozen(tx: &mut TenantTx, token_hash: &str) -> Result<Option<Principal>> {
    let frozen: Option<bool> = sqlx::query_scalar(
        "SELECT (to_jsonb(u) ->> 'frozen_at') IS NOT NULL \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(tx.conn())
    .await?;
    if frozen == Some(true) {
        return Err(crate::read_limit::frozen_error());
    }
    Ok(None)
}

/// Sets or lifts (`None`) the restriction of one session.
pub async fn restrict(
    tx: &mut TenantTx,
    session_id: Uuid,
    restriction: Option<Restriction>,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET restriction = $2 WHERE id = $1")
        .bind(session_id)
        .bind(restriction.map(Restriction::as_str))
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Lifts `restriction` from every session of a user that has it (the user fixed it).
pub async fn lift_for_user(
    tx: &mut TenantTx,
    user_id: Uuid,
    restriction: Restriction,
) -> Result<()> {
    sqlx::query("UPDATE sessions SET restriction = NULL WHERE user_id = $1 AND restriction = $2")
        .bind(user_id)
        .bind(restriction.as_str())
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Ends one session (logout).
pub async fn revoke(tx: &mut TenantTx, session_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Ends every session of a user except `keep` (password change, deactivation).
pub async fn revoke_all_of_user(
    tx: &mut TenantTx,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Ends every session of the tenant (after a restore brought back sessions that had been
/// revoked since the backup, everyone signs in again).
pub async fn revoke_everyone(tx: &mut TenantTx) -> Result<u64> {
    let done = sqlx::query("UPDATE sessions SET revoked_at = now() WHERE revoked_at IS NULL")
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

/// Expiry of a session, for `/me`.
pub async fn expires_at(tx: &mut TenantTx, session_id: Uuid) -> Result<Option<DateTime<Utc>>> {
    let at = sqlx::query_scalar("SELECT expires_at FROM sessions WHERE id = $1")
        .bind(session_id)
        .fetch_optional(tx.conn())
        .await?;
    Ok(at)
}

/// An active user as a principal for work done later on their behalf (an import started by
/// them): no session, the tenant's current versions. `None` when the user is gone or no
/// longer active, so such work stops rather than acting for someone who may not act.
pub async fn background_principal(tx: &mut TenantTx, user_id: Uuid) -> Result<Option<Principal>> {
    let row = sqlx::query(&format!(
        "SELECT u.name, st.policy_version, \
                coalesce((j ->> 'metadata_version')::bigint, 0) AS metadata_version, \
                {READ_POLICY_SQL} AS reads \
         FROM users u CROSS JOIN settings st CROSS JOIN LATERAL (SELECT to_jsonb(st) AS j) sj \
         WHERE u.id = $1 AND u.status = 'active' AND (to_jsonb(u) ->> 'frozen_at') IS NULL"
    ))
    .bind(user_id)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|row| Principal {
        kind: PrincipalKind::User,
        id: user_id,
        name: row.get("name"),
        session_id: None,
        policy_version: row.get("policy_version"),
        metadata_version: row.get("metadata_version"),
        restriction: None,
        reads: ReadPolicy::from_json(row.get("reads")),
    }))
}
