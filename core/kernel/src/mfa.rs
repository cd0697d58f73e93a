//! Two-factor authentication of staff users with TOTP ([`crate::identity::totp`]): enrolment
//! (a secret sealed under the tenant's data key, confirmed by a first code), ten one-time
//! recovery codes stored as SHA-256, checking a code once (a used step is never accepted
//! again), the short-lived challenge between a login's password and its code, and removal.
//!
//! Throttling of wrong codes is the login's (crm-tenants); this module only says yes or no.

use crate::audit::{self, Actor};
use crate::crypto::MasterKey;
use crate::db::TenantTx;
use crate::error::{Error, Result};
use crate::identity::{sessions, tokens, totp, Principal, Restriction};
use crate::keys;
use chrono::{DateTime, Duration, Utc};
use data_encoding::BASE32_NOPAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// How long the second step of a login may wait for its code.
pub const CHALLENGE_MINUTES: i64 = 5;
/// The associated data TOTP secrets are sealed with.
const SECRET_AAD: &[u8] = b"tc-crm totp secret v1";

/// What an authenticator app needs, shown once when enrolling.
pub struct Enrollment {
    /// Base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
}

/// The factor that passed a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    Totp,
    RecoveryCode,
}

impl Factor {
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery_code",
        }
    }
}

fn already_enrolled() -> Error {
    Error::conflict(
        "mfa.already_enrolled",
        "two-factor authentication is on already; turn it off with DELETE /api/v1/account/mfa (or ask an administrator to reset it) before enrolling again",
    )
}

