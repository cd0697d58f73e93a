//! The platform's one outbound HTTP client (rule webhooks today, plugins later). Every tenant
//! admin may be an attacker, so a tenant-supplied URL must not reach inside the platform:
//!
//! - https only, unless the platform allows plain http (`[outbound] allow_http`);
//! - ports 443 (and 80 with http) unless the platform lists more (`allowed_ports`);
//! - the host name is resolved by the client itself ([`GuardedResolver`]) and the connection
//!   goes to the addresses it checked — no second lookup an attacker's DNS could answer
//!   differently; loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved
//!   and documentation ranges, IPv4 and IPv6 (mapped and NAT64 forms included), are refused,
//!   for literal addresses and resolved names alike;
//! - redirects are not followed; time and response size are capped;
//! - failures are reported as a category ([`OutboundError`]), never the socket's own text, so
//!   the job log cannot be used to scan ports.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What the platform lets outbound calls do (`[outbound]` in crm.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundPolicy {
    /// Allow plain `http://` (otherwise https only).
    pub allow_http: bool,
    /// Ports allowed besides 443 (and 80 when http is allowed).
    pub allowed_ports: Vec<u16>,
    /// Allow loopback, private and link-local addresses. Only for development and tests: it
    /// opens the platform's own network to every tenant's webhooks.
    pub allow_private_addresses: bool,
    /// Whole-call time limit in seconds.
    pub timeout_secs: u64,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow_http: false,
            allowed_ports: Vec::new(),
            allow_private_addresses: false,
            timeout_secs: 10,
        }
    }
}

/// Why an outbound call failed, as the job log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The policy refuses the URL; retrying cannot help.
    Refused(&'static str),
    Timeout,
    /// No connection (refused, reset, TLS failure, name not found).
    Unreachable,
    /// The receiver answered with a non-2xx status.
    Status(u16),
    /// The response body was larger than the caller's cap.
    TooLarge,
}

impl OutboundError {
    /// Whether a later attempt may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            OutboundError::Refused(_) => false,
            OutboundError::Timeout | OutboundError::Unreachable => true,
            OutboundError::Status(s) => *s >= 500 || *s == 408 || *s == 429,
            OutboundError::TooLarge => false,
        }
    }
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::Refused(why) => write!(f, "refused: {why}"),
            OutboundError::Timeout => f.write_str("timeout"),
            OutboundError::Unreachable => f.write_str("unreachable"),
            OutboundError::Status(s) => write!(f, "http {s}"),
            OutboundError::TooLarge => f.write_str("response too large"),
        }
    }
}

/// A webhook signing secret as Standard Webhooks writes it: `whsec_` + base64 of 32 random
/// bytes.
pub fn new_signing_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The Standard Webhooks headers for a message: `webhook-id`, `webhook-timestamp` (Unix
/// seconds) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
/// where the key is the secret's base64 part, decoded. `None` for a malformed secret.
pub fn signature_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<[(&'static str, String); 3]> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = b64.encode(mac.finalize().into_bytes());
    Some([
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ])
}

/// Whether an address is one tenants may never reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return internal_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
}

/// Resolves names for the client and drops nothing silently: a name with any internal
/// address is refused whole (a rebinding answer mixes one in).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = match resolve_checked(name.as_str(), 0, allow_private).await {
                Ok(found) => found,
                Err(OutboundError::Refused(_)) => {
                    return Err(
                        Box::new(InternalAddress) as Box<dyn std::error::Error + Send + Sync>
                    )
                }
                Err(_) => return Err("the name has no address".into()),
            };
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Resolves `host` (a name or a literal address) and refuses it whole when any answer is an
/// internal address ([`is_internal`]) unless `allow_private`: the one check every
/// tenant-supplied host goes through (webhooks here, tenant SMTP servers in
/// [`crate::mail::smtp_host`]).
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, OutboundError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| OutboundError::Unreachable)?
        .collect();
    if found.is_empty() {
        return Err(OutboundError::Unreachable);
    }
    if !allow_private && found.iter().any(|a| is_internal(a.ip())) {
        let literal = host.parse::<IpAddr>().is_ok();
        return Err(OutboundError::Refused(if literal {
            "internal address"
        } else {
            "the name resolves to an internal address"
        }));
    }
    Ok(found)
}

/// A name resolved to an internal address.
#[derive(Debug)]
struct InternalAddress;

impl std::fmt::Display for InternalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the name resolves to an internal address")
    }
}

impl std::error::Error for InternalAddress {}

/// The outbound client.
#[derive(Clone)]
pub struct Outbound {
    policy: Arc<OutboundPolicy>,
    client: reqwest::Client,
}

