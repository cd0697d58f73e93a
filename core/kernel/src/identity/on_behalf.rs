//! The [`Principal`] a background job acts for: the user or API key that asked for the work
//! (an export, say), read again when the job runs, so a user deactivated, frozen or a key
//! revoked since then gets nothing, and the permissions and scopes are those of the moment.

use super::{Principal, PrincipalKind};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::read_limit::{ReadPolicy, READ_POLICY_SQL};
use sqlx::Row;
use uuid::Uuid;

/// The principal `kind`/`id` as it stands now; 403 `auth.principal_inactive` when it can no
/// longer act (a deactivated or frozen user, a revoked key or one whose creator is gone).
pub async fn principal_of(tx: &mut TenantTx, kind: PrincipalKind, id: Uuid) -> Result<Principal> {
    // The settings row as JSON `j`, as `sessions::authenticate_any` reads it.
    let who = match kind {
        PrincipalKind::User => {
            "SELECT u.name FROM users u WHERE u.id = $1 AND u.status = 'active' \
               AND (to_jsonb(u) ->> 'frozen_at') IS NULL"
        }
        PrincipalKind::ApiKey => {
            "SELECT k.name FROM api_keys k LEFT JOIN users u ON u.id = k.created_by \
             WHERE k.id = $1 AND k.revoked_at IS NULL AND coalesce(u.status = 'active', true) \
               AND (to_jsonb(u) ->> 'frozen_at') IS NULL"
        }
        PrincipalKind::Plugin => {
            return Err(Error::internal(
                "a plugin install acts through its own host",
            ))
        }
    };
    let row = sqlx::query(&format!(
        "WITH p AS ({who}) SELECT p.name, st.policy_version, \
           coalesce((j ->> 'metadata_version')::bigint, 0) AS metadata_version, \
           {READ_POLICY_SQL} AS reads \
         FROM p CROSS JOIN settings st CROSS JOIN LATERAL (SELECT to_jsonb(st) AS j) sj"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| {
        Error::forbidden(
            "auth.principal_inactive",
            format!(
                "the {} that asked for this work can no longer act (deactivated, frozen or revoked); ask again as an active user",
                kind.as_str()
            ),
        )
    })?;
    Ok(Principal {
        kind,
        id,
        name: row.try_get("name")?,
        session_id: None,
        policy_version: row.try_get("policy_version")?,
        metadata_version: row.try_get("metadata_version")?,
        restriction: None,
        reads: ReadPolicy::from_json(row.try_get("reads")?),
    })
}
