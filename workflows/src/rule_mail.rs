//! The mail a rule sends (`send_email(template, to)`): who `to` names, and the templates —
//! `follow_up` or the script's own text, with `{{field}}` placeholders from the record.

use crate::effects::{effect_error, resolve_user, EffectCtx};
use crm_core::db::TenantTx;
use crm_core::Result;
use crm_records::meta::ObjectKey;
use serde_json::{json, Value};

/// `send_email(template, to)`: `to` is `contact` or `customer` (the record's), a user
/// reference (`owner`, `assignee`, `manager`, a user id) or an e-mail address; `template` is
/// `follow_up` or the message itself — first line the subject, the rest the body — with
/// `{{field}}` placeholders filled from the record. Until the company is verified an address
/// must be one of its users' or its records' contacts' and customers' (the effect fails with
/// `mail.unverified_tenant`, enforced by `crm_core::mail::enqueue`).
pub(crate) async fn send_email(
    tx: &mut TenantTx,
    ctx: &EffectCtx<'_>,
    index: usize,
    template: &str,
    to: &str,
) -> Result<Value> {
    let (address, lang) = match to {
        "contact" | "customer" => {
            let (table, id) = match (to, ctx.object) {
                ("contact", ObjectKey::Contacts) => ("contacts", ctx.record_id),
                ("contact", _) => ("contacts", ctx.field_uuid("contact_id")),
                ("customer", ObjectKey::Customers) => ("customers", ctx.record_id),
                _ => ("customers", ctx.field_uuid("customer_id")),
            };
            let email: Option<Option<String>> = match id {
                Some(id) => {
                    sqlx::query_scalar(&format!("SELECT email FROM {table} WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(tx.conn())
                        .await?
                }
                None => None,
            };
            let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
                .fetch_one(tx.conn())
                .await?;
            let email = email
                .flatten()
                .filter(|e| e.contains('@'))
                .ok_or_else(|| effect_error(format!("the record's {to} has no e-mail address")))?;
            (email, locale)
        }
        addr if addr.contains('@') && !addr.starts_with("user:") => {
            let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
                .fetch_one(tx.conn())
                .await?;
            (addr.to_owned(), locale)
        }
        who => {
            let user = resolve_user(tx, ctx, who).await?;
            let row: (String, String) = sqlx::query_as(
                "SELECT u.email, COALESCE(u.locale, s.locale) FROM users u CROSS JOIN settings s WHERE u.id = $1",
            )
            .bind(user)
            .fetch_one(tx.conn())
            .await?;
            row
        }
    };
    let (subject, text) = render_email(template, &ctx.record, &lang);
    let mail = crm_core::mail::OutgoingMail {
        to: vec![address.clone()],
        subject,
        text,
        purpose: "rule.email".into(),
    };
    let job = crm_core::mail::enqueue(
        tx,
        &mail,
        format!("mail:{}:fx{index}", ctx.key),
        ctx.record_id,
    )
    .await?;
    Ok(json!({ "to": address, "job_id": job }))
}

/// Fills `{{field}}` from the record (unknown fields become empty).
fn fill(text: &str, record: &Value) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim().trim_start_matches("record.");
                match &record[key] {
                    Value::String(s) => out.push_str(s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Subject and body of a rule's mail.
pub fn render_email(template: &str, record: &Value, locale: &str) -> (String, String) {
    let zh = locale == "zh-CN";
    let (subject, body) = match template {
        "follow_up" if zh => (
            "跟进提醒：{{name}}".to_owned(),
            "您好：\n\n请及时跟进「{{name}}」。\n\n—— TC CRM".to_owned(),
        ),
        "follow_up" => (
            "Follow-up: {{name}}".to_owned(),
            "Hello,\n\nPlease follow up on \"{{name}}\".\n\n-- TC CRM".to_owned(),
        ),
        literal => match literal.split_once('\n') {
            Some((s, b)) => (s.trim().to_owned(), b.trim_start_matches('\n').to_owned()),
            None => (literal.trim().to_owned(), literal.trim().to_owned()),
        },
    };
    (fill(&subject, record), fill(&body, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_from_the_record() {
        let record = json!({"name": "艾克米贸易", "level": "A", "amount": 1200});
        let (s, b) = render_email("follow_up", &record, "zh-CN");
        assert_eq!(s, "跟进提醒：艾克米贸易");
        assert!(b.contains("「艾克米贸易」"));
        let (s, b) = render_email(
            "Level {{level}} customer {{ record.name }}\n\nAmount {{amount}}, {{missing}}.",
            &record,
            "en",
        );
        assert_eq!(s, "Level A customer 艾克米贸易");
        assert_eq!(b, "Amount 1200, .");
        assert_eq!(
            fill("open {{ never closed", &record),
            "open {{ never closed"
        );
    }
}
