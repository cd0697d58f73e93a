//! Staff users of a tenant. Roles are casbin `g` rules; teams are memberships. Deleting a user
//! deactivates it: history keeps pointing at it, it can no longer log in.

use crate::authz::{policy, ADMIN_ROLE};
use crate::context::{cut_page, parse_cursor, Page};
use crate::db::TenantTx;
use crate::domain::{DisplayName, Email};
use crate::error::{unique_violation, Error, FieldError, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub status: String,
    pub locale: Option<String>,
    pub roles: Vec<String>,
    pub team_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Whom the user reports to (approvals addressed to "the record owner's manager").
    pub manager_id: Option<Uuid>,
    /// Set while the user is frozen by the read limit (`crate::read_limit`).
    pub frozen_at: Option<DateTime<Utc>>,
    pub frozen_reason: Option<String>,
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    status: String,
    locale: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    manager_id: Option<Uuid>,
    frozen_at: Option<DateTime<Utc>>,
    frozen_reason: Option<String>,
}

/// Read from `users u`. `manager_id` arrived with schema v7 (and `frozen_*` with v12) and is
/// read through the row's JSON, so a tenant still being provisioned or upgraded from an older
/// version reads as no manager (not frozen).
const COLUMNS: &str = "u.id, u.email, u.name, u.status, u.locale, u.created_at, u.updated_at, \
    u.last_login_at, (to_jsonb(u) ->> 'manager_id')::uuid AS manager_id, \
    (to_jsonb(u) ->> 'frozen_at')::timestamptz AS frozen_at, \
    to_jsonb(u) ->> 'frozen_reason' AS frozen_reason";

/// UI languages.
pub const LOCALES: &[&str] = &["zh-CN", "en"];

/// The locale `user` chose for themselves (`None`: none chosen, or no such user).
pub async fn own_locale(tx: &mut TenantTx, user: Uuid) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT locale FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(tx.conn())
            .await?
            .flatten(),
    )
}

/// The names of the users among `ids` (deactivated ones too: history and reports name them).
pub async fn names(tx: &mut TenantTx, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(tx.conn())
        .await?;
    Ok(rows.into_iter().collect())
}

/// The company's own locale (`settings.locale`).
pub async fn tenant_locale(tx: &mut TenantTx) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT locale FROM settings")
        .fetch_one(tx.conn())
        .await?)
}

/// Checks a locale against [`LOCALES`].
pub fn parse_locale(field: &str, raw: &str) -> Result<String, FieldError> {
    if LOCALES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "unknown_locale",
            format!(
                "'{raw}' is not supported; use one of: {}",
                LOCALES.join(", ")
            ),
        ))
    }
}

async fn complete(tx: &mut TenantTx, rows: Vec<UserRow>) -> Result<Vec<User>> {
    let subjects: Vec<String> = rows.iter().map(|r| policy::user_subject(r.id)).collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let domain = tx.tenant().id.to_string();
    let mut roles: HashMap<String, Vec<String>> = HashMap::new();
    for row in sqlx::query(
        "SELECT v0, v1 FROM casbin_rule WHERE ptype = 'g' AND v0 = ANY($1) AND v2 = $2 ORDER BY v1",
    )
    .bind(&subjects)
    .bind(&domain)
    .fetch_all(tx.conn())
    .await?
    {
        roles.entry(row.get(0)).or_default().push(row.get(1));
    }
    let mut teams: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for row in sqlx::query(
        "SELECT user_id, team_id FROM team_members WHERE user_id = ANY($1) ORDER BY added_at, team_id",
    )
    .bind(&ids)
    .fetch_all(tx.conn())
    .await?
    {
        teams.entry(row.get(0)).or_default().push(row.get(1));
    }
    Ok(rows
        .into_iter()
        .map(|r| User {
            roles: roles
                .remove(&policy::user_subject(r.id))
                .unwrap_or_default(),
            team_ids: teams.remove(&r.id).unwrap_or_default(),
            id: r.id,
            email: r.email,
            name: r.name,
            status: r.status,
            locale: r.locale,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
            manager_id: r.manager_id,
            frozen_at: r.frozen_at,
            frozen_reason: r.frozen_reason,
        })
        .collect())
}

fn not_found(id: Uuid) -> Error {
    Error::not_found("user.not_found", format!("no user {id}"))
}

/// One user by id.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<User> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users u WHERE u.id = $1"))
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
    let row = row.ok_or_else(|| not_found(id))?;
    complete(tx, vec![row])
        .await?
        .pop()
        .ok_or_else(|| not_found(id))
}

