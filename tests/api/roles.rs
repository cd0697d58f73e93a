use crate::helpers::{TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn default_roles_and_permission_catalogue() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let roles = app.get("/api/v1/roles", &t.token).await.expect(200);
    let names: Vec<&str> = roles
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "finance", "sales", "service", "viewer"]);
    let sales = app.get("/api/v1/roles/sales", &t.token).await.expect(200);
    assert_eq!(sales["scopes"]["customers"], "own");
    assert_eq!(sales["builtin"], true);
    let viewer = app.get("/api/v1/roles/viewer", &t.token).await.expect(200);
    assert!(!viewer["permissions"]
        .as_array()
        .expect("p")
        .contains(&json!("sensitive:read")));
    assert_eq!(viewer["scopes"]["customers"], "all");
    let catalogue = app.get("/api/v1/permissions", &t.token).await.expect(200);
    assert!(catalogue
        .as_array()
        .expect("list")
        .iter()
        .any(|p| p["name"] == "audit:read" && p["description"].is_string()));
    app.get("/api/v1/roles/ghost", &t.token)
        .await
        .expect_problem(404, "role.not_found");
}

#[tokio::test]
async fn a_role_with_exactly_one_permission_allows_exactly_that() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let role = app
        .post(
            "/api/v1/roles",
            &t.token,
            json!({
                "name": "user-admin", "description": "只管用户", "permissions": ["users:manage"],
                "scopes": {"customers": "team"}
            }),
        )
        .await
        .expect(201);
    assert_eq!(role["permissions"], json!(["users:manage"]));
    assert_eq!(role["scopes"]["customers"], "team");
    assert_eq!(
        role["scopes"]["tickets"], "all",
        "unnamed objects default to all"
    );
    assert_eq!(role["builtin"], false);

    let (_, token) = app.user_with_roles(&t, &["user-admin"]).await;
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["permissions"], json!(["users:manage"]));
    // It can create users (with no roles: granting a role needs its permissions)…
    app.post(
        "/api/v1/users",
        &token,
        json!({"email": "new@x.com", "name": "New", "password": PASSWORD}),
    )
    .await
    .expect(201);
    // …and nothing else: not even listing users, which is users:read.
    for path in [
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/audit",
        "/api/v1/api-keys",
        "/api/v1/teams",
    ] {
        let refused = app
            .get(path, &token)
            .await
            .expect_problem(403, "auth.forbidden");
        assert!(
            refused["detail"].as_str().is_some_and(|d| d.contains(':')),
            "{path}: names the permission"
        );
    }

    // Permission changes apply at once to existing sessions.
    app.patch(
        "/api/v1/roles/user-admin",
        &t.token,
        json!({"permissions": ["users:manage", "users:read"]}),
    )
    .await
    .expect(200);
    app.get("/api/v1/users", &token).await.expect(200);
    app.patch(
        "/api/v1/roles/user-admin",
        &t.token,
        json!({"permissions": ["users:read"]}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/users",
        &token,
        json!({"email": "new2@x.com", "name": "New", "password": PASSWORD}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn roles_cannot_escalate_privileges() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post("/api/v1/roles", &t.token, json!({"name": "role-maker", "permissions": ["roles:manage", "roles:read", "users:manage", "users:read", "api_keys:manage"]}))
        .await
        .expect(201);
    let (_, token) = app.user_with_roles(&t, &["role-maker"]).await;
    app.post(
        "/api/v1/roles",
        &token,
        json!({"name": "sneaky", "permissions": ["audit:read"]}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    app.post(
        "/api/v1/users",
        &token,
        json!({"email": "s@x.com", "name": "S", "password": PASSWORD, "roles": ["admin"]}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    app.post(
        "/api/v1/api-keys",
        &token,
        json!({"name": "k", "role": "admin"}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    app.post(
        "/api/v1/roles",
        &token,
        json!({"name": "fine", "permissions": ["users:read"]}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn role_validation_and_protection() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let bad = app
        .post("/api/v1/roles", &t.token, json!({"name": "ok-name", "permissions": ["customers:read", "customers:fly"], "scopes": {}}))
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"][0]["field"], "permissions[1]");
    assert_eq!(bad["errors"][0]["code"], "unknown_permission");
    let bad_scope = app
        .post("/api/v1/roles", &t.token, json!({"name": "ok-name", "permissions": [], "scopes": {"customers": "mine", "planets": "all"}}))
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad_scope["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(bad_scope["errors"][0]["field"], "scopes.customers");
    // A well-formed name that is none of the company's objects is refused when the role is
    // checked against the catalogue.
    let unknown = app
        .post(
            "/api/v1/roles",
            &t.token,
            json!({"name": "ok-name", "permissions": [], "scopes": {"planets": "all"}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(unknown["errors"][0]["field"], "scopes.planets");
    assert_eq!(unknown["errors"][0]["code"], "unknown_object");
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "Drop Table", "permissions": []}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "sales", "permissions": []}),
    )
    .await
    .expect_problem(409, "role.exists");

    app.patch(
        "/api/v1/roles/admin",
        &t.token,
        json!({"permissions": ["users:read"]}),
    )
    .await
    .expect_problem(409, "role.protected");
    app.delete("/api/v1/roles/admin", &t.token)
        .await
        .expect_problem(409, "role.protected");
    app.patch(
        "/api/v1/roles/admin",
        &t.token,
        json!({"description": "老板"}),
    )
    .await
    .expect(200);

    let (_, _) = app.user_with_roles(&t, &["finance"]).await;
    let in_use = app
        .delete("/api/v1/roles/finance", &t.token)
        .await
        .expect_problem(409, "role.in_use");
    assert!(in_use["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("1 user"));
    app.delete("/api/v1/roles/viewer", &t.token)
        .await
        .expect(204);
    app.get("/api/v1/roles/viewer", &t.token)
        .await
        .expect_problem(404, "role.not_found");
    app.delete("/api/v1/roles/viewer", &t.token)
        .await
        .expect_problem(404, "role.not_found");

    let sales = app
        .patch(
            "/api/v1/roles/sales",
            &t.token,
            json!({"scopes": {"customers": "team"}}),
        )
        .await
        .expect(200);
    assert_eq!(sales["scopes"]["customers"], "team");
    assert_eq!(sales["scopes"]["tasks"], "own", "other scopes unchanged");
}
