//! The customer portal's pages in a real browser: Debian's chromium, driven by playwright-core
//! (tests/browser/portal.mjs), opens the links the server mails, exactly as a customer would.
//! The script acts and reports what it saw; this side sets the stage through the staff API and
//! checks the outcome there and in the database.

use crate::helpers::{eventually, id, Tenant, TestApp};
use crate::mail::eml_files;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A subject that would run script if the page ever turned data into markup.
const XSS_SUBJECT: &str = r#"<img src=x onerror="window.__xss=1">"#;
const EMAIL: &str = "wang.lei@example.com";
const SETUP: &str = "run the tests with ./test.sh, which installs Debian's chromium and \
                     playwright-core (npm ci --prefix tests/browser) when they are missing";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails (never skips) when the browser tools are missing, saying how to install them.
fn require_browser() {
    let chromium = chromium();
    assert!(
        chromium.exists(),
        "{} is missing: {SETUP}",
        chromium.display()
    );
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.exists(),
        "{} is missing: {SETUP}",
        playwright.display()
    );
}

/// Runs tests/browser/portal.mjs in `mode`; returns the JSON it printed, after checking the
/// pages logged no script error, console error or CSP violation.
async fn browser(mode: &str, args: &[&str]) -> Value {
    let child = tokio::process::Command::new("node")
        .arg(browser_dir().join("portal.mjs"))
        .arg(mode)
        .args(args)
        .current_dir(browser_dir())
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node did not start ({e}): {SETUP}"));
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the browser script ({mode}) ran over 180 s"))
        .expect("browser script output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script ({mode}) failed: {}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    let seen: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("browser script printed no JSON ({e}): {stdout}\n{stderr}"));
    assert_eq!(seen["problems"], json!([]), "{seen:#}");
    seen
}

/// The first `prefix…` token in a mail body.
fn token_in(body: &str, prefix: &str) -> Option<String> {
    let at = body.find(&format!("token={prefix}"))? + "token=".len();
    Some(
        body[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect(),
    )
}

/// Every sign-in link token mailed to the tenant so far.
fn link_tokens(app: &TestApp, t: &Tenant) -> Vec<String> {
    eml_files(&app.config.data_dir, &t.slug)
        .iter()
        .filter_map(|m| token_in(m["body"].as_str()?, "tcl_"))
        .collect()
}

/// Asks for a sign-in link through the API; returns the link's URL on this test server.
async fn login_url(app: &TestApp, t: &Tenant) -> String {
    let before = link_tokens(app, t);
    app.call(
        Method::POST,
        "/portal/api/login-link",
        None,
        Some(json!({"tenant": t.slug, "email": EMAIL})),
    )
    .await
    .expect(202);
    let token = eventually("the sign-in mail", || async {
        link_tokens(app, t)
            .into_iter()
            .find(|tok| !before.contains(tok))
    })
    .await;
    format!("{}/portal/login?token={token}", app.base)
}

/// The survey link mailed when ticket `number` was resolved, on this test server.
async fn survey_url(app: &TestApp, t: &Tenant, number: &str) -> String {
    let token = eventually("the survey mail", || async {
        eml_files(&app.config.data_dir, &t.slug)
            .into_iter()
            .find(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("满意度调查") && s.contains(number))
            })
            .and_then(|m| token_in(m["body"].as_str()?, "tcv_"))
    })
    .await;
    format!("{}/portal/survey?token={token}", app.base)
}

async fn resolve(app: &TestApp, t: &Tenant, ticket: &str) {
    let path = format!("/api/v1/tickets/{ticket}");
    for status in ["open", "resolved"] {
        app.patch(&path, &t.token, json!({ "status": status }))
            .await
            .expect(200);
    }
}

async fn stored_rating(app: &TestApp, t: &Tenant, ticket: &str) -> (Option<i16>, Option<String>) {
    let schema = app.schema_of(t).await;
    sqlx::query_as(&format!(
        "SELECT rating, comment FROM \"{schema}\".csat_surveys WHERE ticket_id = $1::uuid"
    ))
    .bind(ticket)
    .fetch_one(&app.pool)
    .await
    .expect("survey row")
}

