//! The web app (admin-ui) as the `crm` binary serves it: headers and routing at `/`, the
//! cookie session with its CSRF check, the checked-in OpenAPI document against the server's,
//! the app's own type check and unit tests, and a new company's first minutes in Debian's
//! chromium (sign-up, login, Home, both languages; tests/browser/webapp.mjs) and its generic
//! record screens (a custom field, a customer with a Chinese name created through the form,
//! found by search and by a filter, opened and edited; tests/browser/records.mjs) and its
//! service screens (a ticket replied to, noted, moved with the allowed status buttons, its SLA
//! countdown; a task due today on Home; an approval approved and another recalled; the
//! notification bell; tests/browser/tickets.mjs) and Settings → Plugins (the probe package
//! installed through the dialog with one grant, then switched off; tests/browser/plugins.mjs),
//! with screenshots in both languages at laptop and phone width saved under the system temp dir
//! (`tc-crm-webapp-screenshots/`, or `SCREENSHOTS`).

use crate::helpers::{unique_slug, TestApp, PASSWORD};
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const SETUP: &str = "run the tests with ./test.sh, which installs Debian's chromium, \
                     fonts-noto-cjk, playwright-core (npm ci --prefix tests/browser) and the \
                     web app's packages (npm ci --prefix admin-ui) when they are missing";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `npm run <script>` in admin-ui; fails with its output.
