use crate::helpers::TestApp;
use reqwest::Method;

#[tokio::test]
async fn health_readiness_metrics_and_docs() {
    let app = TestApp::spawn().await;
    let health = app
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health["status"], "ok");
    let ready = app
        .call(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    assert_eq!(ready["database"], "ok");
    app.signup().await;
    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    let text = metrics.as_str().expect("text");
    assert!(text.contains("crm_http_requests_total"), "{text}");
    assert!(
        text.contains("crm_signups_total{outcome=\"created\"} 1"),
        "{text}"
    );

    let spec = app
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200);
    assert!(spec["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/signup",
        "/auth/login",
        "/auth/logout",
        "/me",
        "/users",
        "/users/{id}",
        "/roles",
        "/roles/{name}",
        "/teams",
        "/teams/{id}/members",
        "/api-keys",
        "/api-keys/{id}",
        "/audit",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(spec["components"]["schemas"].get("Problem").is_some());
    let docs = app
        .client
        .get(format!("{}/api/docs/", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.expect("html").contains("swagger"));
}

#[tokio::test]
async fn every_response_has_a_request_id_and_errors_are_problems() {
    let app = TestApp::spawn().await;
    let resp = app.call(Method::GET, "/api/v1/nowhere", None, None).await;
    let id = resp
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("request id");
    let body = resp.expect_problem(404, "route.not_found");
    assert_eq!(body["request_id"], id.as_str());

    let given = app
        .send(
            app.client
                .get(format!("{}/healthz", app.base))
                .header("x-request-id", "trace-42"),
        )
        .await;
    assert_eq!(
        given
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );

    app.call(Method::DELETE, "/api/v1/me", None, None)
        .await
        .expect_problem(405, "route.method_not_allowed");
    // A NUL byte in any text that reaches the database is the caller's error, not ours.
    let t = app.signup().await;
    for path in [
        "/api/v1/customers?q=%00abc",
        "/api/v1/roles/ad%00min",
        "/api/v1/users?q=%00",
    ] {
        app.get(path, &t.token)
            .await
            .expect_problem(400, "request.invalid_text");
    }
    let not_json = app
        .send(
            app.client
                .post(format!("{}/api/v1/signup", app.base))
                .body("x"),
        )
        .await;
    not_json.expect_problem(415, "request.unsupported_media_type");
    let broken = app
        .send(
            app.client
                .post(format!("{}/api/v1/signup", app.base))
                .header("content-type", "application/json")
                .body("{oops"),
        )
        .await;
    broken.expect_problem(400, "request.invalid");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let big = format!("{{\"tenant_slug\":\"{}\"}}", "x".repeat(10_000));
    let declared = app
        .send(
            app.client
                .post(format!("{}/api/v1/signup", app.base))
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    declared.expect_problem(413, "request.too_large");
    // Chunked, without Content-Length.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let chunked = app
        .send(
            app.client
                .post(format!("{}/api/v1/signup", app.base))
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    chunked.expect_problem(413, "request.too_large");
}

#[tokio::test]
async fn the_tenant_openapi_document_lists_its_custom_fields() {
    let app = TestApp::spawn().await;
    let a = crate::helpers::TestApp::signup(&app).await;
    let b = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &a.token,
        serde_json::json!({"key": "tier", "label": "等级", "labels": {"en": "Tier"}, "type": "select", "options": ["gold", "silver"], "required": true}),
    )
    .await
    .expect(201);
    app.call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect_problem(401, "auth.unauthenticated");
    let spec = app.get("/api/v1/openapi.json", &a.token).await.expect(200);
    let tier = &spec["components"]["schemas"]["CustomerCustomFields"]["properties"]["tier"];
    assert_eq!(tier["enum"], serde_json::json!(["gold", "silver"]));
    assert_eq!(tier["title"], "等级");
    assert_eq!(
        spec["components"]["schemas"]["CustomerCustomFields"]["required"],
        serde_json::json!(["tier"])
    );
    let content = spec["paths"]["/customers"]["post"]["requestBody"]["content"]
        .as_object()
        .expect("content");
    let json_body = content
        .iter()
        .find(|(k, _)| k.starts_with("application/json"))
        .map(|(_, v)| v)
        .expect("json body");
    assert_eq!(
        json_body["schema"]["$ref"],
        "#/components/schemas/CustomerInput"
    );
    let other = app.get("/api/v1/openapi.json", &b.token).await.expect(200);
    assert!(
        other["components"]["schemas"]["CustomerCustomFields"]["properties"]
            .get("tier")
            .is_none()
    );
}

/// A request's statements run under `statement_timeout`: one blocked (here on a row lock held
/// elsewhere) ends in 503 `request.too_slow` instead of holding its connection for ever.
#[tokio::test]
async fn a_statement_past_the_request_timeout_is_a_503_that_says_so() {
    let app = TestApp::spawn_with(|c| c.request_statement_timeout_ms = 500).await;
    let t = app.signup().await;
    let customer = app
        .post(
            "/api/v1/customers",
            &t.token,
            serde_json::json!({"name": "锁等待测试"}),
        )
        .await
        .expect(201);
    let id = crate::helpers::id(&customer);
    let tenant_id: uuid::Uuid = t.id.parse().expect("tenant id");
    let ctx = crm_tenants::registry::by_id(&app.pool, tenant_id)
        .await
        .expect("registry")
        .expect("tenant")
        .ctx()
        .expect("ctx");
    let db = crm_core::db::Db::new(app.pool.clone(), app.config.tenant_isolation);
    let mut holder = db.tenant_tx(&ctx).await.expect("tx");
    sqlx::query("SELECT 1 FROM customers WHERE id = $1::uuid FOR UPDATE")
        .bind(&id)
        .execute(holder.conn())
        .await
        .expect("lock the row");
    let problem = app
        .patch(
            &format!("/api/v1/customers/{id}"),
            &t.token,
            serde_json::json!({"industry": "软件"}),
        )
        .await
        .expect_problem(503, "request.too_slow");
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("statement_timeout")));
    holder.commit().await.expect("release");
    app.patch(
        &format!("/api/v1/customers/{id}"),
        &t.token,
        serde_json::json!({"industry": "软件"}),
    )
    .await
    .expect(200);
}

/// `/metrics` is not public: with a token configured it wants the token; without one it
/// answers only direct local clients, never a request that came through a proxy.
#[tokio::test]
async fn metrics_need_the_token_or_a_direct_local_client() {
    let open = TestApp::spawn().await;
    open.call(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    let proxied = open
        .send(
            open.client
                .get(format!("{}/metrics", open.base))
                .header("x-forwarded-for", "203.0.113.7"),
        )
        .await;
    proxied.expect_problem(403, "metrics.local_only");

    let guarded = TestApp::spawn_with(|c| c.metrics_token = Some("scrape-token-4f2a".into())).await;
    guarded
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect_problem(401, "metrics.token_required");
    guarded
        .call(Method::GET, "/metrics", Some("wrong-token-0000"), None)
        .await
        .expect_problem(401, "metrics.token_required");
    let text = guarded
        .call(Method::GET, "/metrics", Some("scrape-token-4f2a"), None)
        .await
        .expect(200);
    assert!(text
        .as_str()
        .is_some_and(|t| t.contains("crm_http_requests_total")));
}
