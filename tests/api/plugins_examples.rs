//! The examples in `plugins/examples`, as an integrator would use them: uploaded, installed
//! and exercised on this machine.

use crate::helpers::{eventually, id, TestApp};
use crate::plugins::install;
use crate::rules::{header, webhook_sink};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

#[tokio::test]
async fn enrich_region_sets_a_customers_region_from_the_phone_prefix() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let enrich = install(
        &app,
        &t,
        "plugins/examples/enrich-region/enrich-region.wasm",
        json!({"grants": ["customers:read", "customers:update", "fields:manage"]}),
    )
    .await;
    let c = id(&app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "王小明", "phone": "13812345678"}),
        )
        .await
        .expect(201));
    let region = eventually("the region set", || async {
        let rec = app
            .get(&format!("/api/v1/customers/{c}"), &t.token)
            .await
            .expect(200);
        rec["region"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(region, "中国大陆（手机）");
    // Its own update did not come back to it: one run for the create.
    let runs = app
        .get(&format!("/api/v1/plugins/installs/{enrich}/runs"), &t.token)
        .await
        .expect(200);
    let for_c: Vec<&Value> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"]["record_id"] == c.as_str())
        .collect();
    assert_eq!(for_c.len(), 1, "{runs:#}");
    assert_eq!(for_c[0]["outcome"], "succeeded");
}

#[tokio::test]
async fn lead_import_creates_customers_from_a_posted_array() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let leads = install(
        &app,
        &t,
        "plugins/examples/lead-import/lead-import.wasm",
        json!({"grants": ["customers:create"], "limits": {"request_ms": 2000}}),
    )
    .await;
    let url = format!("{}/api/v1/ext/{leads}/leads", app.base);
    let body = json!([
        {"name": "李雷", "phone": "13900001111", "source": "展会"},
        {"name": "韩梅梅", "email": "han@example.com"},
        {"name": "坏号码", "phone": "12"},
        {"phone": "13900002222"}
    ]);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&t.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["created"], 2, "{out:#}");
    let failed: Vec<i64> = out["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_i64().unwrap())
        .collect();
    assert_eq!(failed, [2, 3], "{out:#}");
    let found = app.items("/api/v1/customers?q=李雷", &t.token).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["source"], "展会");
    // Not JSON: the plugin's own 400.
    let r = app
        .client
        .post(&url)
        .bearer_auth(&t.token)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A caller without customers:create is refused before the plugin runs.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.send(app.client.post(&url).bearer_auth(&viewer).json(&body))
        .await
        .expect_problem(403, "auth.forbidden");
    // No credential, no call.
    let r = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn webhook_forwarder_posts_signed_events_to_an_allowed_receiver() {
    let (url, port, got) = webhook_sink().await;
    let app = TestApp::spawn_with(|c| {
        c.outbound.allow_http = true;
        c.outbound.allow_private_addresses = true;
        c.outbound.allowed_ports = vec![port];
    })
    .await;
    let t = app.signup().await;
    install(
        &app,
        &t,
        "plugins/examples/webhook-forwarder/webhook-forwarder.wasm",
        json!({
            "config": {"url": format!("{url}/hook")},
            "secrets": {"signing_key": "k3y"},
            "allowed_hosts": ["127.0.0.1"],
        }),
    )
    .await;
    let c = id(&app
        .post("/api/v1/customers", &t.token, json!({"name": "转发测试"}))
        .await
        .expect(201));
    let (head, body) = eventually("the webhook", || async {
        got.lock().unwrap().first().cloned()
    })
    .await;
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["event"], "customers.created", "{sent:#}");
    assert_eq!(sent["record_id"], c.as_str());
    assert_eq!(
        header(&head, "x-crm-event").as_deref(),
        Some("customers.created")
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"k3y").unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(header(&head, "x-crm-signature"), Some(expected));
}
