//! Where a company's own SMTP server may be: the outbound address policy of
//! [`crate::outbound`] (loopback, private, link-local, CGNAT, multicast, metadata and other
//! internal ranges refused after resolution, the same code as webhooks) and the mail ports 25,
//! 465 and 587 unless the platform allows more (`mail.tenant_smtp_ports`). Checked when the
//! URL is saved and again before every send, since a name's DNS answer can change. The
//! platform's own transport (`[mail] smtp_url`) is configuration, not tenant input, and is
//! not checked.

use crate::outbound::{self, OutboundError};

/// The ports of mail submission and relay.
pub const MAIL_PORTS: [u16; 3] = [25, 465, 587];

/// What the platform lets a company's SMTP server be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmtpHostPolicy {
    /// Ports allowed besides [`MAIL_PORTS`].
    pub extra_ports: Vec<u16>,
    /// Allow internal addresses (development and tests only).
    pub allow_private: bool,
}

/// The host and port an SMTP URL connects to, with lettre's default ports (465 for
/// `smtps`, 587 for STARTTLS, 25 for plain).
fn host_and_port(url: &str) -> Result<(String, u16), OutboundError> {
    let parsed = url::Url::parse(url).map_err(|_| OutboundError::Refused("not a URL"))?;
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let default = match (parsed.scheme(), tls.as_deref()) {
        ("smtps", _) => 465,
        ("smtp", Some("required" | "opportunistic")) => 587,
        ("smtp", _) => 25,
        _ => {
            return Err(OutboundError::Refused(
                "only smtp and smtps URLs are allowed",
            ))
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(OutboundError::Refused("no host"))?;
    Ok((host.to_owned(), parsed.port().unwrap_or(default)))
}

/// Refuses an SMTP URL whose port or (resolved) host the policy does not allow.
pub async fn check(url: &str, policy: &SmtpHostPolicy) -> Result<(), OutboundError> {
    let (host, port) = host_and_port(url)?;
    if !MAIL_PORTS.contains(&port) && !policy.extra_ports.contains(&port) {
        return Err(OutboundError::Refused(
            "port not allowed; use 25, 465 or 587",
        ));
    }
    outbound::resolve_checked(&host, port, policy.allow_private).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_hosts_and_odd_ports_are_refused() {
        let strict = SmtpHostPolicy::default();
        for (url, why) in [
            ("smtp://127.0.0.1:25", "internal address"),
            ("smtp://10.0.0.5:587", "internal address"),
            ("smtps://[::1]:465", "internal address"),
            ("smtp://169.254.169.254", "internal address"),
            (
                "smtp://localhost:25",
                "the name resolves to an internal address",
            ),
            (
                "smtp://127.0.0.1:2525",
                "port not allowed; use 25, 465 or 587",
            ),
            (
                "http://mail.example.com",
                "only smtp and smtps URLs are allowed",
            ),
        ] {
            assert_eq!(
                check(url, &strict).await,
                Err(OutboundError::Refused(why)),
                "{url}"
            );
        }
        assert_eq!(
            host_and_port("smtps://m.example.com").ok(),
            Some(("m.example.com".into(), 465))
        );
        assert_eq!(
            host_and_port("smtp://m.example.com?tls=required").ok(),
            Some(("m.example.com".into(), 587))
        );
        let open = SmtpHostPolicy {
            extra_ports: vec![2525],
            allow_private: true,
        };
        assert_eq!(check("smtp://127.0.0.1:2525", &open).await, Ok(()));
    }
}
