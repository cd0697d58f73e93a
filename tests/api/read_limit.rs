//! The read limit and the read-access log (issue 14 item 8): a user reading more customer
//! records per window than the company allows is frozen (sessions, logins and API keys 403
//! `user.frozen`), administrators are told in-app and by mail, an administrator unfreezes.

use crate::helpers::{eventually, id, unique_slug, Tenant, TestApp, PASSWORD};
use crate::mail::eml_files;
use reqwest::Method;
use serde_json::{json, Value};

async fn set_read_limit(app: &TestApp, t: &Tenant, body: Value) -> Value {
    app.call(
        Method::PUT,
        "/api/v1/settings/read-limit",
        Some(&t.token),
        Some(body),
    )
    .await
    .expect(200)
}

async fn customers(app: &TestApp, t: &Tenant, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let c = app
            .post(
                "/api/v1/customers",
                &t.token,
                json!({ "name": format!("读取客户{i} {}", unique_slug("c")) }),
            )
            .await
            .expect(201);
        ids.push(id(&c));
    }
    ids
}

/// A user with `roles` and its e-mail, logged in: (id, email, token).
async fn staff(app: &TestApp, t: &Tenant, roles: &[&str], name: &str) -> (String, String, String) {
    let email = format!("{}@{}.example.com", unique_slug("r"), t.slug);
    let user = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({ "email": email, "name": name, "password": PASSWORD, "roles": roles }),
        )
        .await
        .expect(201);
    let token = app.login(&t.slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    (id(&user), email, token)
}

async fn log_of(app: &TestApp, t: &Tenant, query: &str) -> Vec<Value> {
    app.items(&format!("/api/v1/read-access-log?{query}"), &t.token)
        .await
}

async fn audit_actions(app: &TestApp, t: &Tenant, action: &str) -> Vec<Value> {
    app.items(&format!("/api/v1/audit?action={action}"), &t.token)
        .await
}

