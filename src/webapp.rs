//! The web app (`admin-ui/`), built by `build.rs` into `admin-ui/dist` and compiled into the
//! binary: served at `/` with its hashed assets under `/assets/`. Paths the app routes itself
//! (`/customers/…`) answer `index.html`; `/api`, `/portal`, docs and the operational endpoints
//! are routed before this and never reach it.
//!
//! Caching: hashed assets are immutable for a year, `index.html` is revalidated on every load
//! (`no-cache`), so a new binary's app is picked up at once.
//! CSP: scripts only from this origin (no inline script anywhere); styles from this origin
//! plus `'unsafe-inline'`, because Ant Design's CSS-in-JS inserts `<style>` elements at run
//! time. Inline styles cannot run code, and with `img-src`/`font-src`/`connect-src` limited to
//! this origin an injected style cannot send anything elsewhere.

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{handler, Request, Response};

mod assets {
    include!(concat!(env!("OUT_DIR"), "/webapp_assets.rs"));
}

/// Every response of the app carries it (the page, its scripts and styles).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// What `/` answers when the binary was built without the app (no npm on the build machine).
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
<title>TC CRM</title><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
<h1>TC CRM</h1><p>The web app was not built into this server: the machine that built it had \
no npm. Install Node.js 20 or later with npm and run <code>cargo build</code> again (it runs \
<code>npm ci &amp;&amp; npm run build</code> in <code>admin-ui/</code>), then restart the \
server.</p><p>The API works without it: see <a href=\"/api/docs/\">/api/docs</a>.</p>\
<p lang=\"zh-CN\">此服务器未包含网页应用：请安装 Node.js 20 及以上版本（含 npm）后重新运行 \
<code>cargo build</code>，再重启服务器。</p></body></html>";

/// Whether the binary carries the built app.
pub fn is_built() -> bool {
    find("/index.html").is_some()
}

fn find(path: &str) -> Option<&'static [u8]> {
    assets::ASSETS
        .iter()
        .find(|(url, _)| *url == path)
        .map(|(_, bytes)| *bytes)
}

/// What a path of the app answers.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A file of `dist`; hashed ones (under `/assets/`) are immutable.
    File { path: &'static str, immutable: bool },
    /// The app's page, which routes the path itself.
    Page,
    /// A file name that is not in `dist` (an old asset, a mistyped file), or a reserved prefix.
    NotFound,
}

fn answer(path: &str) -> Answer {
    if path == "/api" || path.starts_with("/api/") || path.starts_with("/portal/") {
        return Answer::NotFound;
    }
    if let Some((url, _)) = assets::ASSETS.iter().find(|(url, _)| *url == path) {
        if *url != "/index.html" {
            return Answer::File {
                path: url,
                immutable: url.starts_with("/assets/"),
            };
        }
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.starts_with("/assets/") || last.contains('.') {
        Answer::NotFound
    } else {
        Answer::Page
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// GET/HEAD of any path no other route claims; 404/405 as problems like the rest.
#[handler]
pub fn serve(req: &Request) -> poem::Result<Response> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(MethodNotAllowedError.into());
    }
    // Scripts and styles have a gzipped twin (`x.js.gz`, written by the app's build).
    let gzip = |path: &str| {
        let accepts = req
            .header(header::ACCEPT_ENCODING)
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        accepts.then(|| find(&format!("{path}.gz"))).flatten()
    };
    let mut gzipped = false;
    let (status, bytes, kind, cache) = match answer(req.uri().path()) {
        Answer::File { path, immutable } => (
            StatusCode::OK,
            match gzip(path) {
                Some(packed) => {
                    gzipped = true;
                    packed
                }
                None => find(path).unwrap_or_default(),
            },
            content_type(path),
            if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        ),
        Answer::Page => match find("/index.html") {
            Some(page) => (StatusCode::OK, page, content_type(".html"), "no-cache"),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                NOT_BUILT.as_bytes(),
                content_type(".html"),
                "no-store",
            ),
        },
        Answer::NotFound => return Err(NotFoundError.into()),
    };
    let mut resp = Response::builder().status(status).content_type(kind).body(
        if req.method() == Method::HEAD {
            Vec::new()
        } else {
            bytes.to_vec()
        },
    );
    let headers = resp.headers_mut();
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if kind.starts_with("text/javascript") || kind.starts_with("text/css") {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    for (name, value) in [
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_routes_answer_the_page_and_reserved_prefixes_do_not() {
        assert_eq!(answer("/"), Answer::Page);
        assert_eq!(answer("/customers/0190"), Answer::Page);
        assert_eq!(answer("/login"), Answer::Page);
        assert_eq!(answer("/api/v2/customers"), Answer::NotFound);
        assert_eq!(answer("/api"), Answer::NotFound);
        assert_eq!(answer("/portal/unknown"), Answer::NotFound);
        assert_eq!(answer("/assets/gone-1234.js"), Answer::NotFound);
        assert_eq!(answer("/favicon.ico"), Answer::NotFound);
    }

    #[test]
    fn built_assets_are_hashed_and_immutable() {
        if !is_built() {
            return;
        }
        // The app's own scripts; GraphiQL's pinned vendor files (`/graphiql/`, for the page at
        // GET /graphql) keep their names and are revalidated instead.
        let scripts: Vec<_> = assets::ASSETS
            .iter()
            .filter(|(url, _)| url.ends_with(".js") && !url.starts_with("/graphiql/"))
            .collect();
        if let Some((vendor, _)) = assets::ASSETS
            .iter()
            .find(|(url, _)| url.starts_with("/graphiql/"))
        {
            assert!(matches!(
                answer(vendor),
                Answer::File {
                    immutable: false,
                    ..
                }
            ));
        }
        assert!(!scripts.is_empty());
        for (url, _) in scripts {
            assert!(url.starts_with("/assets/"), "{url} is not under /assets/");
            assert!(matches!(
                answer(url),
                Answer::File {
                    immutable: true,
                    ..
                }
            ));
        }
    }

    #[test]
    fn the_page_has_no_inline_script() {
        let Some(page) = find("/index.html") else {
            return;
        };
        let page = String::from_utf8_lossy(page);
        for tag in page.split("<script").skip(1) {
            assert!(
                tag.split('>')
                    .next()
                    .is_some_and(|attrs| attrs.contains("src=")),
                "inline script in index.html: <script{tag}"
            );
        }
    }
}