#[tokio::test]
async fn portal_pages_are_served_beside_the_api_with_strict_headers() {
    let app = TestApp::spawn().await;
    for path in [
        "/portal",
        "/portal/login?token=tcl_x",
        "/portal/survey?token=tcv_x",
    ] {
        let page = app.call(Method::GET, path, None, None).await;
        assert_eq!(page.status, 200, "{path}");
        let h = &page.headers;
        assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' \
             'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        let html = page.body.as_str().expect("html");
        assert!(html.starts_with("<!doctype html>"), "{path}");
        assert!(html.contains("<title>客户服务门户</title>"), "{path}");
    }
    // The API under /portal/api is still the API.
    app.call(Method::GET, "/portal/api/openapi.json", None, None)
        .await
        .expect(200);
    app.call(Method::GET, "/portal/api/me", None, None)
        .await
        .expect_problem(401, "portal.invalid_token");
    app.call(Method::GET, "/portal/elsewhere", None, None)
        .await
        .expect_problem(404, "route.not_found");
    app.call(Method::POST, "/portal", None, Some(json!({})))
        .await
        .expect_problem(405, "route.method_not_allowed");
}

#[tokio::test]
async fn a_customer_signs_in_opens_a_ticket_replies_and_rates_in_a_real_browser() {
    require_browser();
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let customer = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "上海蓝天贸易"}),
        )
        .await
        .expect(201);
    let contact = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"name": "王磊", "customer_id": id(&customer), "email": EMAIL}),
        )
        .await
        .expect(201);
    let contact = id(&contact);

    // Signing in by the mailed link, a ticket through the form, a reply, the used link again,
    // a new link asked for on the page, signing out.
    let login = login_url(&app, &t).await;
    let description = "三楼的打印机一直卡纸\n<script>window.__xss=2</script>";
    let reply = "请尽快安排师傅 <b>谢谢</b>";
    let seen = browser(
        "portal",
        &[&login, &t.slug, EMAIL, XSS_SUBJECT, description, reply],
    )
    .await;
    // Customer text stayed text: no element was made of it, no handler ran.
    assert_eq!(seen["xss"], "undefined");
    assert_eq!(seen["xss_after_login"], "undefined");
    assert_eq!(seen["images"], 0);
    let base_page = format!("{}/portal", app.base);
    assert_eq!(
        seen["url_after_login"],
        base_page.as_str(),
        "token left the address bar"
    );
    assert_eq!(seen["session_stored"], true);
    assert_eq!(seen["who"], "王磊 · 上海蓝天贸易");
    assert_eq!(seen["number"], "T-000001");
    assert_eq!(seen["title"], format!("T-000001 {XSS_SUBJECT}"));
    assert_eq!(seen["created_notice"], "工单已提交：T-000001");
    let meta = seen["meta"].as_str().expect("meta");
    for shown in ["新建", "投诉", "高", "王磊"] {
        assert!(meta.contains(shown), "{shown} in {meta}");
    }
    assert_eq!(seen["reply_seen"], reply);
    assert_eq!(seen["list_subject"], XSS_SUBJECT);
    assert_eq!(seen["list_status"], "新建");
    assert_eq!(seen["session_after_reload"], true);
    let used = seen["used_link_error"].as_str().expect("used link error");
    assert!(
        used.starts_with("该登录链接无效、已过期或已被使用"),
        "{used}"
    );
    assert!(used.contains("already used"), "the server's detail: {used}");
    assert_eq!(seen["url_after_used_link"], base_page.as_str());
    assert_eq!(
        seen["link_requested"],
        "如果该邮箱已登记，登录链接已发送，请查收邮件。"
    );
    assert_eq!(seen["session_after_logout"], Value::Null);

    // What the browser did, as the service team sees it.
    let list = app.get("/api/v1/tickets", &t.token).await.expect(200);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{list:#}");
    let ticket = &items[0];
    assert_eq!(ticket["number"], "T-000001");
    assert_eq!(ticket["subject"], XSS_SUBJECT);
    assert_eq!(ticket["description"], description);
    assert_eq!(ticket["channel"], "portal");
    assert_eq!(ticket["type"], "complaint");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["contact_id"], contact.as_str());
    assert_eq!(ticket["customer_id"], id(&customer).as_str());
    let first = id(ticket);
    let comments = app
        .get(&format!("/api/v1/tickets/{first}/comments"), &t.token)
        .await
        .expect(200);
    let thread = comments["items"].as_array().expect("comments");
    assert_eq!(thread.len(), 1, "{comments:#}");
    assert_eq!(thread[0]["body"], reply);
    assert_eq!(thread[0]["author_kind"], "contact");
    assert_eq!(thread[0]["author_id"], contact.as_str());
    // The request form on the page mailed a second link; signing out ended the session.
    eventually("the link asked for on the page", || async {
        (link_tokens(&app, &t).len() == 2).then_some(())
    })
    .await;
    let ended = seen["portal_token"].as_str().expect("portal token");
    assert!(ended.starts_with("tcp_"), "{ended}");
    app.get("/portal/api/me", ended)
        .await
        .expect_problem(401, "portal.invalid_token");

    // Resolved: the survey link rates it 4 with a comment; opened again, it only thanks.
    resolve(&app, &t, &first).await;
    let survey = survey_url(&app, &t, "T-000001").await;
    let rated = browser("survey", &[&survey, "4", "师傅很专业，响应及时"]).await;
    assert_eq!(rated["ticket"], format!("T-000001 {XSS_SUBJECT}"));
    assert_eq!(rated["form_shown"], true);
    assert_eq!(rated["thanks"], "感谢您的评价！ 您的评价：4 / 5");
    assert_eq!(rated["again"], "感谢您的评价！ 您的评价：4 / 5");
    assert_eq!(rated["form_again"], false);
    assert_eq!(rated["xss"], "undefined");
    assert_eq!(rated["images"], 0);
    assert_eq!(
        stored_rating(&app, &t, &first).await,
        (Some(4), Some("师傅很专业，响应及时".to_owned()))
    );

    // A ticket the service team opened and answered, rated inside the portal; its survey link
    // then only thanks.
    let second = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "发票抬头有误", "customer_id": id(&customer), "contact_id": contact, "channel": "phone"}),
        )
        .await
        .expect(201);
    let second = id(&second);
    let answer = "<script>window.__xss=3</script>已重新开具发票";
    app.post(
        &format!("/api/v1/tickets/{second}/comments"),
        &t.token,
        json!({"body": answer, "public": true}),
    )
    .await
    .expect(201);
    resolve(&app, &t, &second).await;
    let login = login_url(&app, &t).await;
    let portal_rating = browser("rate", &[&login, "T-000002", "5", "很满意"]).await;
    assert_eq!(portal_rating["conversation"], json!([answer]));
    assert_eq!(portal_rating["form_shown"], true);
    assert_eq!(portal_rating["rated"], "感谢您的评价！ 您的评价：5 / 5");
    assert_eq!(portal_rating["form_after"], false);
    assert_eq!(portal_rating["xss"], "undefined");
    assert_eq!(
        stored_rating(&app, &t, &second).await,
        (Some(5), Some("很满意".to_owned()))
    );
    let survey = survey_url(&app, &t, "T-000002").await;
    let again = browser("survey", &[&survey, "1", "不应保存"]).await;
    assert_eq!(again["form_shown"], false);
    assert_eq!(again["again"], "感谢您的评价！ 您的评价：5 / 5");
    assert_eq!(
        stored_rating(&app, &t, &second).await,
        (Some(5), Some("很满意".to_owned()))
    );
}
