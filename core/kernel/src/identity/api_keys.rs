//! API keys: named credentials with their own role, for integrations. The secret is shown once
//! at creation; only its hash is kept.

use super::tokens::{self, CredentialKind};
use super::{Principal, PrincipalKind};
use crate::authz::{policy, Caller, Grants, Permission};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::read_limit::{ReadPolicy, READ_POLICY_SQL};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, role, created_by, created_at, last_used_at, revoked_at";

/// Creates a key acting with `role` (needs `api_keys:manage`; the role may not grant more than
/// the caller holds); returns it with its secret (shown once). The key answers to the
/// caller's user, also when the caller is itself a key.
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    name: &str,
    role: &str,
) -> Result<(ApiKey, String)> {
    caller.require(Permission::ApiKeysManage)?;
    let role_names = [role.to_owned()];
    crate::roles::ensure_exist(tx, "role", &role_names)
        .await
        .map_err(|e| match e {
            Error::Invalid { .. } => Error::invalid_field(
                "role",
                "unknown_role",
                format!("there is no role '{role}'; list roles with GET /api/v1/roles"),
            ),
            other => other,
        })?;
    let granted = Grants::of_roles(tx, &role_names).await?;
    caller.grants.ensure_may_grant(&granted)?;
    let created_by = caller.user_id;
    let token = tokens::generate(CredentialKind::ApiKey, tx.tenant().id);
    let id = Uuid::now_v7();
    let key: ApiKey = sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, name, prefix, token_hash, role, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(tokens::display_prefix(&token))
    .bind(tokens::hash(&token))
    .bind(role)
    .bind(created_by)
    .fetch_one(tx.conn())
    .await?;
    policy::set_subject_roles(tx, &policy::api_key_subject(id), &[role.to_owned()]).await?;
    Ok((key, token))
}

/// All keys, newest first (revoked ones too, marked); needs `api_keys:manage`.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<ApiKey>> {
    caller.require(Permission::ApiKeysManage)?;
    let keys = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(tx.conn())
    .await?;
    Ok(keys)
}

/// Revokes a key for good; needs `api_keys:manage`.
pub async fn revoke(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<ApiKey> {
    caller.require(Permission::ApiKeysManage)?;
    let key: Option<ApiKey> = sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let key =
        key.ok_or_else(|| Error::not_found("api_key.not_found", format!("no API key {id}")))?;
    policy::set_subject_roles(tx, &policy::api_key_subject(id), &[]).await?;
    Ok(key)
}

/// The ids of revoked keys, so a restore of older data can revoke them again.
pub async fn revoked_ids(tx: &mut TenantTx) -> Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM api_keys WHERE revoked_at IS NOT NULL")
            .fetch_all(tx.conn())
            .await?,
    )
}

/// Revokes the keys `ids` that exist and are still active (the system acting, after a
/// restore: a key revoked once stays revoked). Returns how many were revoked.
pub async fn revoke_again(tx: &mut TenantTx, ids: &[Uuid]) -> Result<u64> {
    let revoked: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now() WHERE id = ANY($1) AND revoked_at IS NULL \
         RETURNING id",
    )
    .bind(ids)
    .fetch_all(tx.conn())
    .await?;
    for id in &revoked {
        policy::set_subject_roles(tx, &policy::api_key_subject(*id), &[]).await?;
    }
    Ok(revoked.len() as u64)
}

/// Resolves a key's hash to its principal; `None` for unknown or revoked keys. A key whose
/// creator has been deactivated stops working with it (401 `auth.api_key_creator_inactive`):
/// a key must never outlive the account that answers for it.
pub async fn authenticate(tx: &mut TenantTx, token_hash: &str) -> Result<Option<Principal>> {
    type KeyRow = (
        Uuid,
        String,
        bool,
        bool,
        i64,
        i64,
        Option<serde_json::Value>,
    );
    let row: Option<KeyRow> = sqlx::query_as(&format!(
        // See sessions::authenticate for the settings and users read as JSON.
        "WITH k AS ( \
            SELECT k.id, k.name, coalesce(u.status = 'active', true) AS creator_active, \
              (to_jsonb(u) ->> 'frozen_at') IS NOT NULL AS creator_frozen \
            FROM api_keys k LEFT JOIN users u ON u.id = k.created_by \
            WHERE k.token_hash = $1 AND k.revoked_at IS NULL), \
         used AS (UPDATE api_keys SET last_used_at = now() \
            WHERE id IN (SELECT id FROM k WHERE creator_active AND NOT creator_frozen) RETURNING id) \
         SELECT k.id, k.name, k.creator_active, k.creator_frozen, st.policy_version, \
           coalesce((j ->> 'metadata_version')::bigint, 0), {READ_POLICY_SQL} \
         FROM k CROSS JOIN settings st CROSS JOIN LATERAL (SELECT to_jsonb(st) AS j) sj"
    ))
    .bind(token_hash)
    .fetch_optional(tx.conn())
    .await?;
    let Some((id, name, creator_active, creator_frozen, policy_version, metadata_version, reads)) =
        row
    else {
        return Ok(None);
    };
    if creator_frozen {
        return Err(crate::read_limit::frozen_error());
    }
    if !creator_active {
        return Err(Error::unauthenticated(
            "auth.api_key_creator_inactive",
            format!(
                "the API key '{name}' was created by a user who has since been deactivated, so it no longer works; an active user must create a new key"
            ),
        ));
    }
    Ok(Some(Principal {
        kind: PrincipalKind::ApiKey,
        id,
        name,
        session_id: None,
        policy_version,
        metadata_version,
        restriction: None,
        reads: ReadPolicy::from_json(reads),
    }))
}
