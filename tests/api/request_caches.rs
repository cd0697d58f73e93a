//! One tenant transaction per request, with the caller's grants and the object schemas cached
//! per server and keyed by the tenant's policy and metadata versions: a change made through
//! one server holds on the very next request to another server, with no waiting.

use crate::helpers::TestApp;
use serde_json::json;

#[tokio::test]
async fn policy_and_field_changes_hold_at_once_on_every_server() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let peer = app.start_peer().await;
    let on_peer =
        |method: reqwest::Method, path: &str, token: &str, body: Option<serde_json::Value>| {
            let mut req = app
                .client
                .request(method, format!("http://{}{path}", peer.addr))
                .bearer_auth(token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            app.send(req)
        };
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "reader", "description": "只读客户", "permissions": ["customers:read"]}),
    )
    .await
    .expect(201);
    let (_, reader) = app.user_with_roles(&t, &["reader"]).await;

    // The peer caches the reader's grants and the customers schema…
    on_peer(reqwest::Method::GET, "/api/v1/customers", &reader, None)
        .await
        .expect(200);
    on_peer(reqwest::Method::GET, "/api/v1/customers", &t.token, None)
        .await
        .expect(200);
    // …then this server takes the permission away: the peer's next request is refused.
    app.patch(
        "/api/v1/roles/reader",
        &t.token,
        json!({"permissions": ["tickets:read"]}),
    )
    .await
    .expect(200);
    on_peer(reqwest::Method::GET, "/api/v1/customers", &reader, None)
        .await
        .expect_problem(403, "auth.forbidden");
    // Given back, it holds at once as well.
    app.patch(
        "/api/v1/roles/reader",
        &t.token,
        json!({"permissions": ["customers:read"]}),
    )
    .await
    .expect(200);
    on_peer(reqwest::Method::GET, "/api/v1/customers", &reader, None)
        .await
        .expect(200);

    // A field added through this server is known to the peer on its next request.
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "vip_level", "label": "VIP 等级", "type": "select", "options": ["金卡", "银卡"]}),
    )
    .await
    .expect(201);
    let created = on_peer(
        reqwest::Method::POST,
        "/api/v1/customers",
        &t.token,
        Some(json!({"name": "王芳", "custom": {"vip_level": "金卡"}})),
    )
    .await
    .expect(201);
    assert_eq!(created["custom"]["vip_level"], "金卡");
    // And one deleted is refused there at once.
    app.delete(
        "/api/v1/objects/customers/fields/vip_level?confirm=true",
        &t.token,
    )
    .await
    .expect(204);
    on_peer(
        reqwest::Method::POST,
        "/api/v1/customers",
        &t.token,
        Some(json!({"name": "李娜", "custom": {"vip_level": "金卡"}})),
    )
    .await
    .expect(422);

    // A deactivated user's session stops at once, however warm the caches are.
    let (user_id, token) = app.user_with_roles(&t, &["reader"]).await;
    on_peer(reqwest::Method::GET, "/api/v1/customers", &token, None)
        .await
        .expect(200);
    app.delete(&format!("/api/v1/users/{user_id}"), &t.token)
        .await
        .expect(204);
    on_peer(reqwest::Method::GET, "/api/v1/customers", &token, None)
        .await
        .expect_problem(401, "auth.invalid_token");
    peer.stop().await.expect("peer stops");
}

/// The credential is checked before a large body is read: an upload with a forged session
/// token of a real tenant is refused with 401 before its bytes are taken in.
#[tokio::test]
async fn large_bodies_wait_for_a_checked_credential() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let ticket = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "打印机坏了"}),
        )
        .await
        .expect(201);
    // A well-formed token of this tenant that was never issued.
    let forged = format!("{}x", &t.token[..t.token.len() - 1]);
    let boundary = "tc-crm-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(b'a', 200 * 1024));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    app.send(
        app.client
            .post(format!(
                "{}/api/v1/tickets/{}/attachments",
                app.base,
                ticket["id"].as_str().expect("id")
            ))
            .bearer_auth(&forged)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body),
    )
    .await
    .expect_problem(401, "auth.invalid_token");
}
