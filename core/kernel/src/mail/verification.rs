//! Confirmation links: proof that the company controls an address. Two purposes:
//!
//! - `signup`: mailed to the first administrator at sign-up (and again on request to an
//!   administrator's own address); using it marks the company verified (`settings.verified_at`),
//!   which lifts the recipient rule of [`super::recipients`].
//! - `sender`: mailed to a sender address the company wants to use; using it makes that
//!   address the company's `mail_from`, if it is still the pending one.
//!
//! The token (`tce_<tenant hex>_<secret>`, [`crate::identity::tokens`]) is stored as its
//! SHA-256 only, used once, and expires after [`TTL_HOURS`].

use super::{Lang, OutgoingMail};
use crate::authz::{Caller, Permission};
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::identity::tokens;

/// `purpose` of the sign-up verification mail (never counted in the quota).
pub const VERIFY_PURPOSE: &str = "account.verify_email";
/// `purpose` of a sender confirmation mail.
pub const CONFIRM_SENDER_PURPOSE: &str = "account.confirm_sender";
/// How long a link stays valid.
pub const TTL_HOURS: i64 = 72;

/// What a used link confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    /// `signup` or `sender`.
    pub purpose: String,
    pub address: String,
}

/// Whether the company's sign-up address is verified (false for a schema one version behind).
pub async fn is_verified(tx: &mut TenantTx) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT (to_jsonb(s) ->> 'verified_at') IS NOT NULL FROM settings s")
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Mails the sign-up verification link to `address` (an administrator's own), in the
/// caller's transaction.
pub async fn send_signup_verification(tx: &mut TenantTx, address: &str) -> Result<()> {
    send(tx, "signup", address).await
}

/// Mails a confirmation link for a wanted sender address.
pub(crate) async fn send_sender_confirmation(tx: &mut TenantTx, address: &str) -> Result<()> {
    send(tx, "sender", address).await
}

/// Sends the sign-up verification link again, to the calling administrator's own address
/// (`tenant:manage`, a user). 409 `mail.already_verified` when there is nothing to verify.
pub async fn resend(tx: &mut TenantTx, caller: &Caller) -> Result<String> {
    caller.require(Permission::TenantManage)?;
    let user = caller.user_id.ok_or_else(|| {
        Error::bad_request(
            "mail.not_a_user",
            "an API key has no address: sign in as an administrator to get the link",
        )
    })?;
    if is_verified(tx).await? {
        return Err(Error::conflict(
            "mail.already_verified",
            "the company's address is verified already",
        ));
    }
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(tx.conn())
        .await?;
    send(tx, "signup", &email).await?;
    Ok(email)
}

async fn send(tx: &mut TenantTx, purpose: &'static str, address: &str) -> Result<()> {
    let token = tokens::generate_mail_confirmation(tx.tenant().id);
    let hash = tokens::hash(&token);
    sqlx::query(
        "INSERT INTO mail_confirmations (token_hash, purpose, address, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(hours => $4))",
    )
    .bind(&hash)
    .bind(purpose)
    .bind(address)
    .bind(TTL_HOURS as i32)
    .execute(tx.conn())
    .await?;
    let locale: String = sqlx::query_scalar("SELECT locale FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let link = format!("{{{{base_url}}}}/api/v1/auth/verify-email?token={token}");
    let (subject, text, kind) = match (purpose, Lang::of(Some(&locale))) {
        ("signup", Lang::ZhCn) => (
            "请验证贵公司的邮箱地址".to_owned(),
            format!("您好：\n\n请打开下面的链接，验证 {address} 是贵公司的地址。验证之前，贵公司的邮件只能发给自己的用户和客户联系人。\n\n{link}\n\n链接 {TTL_HOURS} 小时内有效，只能使用一次。如果您没有注册 TC CRM，请忽略本邮件。\n\n—— TC CRM"),
            VERIFY_PURPOSE,
        ),
        ("signup", Lang::En) => (
            "Verify your company's e-mail address".to_owned(),
            format!("Hello,\n\nOpen the link below to verify that {address} is your company's address. Until then your company's mail goes only to its own users and customer contacts.\n\n{link}\n\nThe link works once, for {TTL_HOURS} hours. If you did not sign up for TC CRM, ignore this message.\n\n-- TC CRM"),
            VERIFY_PURPOSE,
        ),
        (_, Lang::ZhCn) => (
            "请确认发件地址".to_owned(),
            format!("您好：\n\n有公司希望以 {address} 作为 TC CRM 邮件的发件人。如果这是您的地址并且您同意，请打开下面的链接：\n\n{link}\n\n链接 {TTL_HOURS} 小时内有效。如果您不知情，请忽略本邮件，地址不会被使用。\n\n—— TC CRM"),
            CONFIRM_SENDER_PURPOSE,
        ),
        (_, Lang::En) => (
            "Confirm a sender address".to_owned(),
            format!("Hello,\n\nA company asked to send its TC CRM mail from {address}. If this is your address and you agree, open the link below:\n\n{link}\n\nThe link works for {TTL_HOURS} hours. If you did not expect this, ignore this message and the address will not be used.\n\n-- TC CRM"),
            CONFIRM_SENDER_PURPOSE,
        ),
    };
    let mail = OutgoingMail {
        to: vec![address.to_owned()],
        subject,
        text,
        purpose: kind.into(),
    };
    super::enqueue(tx, &mail, format!("mail:confirm:{hash}"), None).await?;
    Ok(())
}

/// 404 `mail.invalid_token`: unknown, used or expired.
pub fn invalid_link() -> Error {
    Error::not_found(
        "mail.invalid_token",
        "this confirmation link is unknown, used or expired; ask for a new one",
    )
}

/// Uses a confirmation link (by the SHA-256 of its token): once, before it expires.
pub async fn confirm(tx: &mut TenantTx, token_hash: &str) -> Result<Confirmed> {
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE mail_confirmations SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() \
         RETURNING purpose, address",
    )
    .bind(token_hash)
    .fetch_optional(tx.conn())
    .await?;
    let (purpose, address) = row.ok_or_else(invalid_link)?;
    if purpose == "signup" {
        sqlx::query("UPDATE settings SET verified_at = coalesce(verified_at, now())")
            .execute(tx.conn())
            .await?;
    } else {
        let pending: Option<String> = sqlx::query_scalar("SELECT mail_from_pending FROM settings")
            .fetch_one(tx.conn())
            .await?;
        let still_wanted = pending
            .as_deref()
            .and_then(super::recipients::address_of)
            .is_some_and(|a| a == address.to_lowercase());
        if !still_wanted {
            return Err(Error::conflict(
                "mail.sender_changed",
                "the company no longer asks to send from this address",
            ));
        }
        sqlx::query(
            "UPDATE settings SET mail_from = mail_from_pending, mail_from_pending = NULL, \
             updated_at = now()",
        )
        .execute(tx.conn())
        .await?;
    }
    Ok(Confirmed { purpose, address })
}
