use crate::helpers::{eventually, unique_slug, TestApp, PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn signup_creates_tenant_admin_and_session() {
    let app = TestApp::spawn().await;
    let slug = unique_slug("acme");
    let body = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({
                "tenant_slug": slug, "tenant_name": "北京阿克米科技有限公司",
                "admin_email": "Wei.Zhang@Acme.CN", "admin_password": PASSWORD, "admin_name": "张伟"
            })),
        )
        .await
        .expect(201);
    assert_eq!(body["tenant"]["slug"], slug.as_str());
    assert_eq!(body["tenant"]["name"], "北京阿克米科技有限公司");
    assert_eq!(
        body["user"]["email"], "wei.zhang@acme.cn",
        "e-mail is lower-cased"
    );
    assert_eq!(body["user"]["name"], "张伟");
    assert_eq!(body["user"]["roles"], json!(["admin"]));
    let token = body["token"].as_str().expect("token");
    assert!(token.starts_with("tcs_"));
    assert!(body["expires_at"].is_string());

    let me = app.get("/api/v1/me", token).await.expect(200);
    assert_eq!(me["tenant"]["slug"], slug.as_str());
    assert_eq!(me["roles"], json!(["admin"]));
    assert_eq!(me["principal"]["kind"], "user");
    let perms: Vec<String> = serde_json::from_value(me["permissions"].clone()).expect("list");
    assert!(perms.contains(&"users:manage".to_owned()) && perms.contains(&"audit:read".to_owned()));

    // The tenant got its own schema and role; the tables belong to that role.
    let schema: String =
        sqlx::query_scalar("SELECT schema_name FROM platform.tenants WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&app.pool)
            .await
            .expect("registry row");
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = $1")
            .bind(&schema)
            .fetch_all(&app.pool)
            .await
            .expect("owners");
    assert_eq!(owners, vec![schema.clone()]);
    let roles: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM \"{schema}\".roles ORDER BY name"
    ))
    .fetch_all(&app.pool)
    .await
    .expect("roles");
    assert_eq!(roles, ["admin", "finance", "sales", "service", "viewer"]);
}

#[tokio::test]
async fn signup_refuses_bad_input_and_duplicate_slugs() {
    let app = TestApp::spawn().await;
    let tenant = app.signup().await;
    let dup = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({
                "tenant_slug": tenant.slug, "tenant_name": "Other", "admin_email": "a@b.com",
                "admin_password": PASSWORD, "admin_name": "X"
            })),
        )
        .await
        .expect_problem(409, "tenant.slug_taken");
    assert!(dup["detail"]
        .as_str()
        .unwrap_or_default()
        .contains(&tenant.slug));

    let bad = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({
                "tenant_slug": "admin", "tenant_name": "  ", "admin_email": "not-mail",
                "admin_password": "short", "admin_name": "X"
            })),
        )
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "tenant_slug",
            "tenant_name",
            "admin_email",
            "admin_password"
        ]
    );
    assert_eq!(bad["errors"][0]["code"], "reserved_slug");

    for slug in [
        "ab",
        "Upper",
        "has_underscore",
        "-lead",
        "x'; drop table platform.tenants; --",
    ] {
        app.call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({
                "tenant_slug": slug, "tenant_name": "T", "admin_email": "a@b.com",
                "admin_password": PASSWORD, "admin_name": "X"
            })),
        )
        .await
        .expect_problem(422, "validation.failed");
    }
    // Nothing was half-written by the refusals.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%'")
            .fetch_one(&app.pool)
            .await
            .expect("schemas");
    assert_eq!(schemas, 1);

    app.call(
        Method::POST,
        "/api/v1/signup",
        None,
        Some(json!({ "tenant_slug": "abc" })),
    )
    .await
    .expect_problem(400, "request.invalid");
}