fn npm(script: &str) {
    assert!(
        repo()
            .join("admin-ui/node_modules/.package-lock.json")
            .exists(),
        "admin-ui/node_modules is missing: {SETUP}"
    );
    let out = std::process::Command::new("npm")
        .args(["run", "--silent", script])
        .current_dir(repo().join("admin-ui"))
        .output()
        .unwrap_or_else(|e| panic!("npm did not start ({e}): {SETUP}"));
    assert!(
        out.status.success(),
        "npm run {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn webapp_openapi_document_is_the_one_the_server_serves() {
    let served = crm::server::openapi_document(crm::config::Config::default()).expect("document");
    let checked_in = std::fs::read_to_string(repo().join("admin-ui/openapi.json"))
        .expect("admin-ui/openapi.json");
    assert!(
        served.trim() == checked_in.trim(),
        "admin-ui/openapi.json is not the server's document: run \
         `cargo run -q -- openapi > admin-ui/openapi.json && (cd admin-ui && npm run gen:api && npm run typecheck)` \
         and fix what no longer type-checks"
    );
}

#[test]
fn webapp_typechecks_and_its_unit_tests_pass() {
    npm("typecheck");
    npm("test");
}

#[tokio::test]
async fn webapp_is_served_at_the_root_with_strict_headers_beside_the_api() {
    assert!(
        crm::webapp::is_built(),
        "the binary carries no web app: build.rs builds it when npm is present ({SETUP})"
    );
    let app = TestApp::spawn().await;
    for path in ["/", "/login", "/customers/0190abcd?tab=history"] {
        let page = app.call(Method::GET, path, None, None).await;
        assert_eq!(page.status, 200, "{path}");
        let h = &page.headers;
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let html = page.body.as_str().expect("html");
        assert!(html.contains("<div id=\"root\"></div>"), "{path}");
    }
    let html = app.call(Method::GET, "/", None, None).await.body;
    let html = html.as_str().expect("html");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script in index.html");
    let asset = app.call(Method::GET, script, None, None).await;
    assert_eq!(asset.status, 200, "{script}");
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(asset.headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/javascript")));
    assert!(asset.headers.get("content-encoding").is_none());
    let packed = app
        .send(
            app.client
                .get(format!("{}{script}", app.base))
                .header("accept-encoding", "br, gzip"),
        )
        .await;
    assert_eq!(packed.status, 200);
    assert_eq!(packed.headers["content-encoding"], "gzip");
    assert_eq!(packed.headers["vary"], "accept-encoding");
    // Missing files and the other services' prefixes are not the app's page.
    for path in [
        "/assets/gone-0000.js",
        "/favicon.ico",
        "/api/v2/x",
        "/portal/nope",
    ] {
        app.call(Method::GET, path, None, None)
            .await
            .expect_problem(404, "route.not_found");
    }
    app.call(Method::POST, "/", None, Some(json!({})))
        .await
        .expect_problem(405, "route.method_not_allowed");
    app.call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    app.call(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200);
}

/// The `name=value` pairs of the response's Set-Cookie headers, and each whole header.
fn set_cookies(headers: &HeaderMap) -> Vec<(String, String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (pair, _) = v.split_once(';')?;
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.to_owned(), v.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn webapp_cookie_session_needs_the_csrf_token_to_write_and_ends_with_logout() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    // API clients that don't ask get no cookie.
    let plain = app.login(&t.slug, &t.admin_email, PASSWORD).await;
    assert_eq!(plain.status, 200);
    assert!(set_cookies(&plain.headers).is_empty());

    let login = app
        .send(
            app.client
                .post(format!("{}/api/v1/auth/login", app.base))
                .header("x-session-cookie", "set")
                .json(&json!({"tenant": t.slug, "email": t.admin_email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, 200);
    let cookies = set_cookies(&login.headers);
    let session = cookies
        .iter()
        .find(|c| c.0 == "crm_session")
        .expect("session cookie");
    let csrf = cookies
        .iter()
        .find(|c| c.0 == "crm_csrf")
        .expect("csrf cookie");
    assert_eq!(Some(session.1.as_str()), login.body["token"].as_str());
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/api/v1"] {
        assert!(session.2.contains(attr), "{attr} in {}", session.2);
    }
    assert!(!session.2.contains("Secure"), "plain http: {}", session.2);
    assert!(!csrf.2.contains("HttpOnly") && csrf.2.contains("SameSite=Strict"));
    assert_eq!(csrf.1.len(), 64);
    let jar = format!("crm_session={}; crm_csrf={}", session.1, csrf.1);
    let with_cookie = |method: Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .header(COOKIE, jar.clone())
    };

    // Reads need only the cookie; writes also the CSRF token, equal to the cookie's.
    let me = app
        .send(with_cookie(Method::GET, "/api/v1/me"))
        .await
        .expect(200);
    assert_eq!(me["tenant"]["slug"], t.slug);
    let body = json!({"name": "张伟的客户"});
    app.send(with_cookie(Method::POST, "/api/v1/customers").json(&body))
        .await
        .expect_problem(403, "auth.csrf");
    app.send(
        with_cookie(Method::POST, "/api/v1/customers")
            .header("x-csrf-token", "0".repeat(64))
            .json(&body),
    )
    .await
    .expect_problem(403, "auth.csrf");
    app.send(
        with_cookie(Method::POST, "/api/v1/customers")
            .header("x-csrf-token", &csrf.1)
            .json(&body),
    )
    .await
    .expect(201);

    // Logout clears both cookies; the old cookie is refused and cleared again.
    let out = app
        .send(with_cookie(Method::POST, "/api/v1/auth/logout").header("x-csrf-token", &csrf.1))
        .await;
    assert_eq!(out.status, 204);
    let cleared = set_cookies(&out.headers);
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(cleared
        .iter()
        .all(|c| c.1.is_empty() && c.2.contains("Max-Age=0")));
    let gone = app.send(with_cookie(Method::GET, "/api/v1/me")).await;
    assert_eq!(set_cookies(&gone.headers).len(), 2);
    gone.expect_problem(401, "auth.invalid_token");
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Where the screenshots go: kept after the test (the server's data dir is removed).
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("SCREENSHOTS").map_or_else(
        || std::env::temp_dir().join("tc-crm-webapp-screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test]
async fn webapp_a_company_signs_up_logs_in_and_switches_language_in_a_real_browser() {
    let browser = repo().join("tests/browser");
    assert!(
        chromium().exists(),
        "{} is missing: {SETUP}",
        chromium().display()
    );
    assert!(
        browser
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is missing: {SETUP}"
    );
    assert!(
        crm::webapp::is_built(),
        "the binary carries no web app: {SETUP}"
    );
    let app = TestApp::spawn().await;
    let slug = unique_slug("webapp");
    let email = format!("zhang.wei@{slug}.example.com");
    let shots = screenshot_dir();
    let child = tokio::process::Command::new("node")
        .arg(browser.join("webapp.mjs"))
        .args([
            &app.base,
            &slug,
            "上海示例贸易有限公司",
            "张伟",
            &email,
            PASSWORD,
        ])
        .arg(&shots)
        .current_dir(&browser)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node did not start ({e}): {SETUP}"));
    let out = tokio::time::timeout(Duration::from_secs(420), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser script ran over 420 s"))
        .expect("browser script output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser script failed: {}\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("browser script printed no JSON ({e}): {stdout}"));
    println!(
        "web app figures: first load {} ms, {} bytes; screenshots in {}",
        seen["firstLoadMs"],
        seen["transferred"],
        shots.display()
    );
    assert_eq!(seen["problems"], json!([]), "{seen:#}");
    assert_eq!(seen["loginPath"], "/login", "{seen:#}");
    assert_eq!(
        seen["afterSignup"],
        json!({"path": "/", "company": "上海示例贸易有限公司"})
    );
    assert_eq!(
        seen["loginWithNext"],
        format!("/login?next={}", "%2Fsomewhere%2Fdeep%3Ftab%3D2")
    );
    assert!(
        seen["wrongPassword"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{seen:#}"
    );
    assert_eq!(seen["backTo"], "/somewhere/deep?tab=2");
    assert_eq!(seen["greetingZh"], "张伟，您好");
    assert_eq!(seen["greetingEn"], "Hello, 张伟");
    assert_eq!(seen["htmlLangEn"], "en");
    assert_eq!(seen["scriptSeesSession"], false);
    assert!(
        seen["cookies"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "crm_session"
                && c["httpOnly"] == true
                && c["sameSite"] == "Strict")),
        "{seen:#}"
    );
    assert_eq!(
        seen["horizontalScroll"], false,
        "the phone layout scrolls sideways"
    );
    assert_eq!(seen["loginTitleEn"], "Log in");

    // The generic record screens.
    assert_eq!(seen["customField"], 201, "{seen:#}");
    assert!(
        seen["fieldError"].as_str().is_some_and(|m| !m.is_empty()),
        "the API's 422 under the e-mail field: {seen:#}"
    );
    assert_eq!(
        seen["createdDetail"],
        json!({"name": "张三科技", "budget": "¥500,000.00"})
    );
    assert_eq!(seen["foundBySearch"], "共 1 条");
    assert_eq!(
        seen["foundByFilter"],
        json!({"query": "?filter[custom.budget][gte]=100000", "count": "共 1 条"})
    );
    assert_eq!(seen["duplicate"], "已有相同的记录", "{seen:#}");
    assert_eq!(seen["duplicateOpens"], true, "{seen:#}");
    assert!(
        seen["tags"]
            .as_str()
            .is_some_and(|t| t.contains("重点客户")),
        "the bulk tag: {seen:#}"
    );
    assert_eq!(seen["restored"], "张三科技");
    assert_eq!(seen["sorted"], "-name", "{seen:#}");
    assert_eq!(
        seen["budgetColumn"], "¥500,000.00",
        "the chosen column: {seen:#}"
    );
    assert_eq!(seen["editedBudget"], "¥800,000.00");
    assert!(
        seen["history"].as_str().is_some_and(|h| h.contains("修改")),
        "{seen:#}"
    );
    assert_eq!(seen["budgetLabelEn"], "Annual budget");
    for key in [
        "listScrollsSideways",
        "detailScrollsSideways",
        "formScrollsSideways",
    ] {
        assert_eq!(seen[key], false, "{key}: the phone layout scrolls sideways");
    }

    // Tickets, Home, approvals and notifications (tests/browser/tickets.mjs).
    assert_eq!(
        seen["ticketPath"], "/tickets/:id",
        "a new ticket opens in its workspace"
    );
    assert_eq!(seen["noteLabel"], "内部备注");
    assert_eq!(seen["noteLabelEn"], "Internal note");
    assert_ne!(
        seen["noteBackground"], seen["replyBackground"],
        "notes and replies look different: {seen:#}"
    );
    assert_eq!(
        seen["ticketSla"]["firstResponse"], "首次响应 · 已达成",
        "{seen:#}"
    );
    assert!(
        seen["ticketSla"]["resolution"]
            .as_str()
            .is_some_and(|s| s.starts_with("解决 · 剩余 ")),
        "the countdown: {seen:#}"
    );
    assert!(
        seen["ticketSlaEn"]
            .as_str()
            .is_some_and(|s| s.starts_with("Resolution · ") && s.ends_with(" left")),
        "{seen:#}"
    );
    assert!(
        seen["pausedSla"]
            .as_str()
            .is_some_and(|s| s.contains("已暂停")),
        "waiting on the customer pauses the SLA: {seen:#}"
    );
    assert_eq!(
        seen["statusButtons"],
        json!(["处理中", "待回复", "已解决", "已关闭"]),
        "a new ticket's allowed next states"
    );
    assert_eq!(
        seen["statusButtonsPending"],
        json!(["处理中", "已解决", "已关闭"]),
        "a pending ticket's allowed next states"
    );
    assert_eq!(seen["attachmentHref"], "/api/v1/attachments/:id/content");
    assert_eq!(seen["workflowNarrowed"], 200, "{seen:#}");
    assert_eq!(seen["workflowRestored"], 200, "{seen:#}");
    assert_eq!(
        seen["staleStatus"],
        "a ticket in 'open' cannot move to 'closed'; it may move to: pending, resolved",
        "a stale status button shows the API's 409"
    );
    assert_eq!(
        seen["sidePanel"],
        json!({"priority": "high", "assignedToMe": true}),
        "priority and assignee changed from the side panel"
    );
    assert_eq!(seen["queueUrl"], "?queue=mine");
    for key in ["queueSla", "homeTicketSla"] {
        assert!(
            seen[key].as_str().is_some_and(|s| s.starts_with("剩余 ")),
            "{key}: {seen:#}"
        );
    }
    assert_eq!(seen["task"], 201, "{seen:#}");
    assert_eq!(seen["colleague"], 201, "{seen:#}");
    assert_eq!(seen["approvalRequested"], 201, "{seen:#}");
    assert_eq!(
        seen["approvalDecided"],
        json!({"status": "approved", "comment": "同意，折扣不超过九折。"})
    );
    assert_eq!(seen["recalledStatus"], "已撤回");
    assert_eq!(seen["bellBefore"], "通知，1 条未读", "{seen:#}");
    assert_eq!(seen["bellAfter"], "通知，0 条未读", "{seen:#}");
    for key in ["ticketScrollsSideways", "queueScrollsSideways"] {
        assert_eq!(seen[key], false, "{key}: the phone layout scrolls sideways");
    }

    // Settings → Plugins (tests/browser/plugins.mjs).
    assert_eq!(seen["pluginUpload"], 201, "{seen:#}");
    assert_eq!(seen["pluginConfigError"], "不是有效的 JSON", "{seen:#}");
    assert_eq!(seen["pluginGrants"], json!(["customers:read"]), "{seen:#}");
    assert_eq!(seen["pluginEnabledBefore"], "true", "{seen:#}");
    assert_eq!(seen["pluginEnabledAfter"], "false", "{seen:#}");
    assert_eq!(seen["pluginPath"], "/settings/plugins", "{seen:#}");

    // The company exists, and the last language chosen is the user's.
    let login = app.login(&slug, &email, PASSWORD).await.expect(200);
    assert_eq!(login["user"]["locale"], "zh-CN", "{login:#}");
    // The form's edit reached the record: only the changed custom field, with If-Match.
    let token = login["token"].as_str().expect("token");
    let found = app
        .get("/api/v1/customers?q=%E5%BC%A0%E4%B8%89", token)
        .await
        .expect(200);
    assert_eq!(found["items"][0]["name"], "张三科技", "{found:#}");
    assert_eq!(found["items"][0]["custom"]["budget"], 800000.0, "{found:#}");
    // The workspace's ticket: replied, noted, moved back to open, with no survey sent yet.
    let tickets = app
        .get("/api/v1/tickets?sort=-created_at", token)
        .await
        .expect(200);
    let ticket = &tickets["items"][0];
    assert_eq!(ticket["subject"], "车辆保养预约改期", "{tickets:#}");
    assert_eq!(ticket["status"], "open", "{ticket:#}");
    assert!(ticket["first_responded_at"].is_string(), "{ticket:#}");
    let id = ticket["id"].as_str().expect("ticket id");
    let comments = app
        .get(&format!("/api/v1/tickets/{id}/comments"), token)
        .await
        .expect(200);
    let public: Vec<bool> = comments["items"]
        .as_array()
        .expect("comments")
        .iter()
        .map(|c| c["public"] == true)
        .collect();
    assert_eq!(public, [true, false], "{comments:#}");
    let survey = app
        .get(&format!("/api/v1/tickets/{id}/satisfaction"), token)
        .await
        .expect(200);
    assert_eq!(survey, json!({"sent": false}));
    // The dialog's install: one grant, its config, switched off from the table.
    let installs = app.get("/api/v1/plugins/installs", token).await.expect(200);
    let probe = &installs[0];
    assert_eq!(probe["name"], "probe", "{installs:#}");
    assert_eq!(probe["grants"], json!(["customers:read"]), "{probe:#}");
    assert_eq!(probe["config"], json!({"greeting": "您好"}), "{probe:#}");
    assert_eq!(probe["enabled"], false, "{probe:#}");
}
