//! Task reminders: a durable `task.reminder` job per (task, `remind_at`), kept in step with
//! the task by [`sync`] in every transaction that writes a task. When it fires it notifies
//! the assignee in-app and by mail — once: the notification carries the job id, the mail is a
//! job keyed by it, and both commit with the job's `done` mark.

use super::history;
use super::meta::ObjectKey;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::jobs::{self, ClaimedJob, JobFailure, JobHandler, NewJob};
use crm_core::mail::local_time;
use crm_core::mail::{self, Lang, OutgoingMail};
use crm_core::notifications::{self, NewNotification};
use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;

/// The job kind.
pub const JOB: &str = "task.reminder";

/// A reminder job: the task and the reminder time it was planned for (a task whose time has
/// moved since is not reminded by this job).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ReminderPayload {
    pub task_id: Uuid,
    pub remind_at: DateTime<Utc>,
}

impl crm_core::jobs::Payload for ReminderPayload {
    const KIND: &'static str = JOB;
}

/// Schedules, moves or cancels the reminder of task `id` after the task changed.
pub async fn sync(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let row: Option<(Option<DateTime<Utc>>, bool)> = sqlx::query_as(
        "SELECT remind_at, done_at IS NULL AND deleted_at IS NULL FROM tasks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some((Some(at), true)) => {
            // One job per reminder time: moving remind_at schedules a new reminder and
            // cancels the old one; setting it back to a time that already fired does not
            // remind twice.
            let key = format!("{JOB}:{id}:{}", at.timestamp_millis());
            jobs::enqueue(
                tx,
                NewJob::of(&ReminderPayload {
                    task_id: id,
                    remind_at: at,
                })?
                .dedupe(key.clone())
                .about(id)
                .at(at),
            )
            .await?;
            jobs::cancel_for(tx, JOB, id, &[key]).await?;
        }
        _ => {
            jobs::cancel_for(tx, JOB, id, &[]).await?;
        }
    }
    Ok(())
}

#[derive(FromRow)]
struct DueTask {
    title: String,
    notes: Option<String>,
    due_at: Option<DateTime<Utc>>,
    remind_at: Option<DateTime<Utc>>,
    live: bool,
    recipient: Option<Uuid>,
}

#[derive(FromRow)]
struct Recipient {
    email: String,
    name: String,
    locale: Option<String>,
    tenant_locale: String,
    timezone: String,
}

/// The `task.reminder` job.
pub struct ReminderJob;

#[async_trait::async_trait]
impl JobHandler for ReminderJob {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let Some(task_id) = job.subject_id else {
            return Err(JobFailure::Permanent("reminder without a task".into()));
        };
        let planned = job
            .payload_as::<ReminderPayload>()
            .ok()
            .map(|p| p.remind_at);
        let task: Option<DueTask> = sqlx::query_as(
            "SELECT title, notes, due_at, remind_at, done_at IS NULL AND deleted_at IS NULL AS live, \
               COALESCE(assignee_id, created_by) AS recipient FROM tasks WHERE id = $1 FOR SHARE",
        )
        .bind(task_id)
        .fetch_optional(tx.conn())
        .await?;
        // A task done, deleted or re-timed since: this reminder is void (not an error).
        let Some(task) = task.filter(|t| t.live && t.remind_at == planned) else {
            return Ok(());
        };
        let Some(user_id) = task.recipient else {
            return Ok(());
        };
        let recipient: Option<Recipient> = sqlx::query_as(
            "SELECT u.email, u.name, u.locale, s.locale AS tenant_locale, s.timezone \
             FROM users u CROSS JOIN settings s WHERE u.id = $1 AND u.status = 'active'",
        )
        .bind(user_id)
        .fetch_optional(tx.conn())
        .await?;
        let Some(recipient) = recipient else {
            return Ok(());
        };
        let lang = Lang::of(
            recipient
                .locale
                .as_deref()
                .or(Some(&recipient.tenant_locale)),
        );
        let due = task.due_at.map(|d| local_time(d, &recipient.timezone));
        let (subject, text) = render(
            lang,
            &recipient.name,
            &task.title,
            due.as_deref(),
            task.notes.as_deref(),
        );
        let created = notifications::create(
            tx,
            NewNotification {
                user_id,
                kind: JOB,
                title: &subject,
                body: Some(&text),
                record: Some((ObjectKey::Tasks.as_str(), task_id)),
                job_id: Some(job.id),
            },
        )
        .await?;
        if created.is_some() {
            let mail = OutgoingMail {
                to: vec![recipient.email.clone()],
                subject,
                text,
                purpose: JOB.into(),
            };
            mail::enqueue(tx, &mail, format!("mail:{JOB}:{}", job.id), Some(task_id)).await?;
            history::emit(
                tx,
                ObjectKey::Tasks,
                task_id,
                "reminder_due",
                &Actor::system(),
                json!({ "user_id": user_id, "remind_at": task.remind_at }),
            )
            .await?;
        }
        Ok(())
    }
}

/// Subject and body of a reminder.
fn render(
    lang: Lang,
    name: &str,
    title: &str,
    due: Option<&str>,
    notes: Option<&str>,
) -> (String, String) {
    match lang {
        Lang::ZhCn => {
            let mut text = format!("{name}，您好：\n\n提醒您跟进任务「{title}」。\n");
            if let Some(due) = due {
                text.push_str(&format!("截止时间：{due}\n"));
            }
            if let Some(notes) = notes.filter(|n| !n.is_empty()) {
                text.push_str(&format!("\n备注：{notes}\n"));
            }
            text.push_str("\n—— TC CRM");
            (format!("任务提醒：{title}"), text)
        }
        Lang::En => {
            let mut text = format!(
                "Hello {name},\n\nThis is a reminder to follow up on the task \"{title}\".\n"
            );
            if let Some(due) = due {
                text.push_str(&format!("Due: {due}\n"));
            }
            if let Some(notes) = notes.filter(|n| !n.is_empty()) {
                text.push_str(&format!("\nNotes: {notes}\n"));
            }
            text.push_str("\n-- TC CRM");
            (format!("Reminder: {title}"), text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_languages() {
        let (subject, text) = render(
            Lang::ZhCn,
            "王芳",
            "回访张三",
            Some("2026-11-24 09:30 (Asia/Shanghai)"),
            Some("带报价单"),
        );
        assert_eq!(subject, "任务提醒：回访张三");
        assert!(text.contains("截止时间：2026-11-24 09:30 (Asia/Shanghai)"));
        assert!(text.contains("备注：带报价单"));
        let (subject, text) = render(Lang::En, "Fang", "Call back", None, None);
        assert_eq!(subject, "Reminder: Call back");
        assert!(!text.contains("Due:"));
    }

    #[test]
    fn local_time_uses_the_tenant_zone() {
        let at: DateTime<Utc> = "2026-11-24T01:30:00Z".parse().expect("time");
        assert_eq!(
            local_time(at, "Asia/Shanghai"),
            "2026-11-24 09:30 (Asia/Shanghai)"
        );
        assert_eq!(local_time(at, "Mars/Base"), "2026-11-24 01:30 (UTC)");
    }
}
