//! The words of the service desk's messages, in zh-CN and en: subject and plain-text body of
//! each mail, also used as in-app notification title and body. Links carry `{{base_url}}`,
//! which the mail job replaces with the server's public URL.

use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::mail::Lang;
use uuid::Uuid;

/// A staff user to notify.
pub struct Staff {
    pub email: String,
    pub name: String,
    pub lang: Lang,
}

/// An active user's address, name and language (their own locale, else the company's).
pub async fn staff(tx: &mut TenantTx, user: Uuid) -> Result<Option<Staff>> {
    let row: Option<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT u.email, u.name, u.locale, s.locale FROM users u CROSS JOIN settings s \
         WHERE u.id = $1 AND u.status = 'active'",
    )
    .bind(user)
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|(email, name, locale, tenant)| Staff {
        email,
        name,
        lang: Lang::of(locale.as_deref().or(Some(&tenant))),
    }))
}

/// The company's language.
pub async fn tenant_lang(tx: &mut TenantTx) -> Result<Lang> {
    let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
        .fetch_one(tx.conn())
        .await?;
    Ok(Lang::of(Some(&locale)))
}

pub use crm_core::mail::local_time;

fn sign(lang: Lang) -> &'static str {
    match lang {
        Lang::ZhCn => "\n—— TC CRM",
        Lang::En => "\n-- TC CRM",
    }
}

/// To the agent a ticket was assigned to.
pub fn ticket_assigned(lang: Lang, name: &str, number: &str, subject: &str) -> (String, String) {
    match lang {
        Lang::ZhCn => (
            format!("新工单 {number}：{subject}"),
            format!(
                "{name}，您好：\n\n工单 {number}「{subject}」已分配给您，请及时处理。\n{}",
                sign(lang)
            ),
        ),
        Lang::En => (
            format!("New ticket {number}: {subject}"),
            format!(
                "Hello {name},\n\nTicket {number} \"{subject}\" has been assigned to you.\n{}",
                sign(lang)
            ),
        ),
    }
}

/// To the contact: a public reply on their ticket.
pub fn ticket_reply(lang: Lang, number: &str, subject: &str, body: &str) -> (String, String) {
    match lang {
        Lang::ZhCn => (
            format!("[{number}] {subject} 有新回复"),
            format!("您好：\n\n您的工单 {number}「{subject}」有新的回复：\n\n{body}\n\n您可以登录客户门户查看进度并回复：{{{{base_url}}}}/portal\n{}", sign(lang)),
        ),
        Lang::En => (
            format!("[{number}] New reply: {subject}"),
            format!("Hello,\n\nThere is a new reply on your ticket {number} \"{subject}\":\n\n{body}\n\nFollow and answer it in the customer portal: {{{{base_url}}}}/portal\n{}", sign(lang)),
        ),
    }
}

/// To the team: an SLA target is 80% used.
pub fn sla_warning(
    lang: Lang,
    number: &str,
    subject: &str,
    target: &str,
    due: &str,
) -> (String, String) {
    match lang {
        Lang::ZhCn => {
            let what = if target == "first_response" {
                "首次响应"
            } else {
                "解决"
            };
            (
                format!("SLA 预警：工单 {number} {what}即将超时"),
                format!("工单 {number}「{subject}」的{what}时限即将到期（截止 {due}），请尽快处理。\n{}", sign(lang)),
            )
        }
        Lang::En => {
            let what = if target == "first_response" {
                "first response"
            } else {
                "resolution"
            };
            (
                format!("SLA warning: ticket {number} {what} due soon"),
                format!("The {what} target of ticket {number} \"{subject}\" is due at {due}. Please act now.\n{}", sign(lang)),
            )
        }
    }
}

/// To a contact who asked to sign in to the portal.
pub fn portal_link(lang: Lang, company: &str, link: &str) -> (String, String) {
    match lang {
        Lang::ZhCn => (
            format!("登录 {company} 客户服务门户"),
            format!("您好：\n\n请点击以下链接登录 {company} 客户服务门户（30 分钟内有效，仅可使用一次）：\n\n{link}\n\n如果不是您本人操作，请忽略此邮件。\n{}", sign(lang)),
        ),
        Lang::En => (
            format!("Sign in to the {company} customer portal"),
            format!("Hello,\n\nUse this link to sign in to the {company} customer portal (valid for 30 minutes, once):\n\n{link}\n\nIf you did not ask for it, ignore this message.\n{}", sign(lang)),
        ),
    }
}

/// To the contact of a resolved ticket: the satisfaction survey.
pub fn csat_survey(lang: Lang, number: &str, subject: &str, link: &str) -> (String, String) {
    match lang {
        Lang::ZhCn => (
            format!("满意度调查：工单 {number} 已解决"),
            format!("您好：\n\n您的工单 {number}「{subject}」已解决。请为我们的服务打分（1-5 分）：\n\n{link}\n\n感谢您的反馈！\n{}", sign(lang)),
        ),
        Lang::En => (
            format!("How did we do? Ticket {number} is resolved"),
            format!("Hello,\n\nYour ticket {number} \"{subject}\" is resolved. Please rate our service from 1 to 5:\n\n{link}\n\nThank you for your feedback!\n{}", sign(lang)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_the_ticket_and_the_base_url_placeholder() {
        let (s, t) = ticket_reply(Lang::ZhCn, "T-000001", "打印机卡纸", "已安排上门");
        assert_eq!(s, "[T-000001] 打印机卡纸 有新回复");
        assert!(
            t.contains("已安排上门") && t.contains("{{base_url}}/portal"),
            "{t}"
        );
        let (s, _) = sla_warning(
            Lang::En,
            "T-000002",
            "Printer",
            "resolution",
            "2026-11-24 09:30 (Asia/Shanghai)",
        );
        assert_eq!(s, "SLA warning: ticket T-000002 resolution due soon");
        let (_, t) = csat_survey(
            Lang::En,
            "T-000003",
            "x",
            "https://crm/portal/survey?token=abc",
        );
        assert!(t.contains("https://crm/portal/survey?token=abc"));
    }
}