#[tokio::test]
async fn a_user_over_the_read_limit_is_frozen_until_an_administrator_unfreezes_it() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ids = customers(&app, &t, 3).await;
    let saved = set_read_limit(
        &app,
        &t,
        json!({ "enabled": true, "max_reads": 3, "window_minutes": 60, "log_enabled": true }),
    )
    .await;
    assert_eq!(saved["log_retention_days"], 180, "the default retention");
    let (user_id, email, token) = staff(&app, &t, &["viewer"], "王读者").await;

    // One get and a list page of two rows: three reads, the limit.
    app.get(&format!("/api/v1/customers/{}", ids[0]), &token)
        .await
        .expect(200);
    let page = app
        .get("/api/v1/customers?limit=2", &token)
        .await
        .expect(200);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    // A count reads no record.
    app.get("/api/v1/customers/count", &token).await.expect(200);

    // The fourth is refused, and the freeze stays.
    let refused = app
        .get(&format!("/api/v1/customers/{}", ids[2]), &token)
        .await
        .expect_problem(403, "user.frozen");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("administrator must unfreeze")),
        "{refused}"
    );
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(403, "user.frozen");
    app.get("/api/v1/customers/count", &token)
        .await
        .expect_problem(403, "user.frozen");
    app.login(&t.slug, &email, PASSWORD)
        .await
        .expect_problem(403, "user.frozen");

    let user = app
        .get(&format!("/api/v1/users/{user_id}"), &t.token)
        .await
        .expect(200);
    assert!(user["frozen_at"].is_string(), "{user}");
    let listed = app.get("/api/v1/users", &t.token).await.expect(200);
    let row = listed["items"]
        .as_array()
        .and_then(|items| items.iter().find(|u| u["id"] == user_id.as_str()))
        .expect("the user is listed");
    assert!(row["frozen_at"].is_string(), "frozen in the list: {row}");

    let frozen = audit_actions(&app, &t, "user.frozen").await;
    assert_eq!(frozen.len(), 1, "{frozen:?}");
    assert_eq!(frozen[0]["target_id"], user_id.as_str());
    assert_eq!(frozen[0]["detail"]["max_reads"], 3);

    // The administrator is told in the app and by mail (in the company's Chinese).
    let notes = app.get("/api/v1/notifications", &t.token).await.expect(200);
    let note = notes["items"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["kind"] == "user.frozen"))
        .cloned()
        .expect("a user.frozen notification");
    assert!(
        note["title"].as_str().is_some_and(|s| s.contains("王读者")),
        "{note}"
    );
    let mail = eventually("the freeze mail", || async {
        eml_files(&app.config.data_dir, &t.slug)
            .into_iter()
            .find(|m| {
                m["to"]
                    .as_str()
                    .is_some_and(|to| to.contains(&t.admin_email))
            })
    })
    .await;
    assert!(
        mail["subject"]
            .as_str()
            .is_some_and(|s| s.contains("账号已冻结")),
        "{mail}"
    );
    assert!(
        mail["body"].as_str().is_some_and(|b| b.contains(&email)),
        "{mail}"
    );

    // The log says who read which customer, how.
    let reads = log_of(&app, &t, &format!("user_id={user_id}")).await;
    assert_eq!(reads.len(), 3, "{reads:?}");
    let vias: Vec<&str> = reads.iter().filter_map(|r| r["via"].as_str()).collect();
    assert_eq!(vias, ["list", "list", "get"]);
    let of_first = log_of(&app, &t, &format!("customer_id={}", ids[0])).await;
    assert!(of_first
        .iter()
        .any(|r| r["via"] == "get" && r["user_id"] == user_id.as_str()));
    assert!(
        log_of(&app, &t, &format!("customer_id={}", ids[2]))
            .await
            .iter()
            .all(|r| r["via"] != "get"),
        "the refused read is not logged"
    );

    // Unfrozen: audited, a fresh window, logins work again; the old session stays ended.
    let user = app
        .post(
            &format!("/api/v1/users/{user_id}/unfreeze"),
            &t.token,
            json!({}),
        )
        .await
        .expect(200);
    assert!(user.get("frozen_at").is_none(), "{user}");
    assert_eq!(audit_actions(&app, &t, "user.unfrozen").await.len(), 1);
    app.post(
        &format!("/api/v1/users/{user_id}/unfreeze"),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(409, "user.not_frozen");
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(401, "auth.invalid_token");
    let token = app.login(&t.slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    for c in &ids {
        app.get(&format!("/api/v1/customers/{c}"), &token)
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn exempt_roles_are_counted_never_but_logged_and_big_pages_freeze_at_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    customers(&app, &t, 3).await;
    set_read_limit(
        &app,
        &t,
        json!({ "enabled": true, "max_reads": 1, "window_minutes": 5,
                "exempt_roles": ["finance"], "log_enabled": true, "log_retention_days": 30 }),
    )
    .await;
    let (finance_id, _, finance) = staff(&app, &t, &["finance"], "财务").await;
    for _ in 0..2 {
        app.get("/api/v1/customers", &finance).await.expect(200);
        app.get("/api/v1/customers/export", &finance)
            .await
            .expect(200);
    }
    app.get("/api/v1/me", &finance).await.expect(200);
    let reads = log_of(&app, &t, &format!("user_id={finance_id}")).await;
    assert_eq!(reads.len(), 12, "{reads:?}");
    assert_eq!(reads.iter().filter(|r| r["via"] == "export").count(), 6);

    // A page larger than the limit is refused whole.
    let (viewer_id, _, viewer) = staff(&app, &t, &["viewer"], "看客").await;
    app.get("/api/v1/customers", &viewer)
        .await
        .expect_problem(403, "user.frozen");
    assert!(log_of(&app, &t, &format!("user_id={viewer_id}"))
        .await
        .is_empty());
}

#[tokio::test]
async fn a_frozen_administrators_api_keys_stop_and_the_other_administrators_are_told() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ids = customers(&app, &t, 2).await;
    let (second_id, _, second) = staff(&app, &t, &["admin"], "第二管理员").await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &second,
            json!({ "name": "同步", "role": "viewer" }),
        )
        .await
        .expect(201)["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    set_read_limit(
        &app,
        &t,
        json!({ "enabled": true, "max_reads": 1, "window_minutes": 60, "log_enabled": false }),
    )
    .await;
    // The key's reads count for the user who answers for it.
    app.get(&format!("/api/v1/customers/{}", ids[0]), &key)
        .await
        .expect(200);
    app.get(&format!("/api/v1/customers/{}", ids[1]), &second)
        .await
        .expect_problem(403, "user.frozen");
    app.get("/api/v1/me", &key)
        .await
        .expect_problem(403, "user.frozen");
    let notes = app.get("/api/v1/notifications", &t.token).await.expect(200);
    assert!(
        notes["items"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["kind"] == "user.frozen")),
        "{notes}"
    );
    // The log is off: nothing logged.
    assert!(log_of(&app, &t, "").await.is_empty());
    app.post(
        &format!("/api/v1/users/{second_id}/unfreeze"),
        &t.token,
        json!({}),
    )
    .await
    .expect(200);
    app.get("/api/v1/me", &key).await.expect(200);
}