/// What a new user needs. The password arrives hashed.
pub struct NewUser {
    pub email: Email,
    pub name: DisplayName,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub team_ids: Vec<Uuid>,
    pub locale: Option<String>,
}

/// Creates a user with roles and team memberships.
pub async fn create(tx: &mut TenantTx, new: NewUser) -> Result<User> {
    crate::roles::ensure_exist(tx, "roles", &new.roles).await?;
    crate::teams::ensure_exist(tx, "team_ids", &new.team_ids).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, locale) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(new.email.as_str())
    .bind(new.name.as_str())
    .bind(&new.password_hash)
    .bind(&new.locale)
    .execute(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict(
            "user.email_taken",
            format!("a user with e-mail {} exists already", new.email),
        ),
        None => e.into(),
    })?;
    policy::set_subject_roles(tx, &policy::user_subject(id), &new.roles).await?;
    set_teams(tx, id, &new.team_ids).await?;
    get(tx, id).await
}

async fn set_teams(tx: &mut TenantTx, user_id: Uuid, team_ids: &[Uuid]) -> Result<()> {
    sqlx::query("DELETE FROM team_members WHERE user_id = $1 AND NOT (team_id = ANY($2))")
        .bind(user_id)
        .bind(team_ids)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "INSERT INTO team_members (team_id, user_id) SELECT t, $1 FROM unnest($2::uuid[]) AS t \
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(team_ids)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Filters for the user list.
#[derive(Debug, Default)]
pub struct UserQuery {
    pub cursor: Option<String>,
    pub limit: i64,
    /// Case-insensitive substring of name or e-mail.
    pub q: Option<String>,
    pub status: Option<String>,
    pub role: Option<String>,
    pub team_id: Option<Uuid>,
}

/// Users in creation order.
pub async fn list(tx: &mut TenantTx, q: UserQuery) -> Result<Page<User>> {
    let after: Option<Uuid> = parse_cursor(q.cursor.as_deref())?;
    let pattern = q.q.as_deref().map(|s| {
        format!(
            "%{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let domain = tx.tenant().id.to_string();
    let mut rows: Vec<UserRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users u \
         WHERE ($1::uuid IS NULL OR id > $1) \
           AND ($2::text IS NULL OR name ILIKE $2 OR email ILIKE $2) \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM casbin_rule r WHERE r.ptype = 'g' \
                AND r.v0 = 'u:' || u.id::text AND r.v1 = $4 AND r.v2 = $5)) \
           AND ($6::uuid IS NULL OR EXISTS (SELECT 1 FROM team_members m WHERE m.user_id = u.id AND m.team_id = $6)) \
         ORDER BY id LIMIT $7"
    ))
    .bind(after)
    .bind(pattern)
    .bind(q.status)
    .bind(q.role)
    .bind(domain)
    .bind(q.team_id)
    .bind(q.limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut rows, q.limit, |r| r.id);
    Ok(Page {
        items: complete(tx, rows).await?,
        next_cursor,
    })
}

/// What may change on a user.
#[derive(Debug, Default)]
pub struct UserPatch {
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
    pub roles: Option<Vec<String>>,
    pub team_ids: Option<Vec<Uuid>>,
    pub active: Option<bool>,
    pub locale: Option<String>,
    /// `Some(None)` clears the manager.
    pub manager_id: Option<Option<Uuid>>,
}