/// Whether the user has confirmed MFA. A tenant one schema version behind (no `user_mfa`
/// yet) has no MFA, so its users still log in while it waits for its upgrade.
pub async fn is_enrolled(tx: &mut TenantTx, user_id: Uuid) -> Result<bool> {
    let upgraded: bool = sqlx::query_scalar("SELECT to_regclass('user_mfa') IS NOT NULL")
        .fetch_one(tx.conn())
        .await?;
    if !upgraded {
        return Ok(false);
    }
    let on: Option<bool> =
        sqlx::query_scalar("SELECT confirmed_at IS NOT NULL FROM user_mfa WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(tx.conn())
            .await?;
    Ok(on == Some(true))
}

/// The user a principal enrols: a user's session, full or restricted to enrolling.
fn enrolling_user(principal: &Principal) -> Result<Uuid> {
    principal.admits(Restriction::MfaEnrollment)?;
    principal.user_id().ok_or_else(|| {
        Error::bad_request(
            "auth.not_a_user",
            "API keys have no second factor; log in as the user",
        )
    })
}

/// Starts (or restarts) the principal's enrolment: a new secret, waiting for its first code
/// in [`confirm`]. 409 `mfa.already_enrolled` when MFA is on already. The authenticator shows
/// `issuer` and the user's e-mail.
pub async fn enroll(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    principal: &Principal,
    issuer: &str,
) -> Result<Enrollment> {
    let user_id = enrolling_user(principal)?;
    let account = crate::users::get(tx, user_id).await?.email;
    if is_enrolled(tx, user_id).await? {
        return Err(already_enrolled());
    }
    let key = keys::data_key(tx, master, true)
        .await?
        .ok_or_else(|| Error::internal("no data key after creating one"))?;
    let secret = totp::new_secret();
    let sealed = key
        .encrypt(&secret, SECRET_AAD)
        .map_err(|e| Error::internal(format!("sealing the TOTP secret: {e}")))?;
    sqlx::query(
        "INSERT INTO user_mfa (user_id, secret) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, confirmed_at = NULL, \
           last_step = NULL, created_at = now()",
    )
    .bind(user_id)
    .bind(sealed)
    .execute(tx.conn())
    .await?;
    Ok(Enrollment {
        secret: totp::encode_secret(&secret),
        otpauth_uri: totp::otpauth_uri(issuer, &account, &secret),
    })
}

/// Confirms an enrolment with a first code; returns the recovery codes (shown once). Lifts
/// the enrolment restriction from the user's sessions. Audited.
pub async fn confirm(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    actor: &Actor,
    principal: &Principal,
    code: &str,
) -> Result<Vec<String>> {
    let user_id = enrolling_user(principal)?;
    let row = sqlx::query(
        "SELECT secret, confirmed_at IS NOT NULL AS confirmed FROM user_mfa \
         WHERE user_id = $1 FOR UPDATE",
    )
    .bind(user_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        return Err(Error::conflict(
            "mfa.not_enrolling",
            "there is no enrolment to confirm; start one with POST /api/v1/account/mfa/enroll",
        ));
    };
    if row.get::<bool, _>("confirmed") {
        return Err(already_enrolled());
    }
    let secret = open_secret(tx, master, row.get("secret")).await?;
    if !use_totp(tx, user_id, &secret, code).await? {
        return Err(invalid_code("code"));
    }
    sqlx::query("UPDATE user_mfa SET confirmed_at = now() WHERE user_id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    let codes = replace_recovery_codes(tx, user_id).await?;
    sessions::lift_for_user(tx, user_id, Restriction::MfaEnrollment).await?;
    let target = Some(("user", user_id.to_string()));
    audit::record(
        tx,
        actor,
        "user.mfa_enrolled",
        target,
        serde_json::json!({}),
    )
    .await?;
    Ok(codes)
}

/// 422 `mfa.invalid_code` for a code that does not match (or was used already).
pub fn invalid_code(field: &str) -> Error {
    Error::Invalid {
        code: "mfa.invalid_code",
        message: "the code is wrong or was used already; enter the current 6-digit code of your authenticator app".into(),
        fields: vec![crate::FieldError::new(
            field,
            "invalid_code",
            "wrong or already used code",
        )],
    }
}

/// Checks a code of a user with MFA on: a TOTP code of the current window not used before,
/// or an unused recovery code (used up by this call). `None`: no match, nothing changed.
pub async fn verify(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    user_id: Uuid,
    code: &str,
) -> Result<Option<Factor>> {
    if totp::parse_code(code).is_some() {
        let sealed: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT secret FROM user_mfa WHERE user_id = $1 AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_optional(tx.conn())
        .await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let secret = open_secret(tx, master, sealed).await?;
        return Ok(use_totp(tx, user_id, &secret, code)
            .await?
            .then_some(Factor::Totp));
    }
    let used = sqlx::query(
        "UPDATE mfa_recovery_codes SET used_at = now() \
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(recovery_hash(code))
    .execute(tx.conn())
    .await?;
    Ok((used.rows_affected() == 1).then_some(Factor::RecoveryCode))
}

/// Recovery codes not used yet.
pub async fn recovery_codes_left(tx: &mut TenantTx, user_id: Uuid) -> Result<i64> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(tx.conn())
    .await?;
    Ok(n)
}

/// Turns MFA off for a user (secret and recovery codes gone, pending challenges too).
/// Returns whether it was on. The callers check who may do it and audit.
pub async fn remove(tx: &mut TenantTx, user_id: Uuid) -> Result<bool> {
    let was_on = is_enrolled(tx, user_id).await?;
    for sql in [
        "DELETE FROM user_mfa WHERE user_id = $1",
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        "DELETE FROM mfa_challenges WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(tx.conn()).await?;
    }
    Ok(was_on)
}

/// Opens the second step of a login: a token (shown once) valid [`CHALLENGE_MINUTES`].
pub async fn open_challenge(tx: &mut TenantTx, user_id: Uuid) -> Result<(String, DateTime<Utc>)> {
    let token = tokens::generate_mfa_challenge(tx.tenant().id);
    let expires_at = Utc::now() + Duration::minutes(CHALLENGE_MINUTES);
    // Old challenges of the user go: at most one is open.
    sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1 OR expires_at < now()")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("INSERT INTO mfa_challenges (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
        .bind(tokens::hash(&token))
        .bind(user_id)
        .bind(expires_at)
        .execute(tx.conn())
        .await?;
    Ok((token, expires_at))
}

/// The user an open challenge belongs to.
pub async fn challenge_user(tx: &mut TenantTx, token_hash: &str) -> Result<Option<Uuid>> {
    let user = sqlx::query_scalar(
        "SELECT user_id FROM mfa_challenges WHERE token_hash = $1 AND expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(tx.conn())
    .await?;
    Ok(user)
}

/// Ends a challenge (its login finished). `false` if another request ended it first.
pub async fn close_challenge(tx: &mut TenantTx, token_hash: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
        .bind(token_hash)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn open_secret(
    tx: &mut TenantTx,
    master: Option<&MasterKey>,
    sealed: Vec<u8>,
) -> Result<Vec<u8>> {
    let key = keys::data_key(tx, master, false)
        .await?
        .ok_or_else(|| Error::internal("a TOTP secret is sealed but there is no data key"))?;
    key.decrypt(&sealed, SECRET_AAD)
        .map_err(|e| Error::internal(format!("cannot open a TOTP secret: {e}")))
}

/// Whether `code` matches a step of the window newer than the last one used; if so, that
/// step becomes the last used, atomically, so a code (or an older one) never works twice.
async fn use_totp(tx: &mut TenantTx, user_id: Uuid, secret: &[u8], code: &str) -> Result<bool> {
    let Some(code) = totp::parse_code(code) else {
        return Ok(false);
    };
    let now_step = totp::step_at(Utc::now().timestamp());
    let Some(step) = totp::matching_step(secret, code, now_step) else {
        return Ok(false);
    };
    let done = sqlx::query(
        "UPDATE user_mfa SET last_step = $2 \
         WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
    )
    .bind(user_id)
    .bind(step)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Issues [`RECOVERY_CODES`] new codes (`xxxx-xxxx-xxxx-xxxx`, 80 random bits), replacing
/// the old ones.
async fn replace_recovery_codes(tx: &mut TenantTx, user_id: Uuid) -> Result<Vec<String>> {
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
    sqlx::query(
        "INSERT INTO mfa_recovery_codes (user_id, code_hash) SELECT $1, h FROM unnest($2::text[]) AS h",
    )
    .bind(user_id)
    .bind(&hashes)
    .execute(tx.conn())
    .await?;
    Ok(codes)
}

fn new_recovery_code() -> String {
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let text = BASE32_NOPAD.encode(&bytes).to_lowercase();
    let groups: Vec<&str> = (0..4).filter_map(|i| text.get(i * 4..i * 4 + 4)).collect();
    groups.join("-")
}

/// The stored form of a recovery code: case, spaces and dashes do not matter.
fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_look_alike_and_normalise() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3);
        assert_eq!(recovery_hash(&code), recovery_hash(&code.to_uppercase()));
        assert_eq!(recovery_hash(&code), recovery_hash(&code.replace('-', " ")));
        assert_ne!(recovery_hash(&code), recovery_hash(&new_recovery_code()));
    }
}
