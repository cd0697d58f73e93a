//! The customer portal's web pages: what the mailed links open (`/portal/login?token=tcl_…`,
//! `/portal/survey?token=tcv_…`) and `/portal` itself. One self-contained page
//! (`admin-ui/portal/index.html`, compiled into the binary, so the server needs no files and no
//! network) that routes on its own path and talks only to `/portal/api`.

use poem::http::{header, HeaderValue};
use poem::{handler, IntoResponse, Response};

/// The portal page (HTML, CSS and script in one file).
const PORTAL_PAGE: &str = include_str!("../admin-ui/portal/index.html");

/// Only this origin: the page's own inline script and style, and calls to its own API. A
/// page holding a sign-in token is never framed or given a foreign script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'";

/// The portal page for `/portal`, `/portal/login` and `/portal/survey`.
#[handler]
pub fn portal_page() -> Response {
    page(PORTAL_PAGE)
}

fn page(html: &'static str) -> Response {
    let mut resp = html.into_response();
    let headers = resp.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The address carries a token: never send it on to another site, never keep a copy.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["http://", "https://", "//cdn", "@import", "<link", "src=\""] {
            assert!(
                !PORTAL_PAGE.contains(needle),
                "the portal page must be self-contained, found {needle:?}"
            );
        }
    }

    #[test]
    fn the_page_never_writes_markup_from_data() {
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(
                !PORTAL_PAGE.contains(needle),
                "render text with textContent, found {needle:?}"
            );
        }
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let resp = page(PORTAL_PAGE);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .is_ok_and(|v| v.contains("frame-ancestors 'none'")));
    }
}