/// Applies a patch. Refuses changes that would leave the tenant without an active admin.
pub async fn update(tx: &mut TenantTx, id: Uuid, patch: UserPatch) -> Result<User> {
    let current = get(tx, id).await?;
    if let Some(roles) = &patch.roles {
        crate::roles::ensure_exist(tx, "roles", roles).await?;
    }
    if let Some(teams) = &patch.team_ids {
        crate::teams::ensure_exist(tx, "team_ids", teams).await?;
    }
    if let Some(Some(manager)) = patch.manager_id {
        if manager == id {
            return Err(Error::invalid_field(
                "manager_id",
                "self_manager",
                "a user cannot be their own manager",
            ));
        }
        let known: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(manager)
            .fetch_optional(tx.conn())
            .await?;
        if known.is_none() {
            return Err(Error::invalid_field(
                "manager_id",
                "unknown_reference",
                format!("no user {manager}"),
            ));
        }
    }
    let loses_admin = current.roles.iter().any(|r| r == ADMIN_ROLE)
        && current.status == "active"
        && (patch.active == Some(false)
            || patch
                .roles
                .as_ref()
                .is_some_and(|r| !r.iter().any(|r| r == ADMIN_ROLE)));
    if loses_admin {
        ensure_other_admin(tx, id).await?;
    }
    let status = match patch.active {
        Some(true) => "active",
        Some(false) => "disabled",
        None => current.status.as_str(),
    };
    sqlx::query(
        "UPDATE users SET name = $2, email = $3, status = $4, locale = $5, manager_id = $6, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(patch.name.as_ref().map_or(current.name.as_str(), |n| n.as_str()))
    .bind(patch.email.as_ref().map_or(current.email.as_str(), |e| e.as_str()))
    .bind(status)
    .bind(patch.locale.or(current.locale))
    .bind(patch.manager_id.unwrap_or(current.manager_id))
    .execute(tx.conn())
    .await
    .map_err(|e| match unique_violation(&e) {
        Some(_) => Error::conflict("user.email_taken", "another user has this e-mail already"),
        None => e.into(),
    })?;
    if let Some(roles) = &patch.roles {
        policy::set_subject_roles(tx, &policy::user_subject(id), roles).await?;
    }
    if let Some(teams) = &patch.team_ids {
        set_teams(tx, id, teams).await?;
    }
    if status == "disabled" {
        crate::identity::sessions::revoke_all_of_user(tx, id, None).await?;
    }
    get(tx, id).await
}

async fn ensure_other_admin(tx: &mut TenantTx, except: Uuid) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users u JOIN casbin_rule r \
           ON r.ptype = 'g' AND r.v0 = 'u:' || u.id::text AND r.v1 = $1 AND r.v2 = $2 \
         WHERE u.status = 'active' AND u.id <> $3",
    )
    .bind(ADMIN_ROLE)
    .bind(domain)
    .bind(except)
    .fetch_one(tx.conn())
    .await?;
    if others == 0 {
        return Err(Error::conflict(
            "user.last_admin",
            "this is the last active administrator; make another user admin first",
        ));
    }
    Ok(())
}

/// Credentials looked up for a login attempt.
pub struct LoginCandidate {
    pub id: Uuid,
    pub name: String,
    pub password_hash: String,
    pub active: bool,
    /// Frozen by the read limit: refused at login until unfrozen.
    pub frozen: bool,
}

/// Finds a user by e-mail for login.
pub async fn find_for_login(tx: &mut TenantTx, email: &Email) -> Result<Option<LoginCandidate>> {
    let row = sqlx::query(
        "SELECT id, name, password_hash, status, \
           (to_jsonb(users) ->> 'frozen_at') IS NOT NULL AS frozen FROM users WHERE email = $1",
    )
    .bind(email.as_str())
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| LoginCandidate {
        id: r.get("id"),
        name: r.get("name"),
        password_hash: r.get("password_hash"),
        active: r.get::<String, _>("status") == "active",
        frozen: r.get("frozen"),
    }))
}

/// The stored hash of a user's password (for changing it).
pub async fn password_hash(tx: &mut TenantTx, id: Uuid) -> Result<String> {
    let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(tx.conn())
        .await?;
    hash.ok_or_else(|| not_found(id))
}

/// The hashes of the user's latest `n` passwords, the current one first (for the password
/// policy's history rule).
pub async fn recent_password_hashes(tx: &mut TenantTx, id: Uuid, n: i32) -> Result<Vec<String>> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    let mut hashes = vec![password_hash(tx, id).await?];
    let earlier: Vec<String> = sqlx::query_scalar(
        "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(n - 1))
    .fetch_all(tx.conn())
    .await?;
    hashes.extend(earlier);
    Ok(hashes)
}

/// Replaces a user's password hash; the old one joins the user's password history (the
/// newest [`crate::password_policy::MAX_HISTORY`] are kept).
pub async fn set_password(tx: &mut TenantTx, id: Uuid, password_hash: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash) \
         SELECT id, password_hash FROM users WHERE id = $1",
    )
    .bind(id)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
           (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(id)
    .bind(i64::from(crate::password_policy::MAX_HISTORY))
    .execute(tx.conn())
    .await?;
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Notes a successful login.
pub async fn record_login(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Every active user's id, e-mail and name: what an import matches a "负责人"/"Owner" column
/// against (by e-mail, or by a name no other active user has).
pub async fn directory(tx: &mut TenantTx) -> Result<Vec<(Uuid, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, email, name FROM users WHERE status = 'active' ORDER BY created_at, id",
    )
    .fetch_all(tx.conn())
    .await?)
}