#[tokio::test]
async fn login_logout_and_wrong_credentials() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ok = app
        .login(&t.slug, &t.admin_email.to_uppercase(), PASSWORD)
        .await
        .expect(200);
    let token = ok["token"].as_str().expect("token").to_owned();
    assert_eq!(ok["user"]["id"], t.admin_id.as_str());
    assert!(ok["expires_at"].is_string());

    app.login(&t.slug, &t.admin_email, "wrong password!")
        .await
        .expect_problem(401, "auth.invalid_credentials");
    app.login(&t.slug, "nobody@nowhere.com", PASSWORD)
        .await
        .expect_problem(401, "auth.invalid_credentials");
    app.login("no-such-tenant", &t.admin_email, PASSWORD)
        .await
        .expect_problem(401, "auth.invalid_credentials");
    app.login(&t.slug, "not an email", PASSWORD)
        .await
        .expect_problem(422, "validation.failed");

    app.get("/api/v1/me", &token).await.expect(200);
    app.call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await
        .expect(204);
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(401, "auth.invalid_token");
    // The other session (from sign-up) still works.
    app.get("/api/v1/me", &t.token).await.expect(200);

    app.call(Method::GET, "/api/v1/me", None, None)
        .await
        .expect_problem(401, "auth.unauthenticated");
    app.get("/api/v1/me", "tcs_garbage")
        .await
        .expect_problem(401, "auth.invalid_token");
}

#[tokio::test]
async fn repeated_failures_throttle_with_growing_retry_after() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for _ in 0..5 {
        app.login(&t.slug, &t.admin_email, "wrong password!")
            .await
            .expect(401);
    }
    let locked = app.login(&t.slug, &t.admin_email, PASSWORD).await;
    let retry: u64 = locked
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    let body = locked.expect_problem(429, "auth.throttled");
    assert!((1..=30).contains(&retry), "first lock is 30 s, got {retry}");
    assert_eq!(body["retry_after"], retry);

    // Once the lock lapses, the next failure locks for twice as long.
    sqlx::query("UPDATE platform.login_throttle SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expire lock");
    app.login(&t.slug, &t.admin_email, "wrong password!")
        .await
        .expect(401);
    let again = app.login(&t.slug, &t.admin_email, PASSWORD).await;
    let retry2: u64 = again
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    again.expect_problem(429, "auth.throttled");
    assert!(
        retry2 > 30 && retry2 <= 60,
        "second lock grows to 60 s, got {retry2}"
    );

    // Every attempt is in the audit log.
    let audit = app
        .get("/api/v1/audit?action=auth&limit=200", &t.token)
        .await
        .expect(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "auth.login_failed")
            .count(),
        6
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "auth.login_throttled")
            .count(),
        2
    );
}

#[tokio::test]
async fn throttling_per_ip_spans_accounts_and_success_resets_the_account() {
    // An address is allowed as many failures as an account here, to see it lock.
    let app = TestApp::spawn_with(|c| c.login_max_failures_per_address = 5).await;
    let t = app.signup().await;
    // Failures on other addresses of the tenant count against the client IP.
    for i in 0..4 {
        app.login(&t.slug, &format!("ghost{i}@x.com"), "wrong password!")
            .await
            .expect(401);
    }
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    app.login(&t.slug, "ghost9@x.com", "wrong password!")
        .await
        .expect(401);
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect_problem(429, "auth.throttled");
}

/// An office behind one address: twelve colleagues log in at the same moment, and a few
/// typos besides, and nobody is locked out — the address is allowed far more than an account
/// (`login_max_failures_per_address`, default 50).
#[tokio::test]
async fn an_office_behind_one_address_logs_in_at_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let mut staff = Vec::new();
    for i in 0..12 {
        let email = format!("同事{i}@office.example.com");
        app.post(
            "/api/v1/users",
            &t.token,
            json!({"email": email, "name": format!("同事 {i}"), "password": PASSWORD}),
        )
        .await
        .expect(201);
        staff.push(email);
    }
    for email in staff.iter().take(6) {
        app.login(&t.slug, email, "a typo, sorry!")
            .await
            .expect(401);
    }
    let logins = staff
        .iter()
        .map(|email| app.login(&t.slug, email, PASSWORD));
    for resp in futures::future::join_all(logins).await {
        resp.expect(200);
    }
}