#[tokio::test]
async fn another_company_cannot_unfreeze_and_settings_are_checked() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let other = app.signup().await;
    let (user_id, _, viewer) = staff(&app, &t, &["viewer"], "赵六").await;
    app.post(
        &format!("/api/v1/users/{user_id}/unfreeze"),
        &other.token,
        json!({}),
    )
    .await
    .expect_problem(404, "user.not_found");
    app.post(
        &format!("/api/v1/users/{user_id}/unfreeze"),
        &viewer,
        json!({}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/settings/read-limit", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/read-access-log", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");

    let bad = app
        .call(
            Method::PUT,
            "/api/v1/settings/read-limit",
            Some(&t.token),
            Some(
                json!({ "enabled": true, "max_reads": 0, "window_minutes": 0,
                         "log_enabled": true, "log_retention_days": 0 }),
            ),
        )
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        ["max_reads", "window_minutes", "log_retention_days"],
        "{bad}"
    );
    let unknown = app
        .call(
            Method::PUT,
            "/api/v1/settings/read-limit",
            Some(&t.token),
            Some(
                json!({ "enabled": true, "max_reads": 5, "window_minutes": 60,
                         "exempt_roles": ["no-such-role"], "log_enabled": false }),
            ),
        )
        .await
        .expect(422);
    assert_eq!(
        unknown["errors"][0]["field"], "exempt_roles[0]",
        "{unknown}"
    );
    let unchanged = app
        .get("/api/v1/settings/read-limit", &t.token)
        .await
        .expect(200);
    assert_eq!(unchanged["enabled"], false);
}

#[tokio::test]
async fn with_the_limit_and_the_log_off_reads_write_nothing() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let settings = app
        .get("/api/v1/settings/read-limit", &t.token)
        .await
        .expect(200);
    assert_eq!(
        settings,
        json!({ "enabled": false, "max_reads": 1000, "window_minutes": 60, "exempt_roles": [],
                "log_enabled": false, "log_retention_days": 180 })
    );
    let ids = customers(&app, &t, 2).await;
    let (_, _, viewer) = staff(&app, &t, &["viewer"], "钱七").await;
    for _ in 0..3 {
        app.get(&format!("/api/v1/customers/{}", ids[0]), &viewer)
            .await
            .expect(200);
        app.get("/api/v1/customers", &viewer).await.expect(200);
    }
    let schema = app.schema_of(&t).await;
    let rows = |table: &'static str| {
        let (pool, schema) = (app.pool.clone(), schema.clone());
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM \"{schema}\".{table}"))
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(rows("read_access_log").await, 0);
    assert_eq!(rows("read_counters").await, 0);

    // The log alone logs but counts nothing.
    set_read_limit(
        &app,
        &t,
        json!({ "enabled": false, "max_reads": 1, "window_minutes": 60, "log_enabled": true }),
    )
    .await;
    app.get("/api/v1/customers", &viewer).await.expect(200);
    assert_eq!(rows("read_access_log").await, 2);
    assert_eq!(rows("read_counters").await, 0);
}

#[tokio::test]
async fn log_rows_past_their_retention_are_pruned_by_a_recurring_job() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    let customer = uuid::Uuid::now_v7();
    for days in [400, 31, 1] {
        sqlx::query(&format!(
            "INSERT INTO \"{schema}\".read_access_log (at, customer_id, via) \
             VALUES (now() - make_interval(days => $1), $2, 'get')"
        ))
        .bind(days)
        .bind(customer)
        .execute(&app.pool)
        .await
        .expect("old log row");
    }
    set_read_limit(
        &app,
        &t,
        json!({ "enabled": false, "max_reads": 10, "window_minutes": 60,
                "log_enabled": true, "log_retention_days": 30 }),
    )
    .await;
    eventually("the prune job", || async {
        let left = log_of(&app, &t, &format!("customer_id={customer}")).await;
        (left.len() == 1).then_some(())
    })
    .await;
    // The next run is scheduled while the log is on.
    let pending = app
        .get("/api/v1/jobs?status=pending", &t.token)
        .await
        .expect(200);
    assert!(
        pending["items"]
            .as_array()
            .is_some_and(|j| j.iter().any(|j| j["kind"] == "read_access_log.prune")),
        "{pending}"
    );
}
