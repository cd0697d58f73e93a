//! Opaque bearer credentials. A token names its tenant (so the server knows which schema to
//! look in without scanning tenants) and carries 256 random bits; only its SHA-256 is stored.
//! Sessions look like `tcs_<tenant hex>_<secret>`, API keys `tck_<tenant hex>_<secret>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Which kind of credential a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Session,
    ApiKey,
    /// A calendar feed token: reads one user's feed, never the API.
    Calendar,
    /// A single-use customer-portal sign-in link token (mailed to a contact).
    PortalLink,
    /// A customer-portal session of a contact: portal routes only, never staff routes.
    PortalSession,
    /// A satisfaction-survey token: rates one ticket, nothing else.
    Survey,
}

impl CredentialKind {
    fn prefix(self) -> &'static str {
        match self {
            CredentialKind::Session => "tcs",
            CredentialKind::ApiKey => "tck",
            CredentialKind::Calendar => "tcc",
            CredentialKind::PortalLink => "tcl",
            CredentialKind::PortalSession => "tcp",
            CredentialKind::Survey => "tcv",
        }
    }
}

/// A syntactically valid token, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    pub kind: CredentialKind,
    pub tenant_id: Uuid,
    /// SHA-256 of the whole token, hex: what is stored and looked up.
    pub hash: String,
}

/// A fresh token for `tenant`, returned once to the client.
pub fn generate(kind: CredentialKind, tenant: Uuid) -> String {
    generate_with(kind.prefix(), tenant)
}

fn generate_with(prefix: &str, tenant: Uuid) -> String {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    format!(
        "{prefix}_{}_{}",
        tenant.simple(),
        URL_SAFE_NO_PAD.encode(secret)
    )
}

/// The prefix of an MFA challenge: the second step of a login, never a credential of any
/// route (so it is no [`CredentialKind`] and [`parse`] refuses it).
const MFA_CHALLENGE: &str = "tcm";

/// A fresh MFA challenge token for `tenant` (`tcm_<tenant hex>_<secret>`).
pub fn generate_mfa_challenge(tenant: Uuid) -> String {
    generate_with(MFA_CHALLENGE, tenant)
}

/// The tenant and stored hash of an MFA challenge token; `None` when it is not one.
pub fn parse_mfa_challenge(token: &str) -> Option<(Uuid, String)> {
    let (prefix, tenant_id) = split(token)?;
    (prefix == MFA_CHALLENGE).then(|| (tenant_id, hash(token)))
}

/// The prefix of a mail confirmation link (a sign-up address or a sender address): no
/// credential of any route either.
const MAIL_CONFIRMATION: &str = "tce";

/// A fresh mail confirmation token for `tenant` (`tce_<tenant hex>_<secret>`).
pub fn generate_mail_confirmation(tenant: Uuid) -> String {
    generate_with(MAIL_CONFIRMATION, tenant)
}

/// The tenant and stored hash of a mail confirmation token; `None` when it is not one.
pub fn parse_mail_confirmation(token: &str) -> Option<(Uuid, String)> {
    let (prefix, tenant_id) = split(token)?;
    (prefix == MAIL_CONFIRMATION).then(|| (tenant_id, hash(token)))
}

/// The prefix and tenant of a well-formed token of any kind.
fn split(token: &str) -> Option<(&str, Uuid)> {
    let mut parts = token.splitn(3, '_');
    let prefix = parts.next()?;
    let tenant_hex = parts.next()?;
    let secret = parts.next()?;
    if tenant_hex.len() != 32 || secret.len() != 43 {
        return None;
    }
    let tenant_id = Uuid::try_parse(tenant_hex).ok()?;
    URL_SAFE_NO_PAD.decode(secret).ok()?;
    Some((prefix, tenant_id))
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Splits a presented token; `None` when it is not one of ours.
pub fn parse(token: &str) -> Option<ParsedToken> {
    let (prefix, tenant_id) = split(token)?;
    let kind = match prefix {
        "tcs" => CredentialKind::Session,
        "tck" => CredentialKind::ApiKey,
        "tcc" => CredentialKind::Calendar,
        "tcl" => CredentialKind::PortalLink,
        "tcp" => CredentialKind::PortalSession,
        "tcv" => CredentialKind::Survey,
        _ => return None,
    };
    Some(ParsedToken {
        kind,
        tenant_id,
        hash: hash(token),
    })
}

/// The part of a key shown in lists, enough to recognise it: `tck_…` plus 6 secret chars.
pub fn display_prefix(token: &str) -> String {
    // The secret is base64url and may itself contain '_': split at the first two only.
    let secret = token.splitn(3, '_').nth(2).unwrap_or_default();
    format!("tck_…{}", secret.chars().take(6).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let tenant = Uuid::new_v4();
        for kind in [
            CredentialKind::Session,
            CredentialKind::ApiKey,
            CredentialKind::Calendar,
        ] {
            let token = generate(kind, tenant);
            let parsed = parse(&token);
            assert_eq!(
                parsed,
                Some(ParsedToken {
                    kind,
                    tenant_id: tenant,
                    hash: hash(&token)
                })
            );
        }
        assert_ne!(
            generate(CredentialKind::Session, tenant),
            generate(CredentialKind::Session, tenant)
        );
    }

    #[test]
    fn display_prefix_shows_the_start_of_the_secret() {
        let tenant = Uuid::new_v4();
        for _ in 0..50 {
            let token = generate(CredentialKind::ApiKey, tenant);
            let secret = token.splitn(3, '_').nth(2).unwrap_or_default().to_owned();
            assert_eq!(display_prefix(&token), format!("tck_…{}", &secret[..6]));
        }
    }

    #[test]
    fn rejects_foreign_shapes() {
        let tenant = Uuid::new_v4().simple().to_string();
        for bad in [
            "".to_owned(),
            "abc".to_owned(),
            format!("tcx_{tenant}_{}", "a".repeat(43)),
            format!("tcs_{tenant}_{}", "a".repeat(42)),
            format!("tcs_nothex_{}", "a".repeat(43)),
            format!("tcs_{tenant}_{}", "!".repeat(43)),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
