use crate::helpers::{TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn security_events_are_audited_and_paged() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.login(&t.slug, &t.admin_email, "wrong password!")
        .await
        .expect(401);
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    let (uid, _) = app.user_with_roles(&t, &["sales"]).await;
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "auditor", "permissions": ["audit:read"]}),
    )
    .await
    .expect(201);
    app.patch(
        &format!("/api/v1/users/{uid}"),
        &t.token,
        json!({"roles": ["auditor"]}),
    )
    .await
    .expect(200);
    let key = app
        .post(
            "/api/v1/api-keys",
            &t.token,
            json!({"name": "bi", "role": "viewer"}),
        )
        .await
        .expect(201);
    app.delete(
        &format!("/api/v1/api-keys/{}", key["id"].as_str().expect("id")),
        &t.token,
    )
    .await
    .expect(204);

    let page = app
        .get("/api/v1/audit?limit=200", &t.token)
        .await
        .expect(200);
    let entries = page["items"].as_array().expect("items");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "tenant.created",
        "auth.login_failed",
        "auth.login",
        "user.created",
        "role.created",
        "user.updated",
        "api_key.created",
        "api_key.revoked",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let ids: Vec<i64> = entries.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let failed = entries
        .iter()
        .find(|e| e["action"] == "auth.login_failed")
        .expect("failed login");
    assert_eq!(failed["detail"]["email"], t.admin_email.as_str());
    assert_eq!(failed["ip"], "127.0.0.1");
    let created = entries
        .iter()
        .find(|e| e["action"] == "user.created")
        .expect("user.created");
    assert_eq!(created["actor_id"], t.admin_id.as_str());
    assert_eq!(created["target_id"], uid.as_str());
    assert!(created["request_id"].is_string());

    // Paging with a cursor visits every entry once.
    let total = entries.len();
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!("/api/v1/audit?limit=3{cursor}"), &t.token)
            .await
            .expect(200);
        seen += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(seen >= total, "paged {seen} of {total}");

    let users_only = app
        .get("/api/v1/audit?action=user", &t.token)
        .await
        .expect(200);
    assert!(users_only["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["action"].as_str().is_some_and(|a| a.starts_with("user."))));
    let by_actor = app
        .get(&format!("/api/v1/audit?actor_id={}", t.admin_id), &t.token)
        .await
        .expect(200);
    assert!(by_actor["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["actor_id"] == t.admin_id.as_str()));
    let future = app
        .get("/api/v1/audit?since=2999-01-01T00:00:00Z", &t.token)
        .await
        .expect(200);
    assert_eq!(future["items"], json!([]));
    app.get("/api/v1/audit?since=yesterday", &t.token)
        .await
        .expect_problem(400, "request.invalid");
}
