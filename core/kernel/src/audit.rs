//! The security audit log: logins (good and bad), user, role, team and key changes. Entries
//! are appended in the same transaction as the change they describe; nothing updates them.

use crate::context::{cut_page, parse_cursor, Page, RequestCtx, RequestMeta};
use crate::db::TenantTx;
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

/// The table of the log: a restore of older data keeps it (what happened stays on record).
pub const LOG_TABLE: &str = "audit_log";

/// What kind of principal acted (stored as `actor_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    ApiKey,
    /// A customer's contact on the portal.
    Contact,
    /// A workflow rule acting on its own principal.
    Rule,
    /// A plugin install acting on its own principal, with its grants.
    Plugin,
    /// The server itself (provisioning, timers, the command line).
    System,
    /// Someone not (yet) authenticated.
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::ApiKey => "api_key",
            ActorKind::Contact => "contact",
            ActorKind::Rule => "rule",
            ActorKind::Plugin => "plugin",
            ActorKind::System => "system",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

impl From<crate::identity::PrincipalKind> for ActorKind {
    fn from(kind: crate::identity::PrincipalKind) -> Self {
        match kind {
            crate::identity::PrincipalKind::User => ActorKind::User,
            crate::identity::PrincipalKind::ApiKey => ActorKind::ApiKey,
            crate::identity::PrincipalKind::Plugin => ActorKind::Plugin,
        }
    }
}

/// Who did it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub meta: RequestMeta,
}

impl Actor {
    pub fn of(ctx: &RequestCtx) -> Self {
        Actor {
            kind: ctx.principal.kind.into(),
            id: Some(ctx.principal.id),
            name: Some(ctx.principal.name.clone()),
            meta: ctx.meta.clone(),
        }
    }

    /// Someone not (yet) authenticated, e.g. a login attempt.
    pub fn anonymous(meta: &RequestMeta) -> Self {
        Actor {
            kind: ActorKind::Anonymous,
            id: None,
            name: None,
            meta: meta.clone(),
        }
    }

    /// A workflow rule acting on its own principal; `depth` counts the rules that led here.
    pub fn rule(id: Uuid, name: &str, request_id: String, depth: u8) -> Self {
        Actor {
            kind: ActorKind::Rule,
            id: Some(id),
            name: Some(name.to_owned()),
            meta: RequestMeta {
                request_id,
                rule_depth: depth,
                ..RequestMeta::default()
            },
        }
    }

    /// A plugin install (`id`) acting on its own principal; `name` is its package's name.
    pub fn plugin(id: Uuid, name: &str, request_id: String) -> Self {
        Actor {
            kind: ActorKind::Plugin,
            id: Some(id),
            name: Some(name.to_owned()),
            meta: RequestMeta {
                request_id,
                ..RequestMeta::default()
            },
        }
    }

    /// The system itself (provisioning, CLI).
    pub fn system() -> Self {
        Actor {
            kind: ActorKind::System,
            id: None,
            name: None,
            meta: RequestMeta::default(),
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

/// Appends an entry.
pub async fn record(
    tx: &mut TenantTx,
    actor: &Actor,
    action: &str,
    target: Option<(&str, String)>,
    detail: serde_json::Value,
) -> Result<()> {
    let (target_kind, target_id) = target.unzip();
    sqlx::query(
        "INSERT INTO audit_log (action, actor_kind, actor_id, actor_name, target_kind, target_id, \
                                ip, user_agent, request_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(action)
    .bind(actor.kind.as_str())
    .bind(actor.id)
    .bind(&actor.name)
    .bind(target_kind)
    .bind(target_id)
    .bind(&actor.meta.ip)
    .bind(&actor.meta.user_agent)
    .bind(Some(&actor.meta.request_id).filter(|r| !r.is_empty()))
    .bind(detail)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Filters for reading the log.
#[derive(Debug, Default)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: i64,
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Newest first; the cursor is the last id seen.
pub async fn list(
    tx: &mut TenantTx,
    caller: &crate::authz::Caller,
    q: AuditQuery,
) -> Result<Page<AuditEntry>> {
    caller.require(crate::authz::Permission::AuditRead)?;
    let before: Option<i64> = parse_cursor(q.cursor.as_deref())?;
    let mut items: Vec<AuditEntry> = sqlx::query_as(
        "SELECT id, at, action, actor_kind, actor_id, actor_name, target_kind, target_id, ip, \
                user_agent, request_id, detail \
         FROM audit_log \
         WHERE ($1::bigint IS NULL OR id < $1) \
           AND ($2::text IS NULL OR action = $2 OR starts_with(action, $2 || '.')) \
           AND ($3::uuid IS NULL OR actor_id = $3) \
           AND ($4::timestamptz IS NULL OR at >= $4) \
           AND ($5::timestamptz IS NULL OR at < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(before)
    .bind(q.action)
    .bind(q.actor_id)
    .bind(q.since)
    .bind(q.until)
    .bind(q.limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, q.limit, |e| e.id);
    Ok(Page { items, next_cursor })
}
