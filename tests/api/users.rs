use crate::helpers::{unique_slug, TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn create_get_list_update_users() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let user = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({
                "email": "Li.Na@Example.com", "name": "李娜", "password": PASSWORD,
                "roles": ["sales"], "locale": "zh-CN"
            }),
        )
        .await
        .expect(201);
    let id = user["id"].as_str().expect("id");
    assert_eq!(user["email"], "li.na@example.com");
    assert_eq!(user["roles"], json!(["sales"]));
    assert_eq!(user["status"], "active");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let got = app
        .get(&format!("/api/v1/users/{id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(got["name"], "李娜");

    let patched = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &t.token,
            json!({"name": "李娜娜", "roles": ["sales", "service"]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "李娜娜");
    assert_eq!(patched["roles"], json!(["sales", "service"]));

    let found = app.get("/api/v1/users?q=娜娜", &t.token).await.expect(200);
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    let by_role = app
        .get("/api/v1/users?role=service", &t.token)
        .await
        .expect(200);
    assert_eq!(by_role["items"][0]["id"], id);
    let admins = app
        .get("/api/v1/users?role=admin", &t.token)
        .await
        .expect(200);
    assert_eq!(admins["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn user_input_is_validated() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let bad = app
        .post("/api/v1/users", &t.token, json!({
            "email": "nope", "name": "", "password": "short", "roles": ["Bad Role", "ghost"], "locale": "fr"
        }))
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["email", "name", "password", "roles[0]", "locale"]);

    let unknown_role = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({"email": "a@b.com", "name": "A", "password": PASSWORD, "roles": ["ghost"]}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(unknown_role["errors"][0]["code"], "unknown_role");

    let dup = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({"email": t.admin_email.to_uppercase(), "name": "Dup", "password": PASSWORD}),
        )
        .await
        .expect_problem(409, "user.email_taken");
    assert!(dup["detail"]
        .as_str()
        .unwrap_or_default()
        .contains(&t.admin_email));

    let missing = uuid::Uuid::new_v4();
    app.get(&format!("/api/v1/users/{missing}"), &t.token)
        .await
        .expect_problem(404, "user.not_found");
    app.get("/api/v1/users/not-a-uuid", &t.token)
        .await
        .expect_problem(400, "request.invalid");
    app.get("/api/v1/users?cursor=zzz", &t.token)
        .await
        .expect_problem(400, "request.invalid_cursor");
    app.get("/api/v1/users?status=sleeping", &t.token)
        .await
        .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn cursor_pagination_returns_every_user_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for i in 0..23 {
        app.post("/api/v1/users", &t.token, json!({"email": format!("u{i}@x.com"), "name": format!("用户{i}"), "password": PASSWORD}))
            .await
            .expect(201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=5&cursor={c}"),
            None => "/api/v1/users?limit=5".to_owned(),
        };
        let page = app.get(&path, &t.token).await.expect(200);
        for u in page["items"].as_array().expect("items") {
            seen.push(u["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 24);
}

#[tokio::test]
async fn deactivation_ends_sessions_and_blocks_login() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (id, token) = app.user_with_roles(&t, &["sales"]).await;
    let email = app
        .get(&format!("/api/v1/users/{id}"), &t.token)
        .await
        .expect(200)["email"]
        .as_str()
        .expect("e")
        .to_owned();
    app.delete(&format!("/api/v1/users/{id}"), &t.token)
        .await
        .expect(204);
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(401, "auth.invalid_token");
    app.login(&t.slug, &email, PASSWORD)
        .await
        .expect_problem(403, "auth.user_disabled");
    let user = app
        .get(&format!("/api/v1/users/{id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(user["status"], "disabled");
    let active = app
        .get("/api/v1/users?status=active", &t.token)
        .await
        .expect(200);
    assert_eq!(active["items"].as_array().map(Vec::len), Some(1));

    app.patch(
        &format!("/api/v1/users/{id}"),
        &t.token,
        json!({"active": true}),
    )
    .await
    .expect(200);
    app.login(&t.slug, &email, PASSWORD).await.expect(200);
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_deactivate_themselves() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.delete(&format!("/api/v1/users/{}", t.admin_id), &t.token)
        .await
        .expect_problem(409, "user.self");
    let (other, _) = app.user_with_roles(&t, &["sales"]).await;
    // A second admin removes the first admin's admin role: refused only when none would remain.
    app.patch(
        &format!("/api/v1/users/{other}"),
        &t.token,
        json!({"roles": ["admin"]}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/users/{other}"),
        &t.token,
        json!({"roles": ["sales"]}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/users/{}", t.admin_id),
        &t.token,
        json!({"roles": ["sales"]}),
    )
    .await
    .expect_problem(409, "user.last_admin");
}

#[tokio::test]
async fn admin_password_reset_revokes_the_users_sessions() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (id, token) = app.user_with_roles(&t, &["viewer"]).await;
    let email = app
        .get(&format!("/api/v1/users/{id}"), &t.token)
        .await
        .expect(200)["email"]
        .as_str()
        .expect("e")
        .to_owned();
    app.post(
        &format!("/api/v1/users/{id}/password"),
        &t.token,
        json!({"new_password": "x"}),
    )
    .await
    .expect_problem(422, "password.policy");
    app.post(
        &format!("/api/v1/users/{id}/password"),
        &t.token,
        json!({"new_password": "reset by the admin"}),
    )
    .await
    .expect(204);
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(401, "auth.invalid_token");
    app.login(&t.slug, &email, PASSWORD).await.expect(401);
    app.login(&t.slug, &email, "reset by the admin")
        .await
        .expect(200);
}

#[tokio::test]
async fn viewer_cannot_manage_users_and_refusal_names_the_permission() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.get("/api/v1/users", &viewer).await.expect(200);
    let refused = app
        .post("/api/v1/users", &viewer, json!({"email": format!("{}@x.com", unique_slug("v")), "name": "V", "password": PASSWORD}))
        .await
        .expect_problem(403, "auth.forbidden");
    assert!(refused["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("users:manage"));
    app.patch(
        &format!("/api/v1/users/{}", t.admin_id),
        &viewer,
        json!({"name": "hacked"}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.delete(&format!("/api/v1/users/{}", t.admin_id), &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    app.post(
        &format!("/api/v1/users/{}/password", t.admin_id),
        &viewer,
        json!({"new_password": "taken over now"}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/audit", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/roles", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/api-keys", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");
}