#[tokio::test]
async fn change_own_password_logs_out_other_sessions() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let second = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200)["token"]
        .as_str()
        .expect("t")
        .to_owned();
    app.post(
        "/api/v1/me/password",
        &t.token,
        json!({"current_password": "nope nope nope", "new_password": "a brand new secret"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/me/password",
        &t.token,
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await
    .expect_problem(422, "password.policy");
    app.post(
        "/api/v1/me/password",
        &t.token,
        json!({"current_password": PASSWORD, "new_password": "a brand new secret"}),
    )
    .await
    .expect(204);
    app.get("/api/v1/me", &t.token).await.expect(200);
    app.get("/api/v1/me", &second)
        .await
        .expect_problem(401, "auth.invalid_token");
    // Guessing the current password with a session is throttled like logins (the wrong
    // guess above was the first of five).
    for _ in 0..4 {
        app.post(
            "/api/v1/me/password",
            &t.token,
            json!({"current_password": "guess guess guess", "new_password": "another new secret"}),
        )
        .await
        .expect(422);
    }
    app.post(
        "/api/v1/me/password",
        &t.token,
        json!({"current_password": "a brand new secret", "new_password": "another new secret"}),
    )
    .await
    .expect_problem(429, "auth.throttled");
    sqlx::query("DELETE FROM platform.login_throttle")
        .execute(&app.pool)
        .await
        .expect("unlock");
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(401);
    app.login(&t.slug, &t.admin_email, "a brand new secret")
        .await
        .expect(200);
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".sessions SET expires_at = now() - interval '1 minute'"
    ))
    .execute(&app.pool)
    .await
    .expect("expire");
    app.get("/api/v1/me", &t.token)
        .await
        .expect_problem(401, "auth.invalid_token");
}

#[tokio::test]
async fn suspended_tenant_is_locked_out_until_resumed() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    crm_tenants::registry::set_active(&app.pool, &t.slug, false)
        .await
        .expect("suspend");
    app.get("/api/v1/me", &t.token)
        .await
        .expect_problem(403, "tenant.suspended");
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect_problem(403, "tenant.suspended");
    crm_tenants::registry::set_active(&app.pool, &t.slug, true)
        .await
        .expect("resume");
    app.get("/api/v1/me", &t.token).await.expect(200);
}

#[tokio::test]
async fn x_tenant_header_must_match_the_credential() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let send = |tenant: &str| {
        app.client
            .get(format!("{}/api/v1/me", app.base))
            .bearer_auth(&a.token)
            .header("x-tenant", tenant.to_owned())
    };
    app.send(send(&a.slug)).await.expect(200);
    app.send(send(&b.slug))
        .await
        .expect_problem(403, "tenant.mismatch");
}

/// The registry is cached in each server, and a suspension reaches every server's cache
/// through `crm_tenant_changed`: requests that were served from the cache are refused once
/// the change is committed, on this server and on a second one.
#[tokio::test]
async fn a_suspension_reaches_every_servers_tenant_cache() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let peer = app.start_peer().await;
    let peer_me = format!("http://{}/api/v1/me", peer.addr);
    let on_peer = || async {
        app.send(app.client.get(&peer_me).bearer_auth(&t.token))
            .await
    };
    // Both servers have now cached the tenant.
    app.get("/api/v1/me", &t.token).await.expect(200);
    on_peer().await.expect(200);
    assert!(!peer.state.tenants.is_empty(), "the peer caches the tenant");
    crm_tenants::registry::set_active(&app.pool, &t.slug, false)
        .await
        .expect("suspend");
    eventually("the suspension on this server", || async {
        (app.get("/api/v1/me", &t.token).await.status.as_u16() == 403).then_some(())
    })
    .await;
    eventually("the suspension on the peer", || async {
        (on_peer().await.status.as_u16() == 403).then_some(())
    })
    .await;
    on_peer().await.expect_problem(403, "tenant.suspended");
    // A suspended tenant is never cached: resuming takes effect on the next request.
    crm_tenants::registry::set_active(&app.pool, &t.slug, true)
        .await
        .expect("resume");
    on_peer().await.expect(200);
    peer.stop().await.expect("peer stops");
}

