//! Plugin endpoints (`/api/v1/ext/{install}/{path}`) with the probe fixture
//! (`plugins/tests/fixtures/probe.wasm`, endpoint `POST echo` needing `customers:read`):
//! served with the caller's credential, listed in the tenant's OpenAPI document for callers
//! holding the permission, and reachable from GraphQL under `ext` through the same checks;
//! a disabled install drops out of both.

use crate::helpers::{eventually, Tenant, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ECHO_FIELD: &str = "probe_post_echo";

/// Uploads the probe and installs it with `customers:read` (and `extra`); the install id.
async fn install_probe(app: &TestApp, t: &Tenant, extra: Value) -> String {
    let mut request = json!({ "grants": ["customers:read"] });
    if let (Some(r), Some(e)) = (request.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    crate::plugins::install(app, t, "plugins/tests/fixtures/probe.wasm", request).await
}

async fn gql(app: &TestApp, token: &str, query: &str) -> Value {
    app.send(
        app.client
            .post(format!("{}/graphql", app.base))
            .bearer_auth(token)
            .json(&json!({ "query": query })),
    )
    .await
    .expect(200)
}

async fn echo(app: &TestApp, token: &str, install: &str, body: &str) -> crate::helpers::Resp {
    app.send(
        app.client
            .post(format!("{}/api/v1/ext/{install}/echo", app.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

fn spec_op<'a>(spec: &'a Value, install: &str) -> &'a Value {
    &spec["paths"][format!("/ext/{install}/echo")]["post"]
}

#[tokio::test]
async fn plugin_endpoints_are_served_documented_and_in_graphql() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let other = app.signup().await;
    let install = install_probe(&app, &t, json!({})).await;

    // (a) REST: the body back, and the caller as the plugin saw it.
    let body = r#"{"hi":"你好"}"#;
    let resp = echo(&app, &t.token, &install, body).await;
    assert_eq!(resp.status.as_u16(), 200, "{:#}", resp.body);
    assert_eq!(resp.body, json!({"hi": "你好"}));
    assert_eq!(
        resp.headers
            .get("x-probe-user")
            .and_then(|v| v.to_str().ok()),
        Some(t.admin_id.as_str())
    );
    // What a plugin answers never runs as a page of the platform's origin.
    assert_eq!(
        resp.headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok()),
        Some("sandbox; default-src 'none'")
    );
    assert_eq!(
        resp.headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );

    // (b) The tenant's OpenAPI document lists the endpoint; another tenant's does not.
    let spec = app.get("/api/v1/openapi.json", &t.token).await.expect(200);
    let op = spec_op(&spec, &install);
    assert_eq!(op["summary"], "Echoes the body", "{op:#}");
    assert_eq!(op["tags"], json!(["Plugin: probe"]));
    assert!(op["requestBody"]["content"]["*/*"].is_object(), "{op:#}");
    for status in ["200", "401", "403", "404", "409", "413", "502", "504"] {
        assert!(op["responses"][status].is_object(), "{status}: {op:#}");
    }
    assert_eq!(
        op["security"],
        spec["paths"]["/openapi.json"]["get"]["security"]
    );
    let theirs = app
        .get("/api/v1/openapi.json", &other.token)
        .await
        .expect(200);
    let ext_paths = |s: &Value| {
        s["paths"]
            .as_object()
            .map(|p| p.keys().filter(|k| k.starts_with("/ext/")).count())
            .unwrap_or_default()
    };
    assert_eq!(ext_paths(&theirs), 0);
    // A user without customers:read cannot call it (nor read the document, which needs
    // read access to every built-in object).
    let (_, nobody) = app.user_with_roles(&t, &[]).await;
    echo(&app, &nobody, &install, "{}")
        .await
        .expect_problem(403, "auth.forbidden");

    // (c) GraphQL: the same endpoint as a mutation under `ext`, through the same checks.
    let called = gql(
        &app,
        &t.token,
        &format!(r#"mutation {{ ext {{ {ECHO_FIELD}(body: "{{\"a\":1}}") {{ status body headers {{ name value }} }} }} }}"#),
    )
    .await;
    assert!(called.get("errors").is_none(), "{called:#}");
    let answer = &called["data"]["ext"][ECHO_FIELD];
    assert_eq!(answer["status"], 200, "{called:#}");
    assert_eq!(answer["body"], r#"{"a":1}"#);
    assert!(
        answer["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "x-probe-user" && h["value"] == t.admin_id.as_str()),
        "{called:#}"
    );
    let refused = gql(
        &app,
        &nobody,
        &format!("mutation {{ ext {{ {ECHO_FIELD} {{ status }} }} }}"),
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "auth.forbidden",
        "{refused:#}"
    );
    let other_schema = gql(&app, &other.token, "mutation { ext { __typename } }").await;
    assert_eq!(
        other_schema["errors"][0]["extensions"]["code"], "graphql.invalid_query",
        "{other_schema:#}"
    );

    // (d) Disabled: gone from GraphQL and the document, 409 from REST.
    app.patch(
        &format!("/api/v1/plugins/installs/{install}"),
        &t.token,
        json!({"enabled": false}),
    )
    .await
    .expect(200);
    let gone = gql(
        &app,
        &t.token,
        &format!("mutation {{ ext {{ {ECHO_FIELD} {{ status }} }} }}"),
    )
    .await;
    assert_eq!(
        gone["errors"][0]["extensions"]["code"], "graphql.invalid_query",
        "{gone:#}"
    );
    let spec = app.get("/api/v1/openapi.json", &t.token).await.expect(200);
    assert!(spec_op(&spec, &install).is_null());
    echo(&app, &t.token, &install, "{}")
        .await
        .expect_problem(409, "plugin.disabled");

    // Enabled again: back in the schema.
    app.patch(
        &format!("/api/v1/plugins/installs/{install}"),
        &t.token,
        json!({"enabled": true}),
    )
    .await
    .expect(200);
    let back = gql(
        &app,
        &t.token,
        &format!(r#"mutation {{ ext {{ {ECHO_FIELD}(body: "x") {{ body }} }} }}"#),
    )
    .await;
    assert_eq!(back["data"]["ext"][ECHO_FIELD]["body"], "x", "{back:#}");
}

#[tokio::test]
async fn only_declared_paths_reach_a_plugin_and_a_loop_times_out() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    // Fuel enough to outlast the deadline (the default 50 million runs out in some 20 ms).
    let limits = json!({ "limits": { "event_ms": 200, "fuel": 2_000_000_000u64 } });
    let install = install_probe(&app, &t, limits).await;

    // (e) The probe loops forever on `loop`, but its manifest declares only `echo`: the
    // door refuses the path before the plugin runs.
    let started = Instant::now();
    app.post(&format!("/api/v1/ext/{install}/loop"), &t.token, json!({}))
        .await
        .expect_problem(404, "plugin.endpoint_not_found");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The same loop reached through an event stops at the install's deadline.
    app.post("/api/v1/customers", &t.token, json!({"name": "probe:loop"}))
        .await
        .expect(201);
    let path = format!("/api/v1/plugins/installs/{install}/runs");
    let failed = eventually("the looping run to fail", || async {
        app.items(&path, &t.token)
            .await
            .into_iter()
            .find(|r| r["outcome"] == "failed")
    })
    .await;
    assert_eq!(failed["error"]["code"], "plugin.timeout", "{failed:#}");
    assert!(
        failed["duration_ms"].as_f64().unwrap() < 2_000.0,
        "{failed:#}"
    );
}
