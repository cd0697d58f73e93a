use crate::helpers::TestApp;
use serde_json::json;

#[tokio::test]
async fn api_keys_act_with_their_role_until_revoked() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let created = app
        .post(
            "/api/v1/api-keys",
            &t.token,
            json!({"name": "ERP 同步", "role": "viewer"}),
        )
        .await
        .expect(201);
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("tck_"));
    assert_eq!(created["role"], "viewer");
    assert_eq!(created["active"], true);

    let listed = app.get("/api/v1/api-keys", &t.token).await.expect(200);
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&secret), "the secret is never listed");
    assert_eq!(
        listed[0]["prefix"].as_str().map(|p| p.starts_with("tck_")),
        Some(true)
    );

    let me = app.get("/api/v1/me", &secret).await.expect(200);
    assert_eq!(me["principal"]["kind"], "api_key");
    assert_eq!(me["roles"], json!(["viewer"]));
    assert!(me.get("user").is_none());
    app.get("/api/v1/users", &secret).await.expect(200);
    app.post(
        "/api/v1/users",
        &secret,
        json!({"email": "k@x.com", "name": "K", "password": "long enough pw"}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.call(
        reqwest::Method::POST,
        "/api/v1/auth/logout",
        Some(&secret),
        None,
    )
    .await
    .expect_problem(400, "auth.not_a_session");

    let used = app.get("/api/v1/api-keys", &t.token).await.expect(200);
    assert!(used[0]["last_used_at"].is_string());

    app.delete(&format!("/api/v1/api-keys/{id}"), &t.token)
        .await
        .expect(204);
    app.get("/api/v1/me", &secret)
        .await
        .expect_problem(401, "auth.invalid_token");
    let after = app.get("/api/v1/api-keys", &t.token).await.expect(200);
    assert_eq!(after[0]["active"], false);
    app.delete(
        &format!("/api/v1/api-keys/{}", uuid::Uuid::new_v4()),
        &t.token,
    )
    .await
    .expect_problem(404, "api_key.not_found");
}

#[tokio::test]
async fn api_key_input_is_validated() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/api-keys",
        &t.token,
        json!({"name": "x", "role": "ghost"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/api-keys",
        &t.token,
        json!({"name": "", "role": "viewer"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post("/api/v1/api-keys", &t.token, json!({"name": "x"}))
        .await
        .expect_problem(400, "request.invalid");
}
