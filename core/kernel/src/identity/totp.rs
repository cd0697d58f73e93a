//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA1, 6 digits, 30-second
//! steps, what every authenticator app computes. Pure functions: storage, replay and
//! throttling live in [`crate::mfa`].

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use url::form_urlencoded::byte_serialize;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now (clock drift, a code typed as it changes).
pub const WINDOW: i64 = 1;
/// Bytes of a secret: 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it typed in: base32, no padding.
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// The step a Unix time falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code of one step (RFC 4226 HOTP with the step as counter).
pub fn code_at_step(secret: &[u8], step: i64) -> u32 {
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    word % 10_u32.pow(DIGITS)
}

/// A code as the user typed it: six digits, spaces ignored; `None` for anything else.
pub fn parse_code(raw: &str) -> Option<u32> {
    let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The step within the window around `now_step` whose code is `code`, oldest first.
pub fn matching_step(secret: &[u8], code: u32, now_step: i64) -> Option<i64> {
    (now_step - WINDOW..=now_step + WINDOW).find(|&s| code_at_step(secret, s) == code)
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| byte_serialize(s.as_bytes()).collect::<String>();
    // The label is "issuer:account" with each part escaped; form encoding turns spaces to
    // '+', which authenticators read literally in a path, so spaces become %20.
    let label = format!("{}:{}", enc(issuer), enc(account)).replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        encode_secret(secret),
        enc(issuer).replace('+', "%20"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA1 rows (8-digit codes there; ours are their last 6 digits).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, 94_287_082_u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(
                code_at_step(secret, step_at(time)),
                code % 1_000_000,
                "{time}"
            );
        }
    }

    #[test]
    fn window_and_parsing() {
        let secret = new_secret();
        let now = step_at(1_700_000_000);
        let previous = code_at_step(&secret, now - 1);
        assert_eq!(matching_step(&secret, previous, now), Some(now - 1));
        let old = code_at_step(&secret, now - 5);
        assert_ne!(matching_step(&secret, old, now), Some(now - 5));
        assert_eq!(parse_code("123 456"), Some(123_456));
        assert_eq!(parse_code("012345"), Some(12_345));
        for bad in ["12345", "1234567", "12a456", "", "１２３４５６"] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn uri_names_issuer_account_and_secret() {
        let uri = otpauth_uri("TC CRM acme", "li.na@acme.cn", &[0u8; 20]);
        assert_eq!(
            uri,
            "otpauth://totp/TC%20CRM%20acme:li.na%40acme.cn?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
             &issuer=TC%20CRM%20acme&algorithm=SHA1&digits=6&period=30"
        );
    }
}