/// Throttling counts an attempt before its password is checked, in one statement: 200 wrong
/// passwords sent at once get no success and no more password checks than the limit (5);
/// the rest are refused unchecked, and the account stays locked for the right password too.
#[tokio::test]
async fn parallel_guesses_get_no_more_checks_than_the_limit() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let guesses = (0..200).map(|i| {
        let (slug, email) = (t.slug.clone(), t.admin_email.clone());
        let app = &app;
        async move {
            app.login(&slug, &email, &format!("wrong password {i}"))
                .await
                .status
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(!statuses.contains(&200), "no guess succeeds");
    assert!(
        checked <= 5,
        "{checked} passwords were checked; the limit is 5"
    );
    assert_eq!(checked + refused, 200, "{statuses:?}");
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect_problem(429, "auth.throttled");
}

/// A session slides while it is used, but not for ever: past `session_max_hours` after its
/// login (7 days by default) it is refused even though it has not idled out.
#[tokio::test]
async fn a_session_in_use_still_ends_at_its_absolute_lifetime() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    let age = |days: i32| {
        format!(
            "UPDATE \"{schema}\".sessions SET created_at = now() - interval '{days} days', \
             expires_at = now() + interval '1 hour'"
        )
    };
    sqlx::query(&age(6)).execute(&app.pool).await.expect("age");
    app.get("/api/v1/me", &t.token).await.expect(200);
    sqlx::query(&age(8)).execute(&app.pool).await.expect("age");
    app.get("/api/v1/me", &t.token)
        .await
        .expect_problem(401, "auth.invalid_token");
}

/// Sign-up is open, but not free: one address may sign up `signup_max_per_address` companies
/// in a burst; the next is 429 `signup.throttled` with Retry-After, and creates nothing.
#[tokio::test]
async fn sign_ups_from_one_address_are_limited() {
    let app = TestApp::spawn_with(|c| c.signup_max_per_address = 2).await;
    app.signup().await;
    app.signup().await;
    let slug = unique_slug("t");
    let refused = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({
                "tenant_slug": slug,
                "tenant_name": "第三家公司",
                "admin_email": format!("admin@{slug}.example.com"),
                "admin_password": PASSWORD,
                "admin_name": "王芳",
            })),
        )
        .await;
    assert!(refused.headers.contains_key("retry-after"));
    refused.expect_problem(429, "signup.throttled");
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants WHERE slug = $1")
        .bind(&slug)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(created, 0);
}

#[tokio::test]
async fn the_signup_form_learns_whether_a_company_code_is_free() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ask = |slug: &str| {
        let url = format!("/api/v1/signup/slug-availability?slug={slug}");
        let app = &app;
        async move { app.call(Method::GET, &url, None, None).await.expect(200) }
    };
    let free = ask(&unique_slug("free")).await;
    assert_eq!(free["available"], true);
    assert!(free.get("reason").is_none());
    let taken = ask(&t.slug).await;
    assert_eq!(taken["available"], false);
    assert_eq!(taken["reason"], "taken");
    assert_eq!(ask("api").await["reason"], "reserved_slug");
    assert_eq!(ask("Bad_Slug").await["reason"], "invalid_slug");
    // Signing up with a code reported free works; the same code is then taken.
    let slug = unique_slug("later");
    assert_eq!(ask(&slug).await["available"], true);
    app.call(
        Method::POST,
        "/api/v1/signup",
        None,
        Some(
            json!({"tenant_slug": slug, "tenant_name": "后来的公司", "admin_email":
                    format!("a@{slug}.example.com"), "admin_password": PASSWORD,
                    "admin_name": "王芳"}),
        ),
    )
    .await
    .expect(201);
    assert_eq!(ask(&slug).await["reason"], "taken");
}