impl Outbound {
    pub fn new(policy: OutboundPolicy, user_agent: &str) -> Outbound {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(policy.timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve names itself, past the guard.
            .no_proxy()
            .user_agent(user_agent)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: policy.allow_private_addresses,
            }))
            .build()
            .unwrap_or_default();
        Outbound {
            policy: Arc::new(policy),
            client,
        }
    }

    /// Checks a URL against the policy before any connection: scheme, port, literal address.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, OutboundError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| OutboundError::Refused("not a URL"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.policy.allow_http => {}
            "http" => {
                return Err(OutboundError::Refused(
                    "plain http is not allowed; use https",
                ))
            }
            _ => return Err(OutboundError::Refused("only https URLs are allowed")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundError::Refused(
                "credentials in the URL are not allowed",
            ));
        }
        let port = parsed
            .port_or_known_default()
            .ok_or(OutboundError::Refused("no port"))?;
        let standard = port == 443 || (port == 80 && self.policy.allow_http);
        if !standard && !self.policy.allowed_ports.contains(&port) {
            return Err(OutboundError::Refused("port not allowed"));
        }
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::Refused("no host")),
        };
        if let Some(ip) = literal {
            if !self.policy.allow_private_addresses && is_internal(ip) {
                return Err(OutboundError::Refused("internal address"));
            }
        }
        Ok(parsed)
    }

    /// POSTs `body` (JSON) with `headers`; Ok on a 2xx answer.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, OutboundError> {
        let url = self.check_url(url)?;
        let mut request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(OutboundError::Status(status))
        }
    }
}

/// A response read by [`Outbound::fetch`].
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Caps of one [`Outbound::fetch`].
#[derive(Debug, Clone, Copy)]
pub struct FetchCaps {
    /// Whole-call time limit (never above the policy's).
    pub timeout: Duration,
    /// The largest response body read; a longer one is [`OutboundError::TooLarge`].
    pub max_body: usize,
}

impl Outbound {
    /// Any request (a plugin's `http-fetch`): the same URL policy and guarded resolver as
    /// every outbound call; any status is an answer; the body is read up to `caps.max_body`.
    pub async fn fetch(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        caps: FetchCaps,
    ) -> Result<Fetched, OutboundError> {
        let url = self.check_url(url)?;
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| OutboundError::Refused("not an HTTP method"))?;
        let timeout = caps
            .timeout
            .min(Duration::from_secs(self.policy.timeout_secs.max(1)));
        let mut request = self.client.request(method, url).timeout(timeout);
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| OutboundError::Refused("not a valid header name"))?;
            if name == reqwest::header::HOST || name == reqwest::header::CONTENT_LENGTH {
                continue;
            }
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| OutboundError::Refused("not a valid header value"))?;
            request = request.header(name, value);
        }
        if !body.is_empty() {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        if response
            .content_length()
            .is_some_and(|n| n > caps.max_body as u64)
        {
            return Err(OutboundError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > caps.max_body {
                return Err(OutboundError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}

/// A category for a client error; the resolver's refusal surfaces as such.
fn classify(e: &reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        return OutboundError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<InternalAddress>() {
            return OutboundError::Refused("the name resolves to an internal address");
        }
        source = err.source();
    }
    OutboundError::Unreachable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_in_every_form() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(is_internal(ip), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(!is_internal(ip), "{ip} is public");
        }
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let strict = Outbound::new(OutboundPolicy::default(), "test");
        let refused = |url: &str| strict.check_url(url).expect_err(url);
        assert_eq!(
            refused("http://hooks.example.com/x"),
            OutboundError::Refused("plain http is not allowed; use https")
        );
        assert_eq!(
            refused("https://hooks.example.com:8443/x"),
            OutboundError::Refused("port not allowed")
        );
        assert_eq!(
            refused("https://127.0.0.1/x"),
            OutboundError::Refused("internal address")
        );
        assert_eq!(
            refused("https://[::ffff:a9fe:a9fe]/x"),
            OutboundError::Refused("internal address")
        );
        assert_eq!(
            refused("ftp://hooks.example.com/x"),
            OutboundError::Refused("only https URLs are allowed")
        );
        assert_eq!(
            refused("https://u:p@hooks.example.com/x"),
            OutboundError::Refused("credentials in the URL are not allowed")
        );
        assert!(strict.check_url("https://hooks.example.com/x").is_ok());
        let open = Outbound::new(
            OutboundPolicy {
                allow_http: true,
                allowed_ports: vec![8080],
                ..OutboundPolicy::default()
            },
            "test",
        );
        assert!(open.check_url("http://hooks.example.com:8080/x").is_ok());
        assert!(open.check_url("http://hooks.example.com/x").is_ok());
    }

    /// A name that resolves to loopback is refused by the client's own resolver, and the
    /// listener behind it never sees a connection.
    #[tokio::test]
    async fn a_name_resolving_inside_is_refused_without_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let policy = OutboundPolicy {
            allow_http: true,
            allowed_ports: vec![port],
            ..OutboundPolicy::default()
        };
        let client = Outbound::new(policy.clone(), "test");
        let url = format!("http://localhost:{port}/hook");
        let refused = client.post_json(&url, &[], b"{}".to_vec()).await;
        assert_eq!(
            refused,
            Err(OutboundError::Refused(
                "the name resolves to an internal address"
            ))
        );
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "no connection reached the listener");
        // With private addresses allowed (development), the same call connects.
        let open = Outbound::new(
            OutboundPolicy {
                allow_private_addresses: true,
                ..policy
            },
            "test",
        );
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
        });
        assert_eq!(open.post_json(&url, &[], b"{}".to_vec()).await, Ok(204));
        server.await.expect("server");
    }
}
