//! Freezing a user who passed the read limit, and lifting it.

use super::ReadLimit;
use crate::audit::{self, Actor, ActorKind};
use crate::context::RequestMeta;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::identity::sessions;
use crate::mail::{self, Lang, OutgoingMail};
use crate::notifications::{self, NewNotification};
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

/// The notification kind and mail purpose of a freeze.
const KIND: &str = "user.frozen";

/// Freezes `user_id` (unless it already is): sessions revoked, audited, administrators told.
pub(super) async fn freeze(
    tx: &mut TenantTx,
    user_id: Uuid,
    meta: &RequestMeta,
    limit: &ReadLimit,
    attempted: i32,
) -> Result<()> {
    let reason = format!(
        "read more than {} customer records within {} minutes",
        limit.max_reads, limit.window_minutes
    );
    let frozen: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
        "UPDATE users SET frozen_at = now(), frozen_reason = $2, updated_at = now() \
         WHERE id = $1 AND frozen_at IS NULL RETURNING name, email, frozen_at",
    )
    .bind(user_id)
    .bind(&reason)
    .fetch_optional(tx.conn())
    .await?;
    // Frozen meanwhile by a parallel request: that one did the rest.
    let Some((name, email, frozen_at)) = frozen else {
        return Ok(());
    };
    let revoked = sessions::revoke_all_of_user(tx, user_id, None).await?;
    let actor = Actor {
        kind: ActorKind::System,
        id: None,
        name: Some("read limit".to_owned()),
        meta: meta.clone(),
    };
    let detail = serde_json::json!({
        "max_reads": limit.max_reads,
        "window_minutes": limit.window_minutes,
        "refused_reads": attempted,
        "sessions_revoked": revoked,
    });
    audit::record(
        tx,
        &actor,
        KIND,
        Some(("user", user_id.to_string())),
        detail,
    )
    .await?;
    let frozen = Frozen {
        id: user_id,
        name: &name,
        email: &email,
        limit,
    };
    for admin in administrators(tx, user_id).await? {
        let lang = Lang::of(admin.locale.as_deref());
        let (subject, text) = render(lang, &admin.name, &frozen);
        notifications::create(
            tx,
            NewNotification {
                user_id: admin.id,
                kind: KIND,
                title: &subject,
                body: Some(&text),
                record: Some(("users", user_id)),
                job_id: None,
            },
        )
        .await?;
        let message = OutgoingMail {
            to: vec![admin.email],
            subject,
            text,
            purpose: KIND.to_owned(),
        };
        let key = format!(
            "mail:{KIND}:{user_id}:{}:{}",
            frozen_at.timestamp_micros(),
            admin.id
        );
        // Over the mail quota the in-app notification still tells them and the user is
        // frozen all the same (a refused message leaves nothing behind).
        match mail::enqueue(tx, &message, key, Some(user_id)).await {
            Err(crate::Error::TooManyRequests { message, .. }) => {
                tracing::warn!(user = %user_id, %message, "freeze mail over the quota");
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

struct Frozen<'a> {
    id: Uuid,
    name: &'a str,
    email: &'a str,
    limit: &'a ReadLimit,
}

#[derive(FromRow)]
struct Administrator {
    id: Uuid,
    email: String,
    name: String,
    locale: Option<String>,
}

/// Active, unfrozen users holding `users:manage` (through any role), but `except`.
async fn administrators(tx: &mut TenantTx, except: Uuid) -> Result<Vec<Administrator>> {
    let domain = tx.tenant().id.to_string();
    let admins = sqlx::query_as(
        "SELECT u.id, u.email, u.name, coalesce(u.locale, st.locale) AS locale \
         FROM users u CROSS JOIN settings st \
         WHERE u.status = 'active' AND u.frozen_at IS NULL AND u.id <> $1 \
           AND 'u:' || u.id::text IN ( \
             SELECT g.v0 FROM casbin_rule g JOIN casbin_rule p \
               ON p.ptype = 'p' AND p.v0 = g.v1 AND p.v1 = $2 \
             WHERE g.ptype = 'g' AND g.v2 = $2 AND p.v2 = 'users' AND p.v3 = 'manage') \
         ORDER BY u.id",
    )
    .bind(except)
    .bind(domain)
    .fetch_all(tx.conn())
    .await?;
    Ok(admins)
}

/// Subject and text of the notice to one administrator.
fn render(lang: Lang, admin: &str, f: &Frozen<'_>) -> (String, String) {
    let (max, minutes, id) = (f.limit.max_reads, f.limit.window_minutes, f.id);
    match lang {
        Lang::ZhCn => (
            format!("账号已冻结：{}", f.name),
            format!(
                "{admin}，您好：\n\n用户 {}（{}）在 {minutes} 分钟内读取的客户记录超过了公司设定的上限 {max} 条，\
                 系统已自动冻结该账号并注销其全部会话。\n\n请核实情况；如需恢复，请由管理员解冻：\
                 POST /api/v1/users/{id}/unfreeze。",
                f.name, f.email
            ),
        ),
        Lang::En => (
            format!("Account frozen: {}", f.name),
            format!(
                "Hello {admin},\n\nThe user {} ({}) read more than the company's limit of {max} customer \
                 records within {minutes} minutes. The account has been frozen and all its sessions \
                 ended.\n\nPlease look into it; an administrator can unfreeze the account with \
                 POST /api/v1/users/{id}/unfreeze.",
                f.name, f.email
            ),
        ),
    }
}

/// Lifts a freeze: clears `frozen_at` and the user's read counter. 404 for an unknown user,
/// 409 `user.not_frozen` for one that is not frozen. The caller's checks and the audit entry
/// belong to `staff::unfreeze`. Returns when it had been frozen.
pub async fn unfreeze_user(tx: &mut TenantTx, user_id: Uuid) -> Result<DateTime<Utc>> {
    let state: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT frozen_at FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(tx.conn())
            .await?;
    let Some(state) = state else {
        return Err(Error::not_found(
            "user.not_found",
            format!("no user {user_id}"),
        ));
    };
    let Some(frozen_at) = state else {
        return Err(Error::conflict(
            "user.not_frozen",
            "this user is not frozen; nothing to do",
        ));
    };
    sqlx::query(
        "UPDATE users SET frozen_at = NULL, frozen_reason = NULL, updated_at = now() WHERE id = $1",
    )
    .bind(user_id)
    .execute(tx.conn())
    .await?;
    sqlx::query("DELETE FROM read_counters WHERE user_id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    Ok(frozen_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_name_the_user_and_the_way_back() {
        let limit = ReadLimit {
            max_reads: 3,
            window_minutes: 60,
            exempt_roles: vec![],
        };
        let f = Frozen {
            id: Uuid::nil(),
            name: "张三",
            email: "z@example.com",
            limit: &limit,
        };
        for lang in [Lang::ZhCn, Lang::En] {
            let (subject, text) = render(lang, "管理员", &f);
            assert!(subject.contains("张三"));
            assert!(text.contains("/unfreeze") && text.contains("z@example.com"));
        }
    }
}
