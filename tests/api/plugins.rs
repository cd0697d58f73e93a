//! WebAssembly plugins: packages are checked at upload; installs hold only granted
//! permissions; events reach installs as jobs, within fuel, memory and time limits, with no
//! files, environment or internal network; tenants stay apart; failing installs are disabled.
//! The components are the committed fixtures (`plugins/tests/fixtures`, built from C by its
//! `build.sh`) and examples (`plugins/examples`).

use crate::helpers::{eventually, id, Resp, Tenant, TestApp};
use serde_json::{json, Value};

const PROBE: &str = "plugins/tests/fixtures/probe.wasm";
const PROBE11: &str = "plugins/tests/fixtures/probe11.wasm";

fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Uploads a package as multipart/form-data (part `file`).
pub(crate) async fn upload(app: &TestApp, token: &str, wasm: Vec<u8>) -> Resp {
    let boundary = format!("----crm-test-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.wasm\"\r\nContent-Type: application/wasm\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(&wasm);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = app
        .client
        .post(format!("{}/api/v1/plugins/packages", app.base))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body);
    app.send(req).await
}

/// Uploads `path` and installs it with `extra` (grants, config, …); the install's id.
pub(crate) async fn install(app: &TestApp, t: &Tenant, path: &str, extra: Value) -> String {
    let package = upload(app, &t.token, bytes(path)).await.expect(201);
    let mut body = json!({ "package_id": package["id"] });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    id(&app
        .post("/api/v1/plugins/installs", &t.token, body)
        .await
        .expect(201))
}

async fn customer(app: &TestApp, t: &Tenant, name: &str) -> String {
    id(&app
        .post(
            "/api/v1/customers?allow_duplicate=true",
            &t.token,
            json!({ "name": name }),
        )
        .await
        .expect(201))
}

/// The install's runs, newest first.
async fn runs(app: &TestApp, t: &Tenant, install: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/plugins/installs/{install}/runs?limit=200"),
        &t.token,
    )
    .await
    .expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The first run of the install for record `record`, once there is one.
async fn run_for(app: &TestApp, t: &Tenant, install: &str, record: &str) -> Value {
    eventually(&format!("a run for {record}"), || async {
        runs(app, t, install)
            .await
            .into_iter()
            .rev()
            .find(|r| r["trigger"]["record_id"] == record)
    })
    .await
}

#[tokio::test]
async fn packages_are_checked_at_upload_and_installs_get_only_what_they_ask_and_the_admin_holds() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    upload(&app, &t.token, b"not wasm at all".to_vec())
        .await
        .expect_problem(422, "plugin.invalid");
    // A core module, not a component.
    upload(&app, &t.token, b"\0asm\x01\0\0\0".to_vec())
        .await
        .expect_problem(422, "plugin.invalid");
    let p = upload(&app, &t.token, bytes(PROBE)).await.expect(201);
    assert_eq!(p["name"], "probe");
    assert_eq!(p["wit_version"], "1.0.0");
    assert_eq!(p["manifest"]["events"], json!(["customers.*"]));
    assert_eq!(p["manifest"]["endpoints"][0]["path"], "echo");
    assert_eq!(
        p["manifest"]["permissions"],
        json!(["customers:read", "customers:update"])
    );
    upload(&app, &t.token, bytes(PROBE))
        .await
        .expect_problem(409, "plugin.exists");
    let listed = app
        .get("/api/v1/plugins/packages", &t.token)
        .await
        .expect(200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Grants: only what the manifest asks for; config: as its schema says; limits: within
    // the platform's maxima; hosts: names, not URLs.
    let install = |body: Value| app.post("/api/v1/plugins/installs", &t.token, body);
    let pid = p["id"].clone();
    let e = install(json!({"package_id": pid, "grants": ["tickets:read"]}))
        .await
        .expect(422);
    assert_eq!(e["errors"][0]["code"], "not_requested", "{e:#}");
    install(json!({"package_id": pid, "config": {"greeting": 5}}))
        .await
        .expect_problem(422, "plugin.config_invalid");
    install(json!({"package_id": pid, "limits": {"fuel": 999_000_000_000u64}}))
        .await
        .expect(422);
    install(json!({"package_id": pid, "allowed_hosts": ["https://x.example.com/path"]}))
        .await
        .expect(422);
    // Someone without plugins:manage installs nothing.
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.post(
        "/api/v1/plugins/installs",
        &sales,
        json!({"package_id": pid}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    let i = install(json!({
        "package_id": pid,
        "grants": ["customers:read"],
        "config": {"greeting": "你好"},
        "secrets": {"token": "s3cret"},
        "allowed_hosts": ["Hooks.Example.com", "*.feishu.cn"],
        "limits": {"fuel": 1000000},
    }))
    .await
    .expect(201);
    assert_eq!(i["enabled"], true);
    assert_eq!(i["secret_keys"], json!(["token"]));
    assert_eq!(
        i["allowed_hosts"],
        json!(["*.feishu.cn", "hooks.example.com"])
    );
    assert_eq!(i["limits"]["fuel"], 1000000);
    assert_eq!(i["limits"]["memory_mb"], 64);
    assert!(!i.to_string().contains("s3cret"), "secrets are never shown");
    let schema = app.schema_of(&t).await;
    let sealed: Vec<u8> = sqlx::query_scalar(&format!(
        "SELECT secrets FROM {schema}.plugin_installs WHERE id = $1::uuid"
    ))
    .bind(i["id"].as_str())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains("s3cret"),
        "sealed at rest"
    );
    // The package is in use.
    app.delete(
        &format!("/api/v1/plugins/packages/{}", p["id"].as_str().unwrap()),
        &t.token,
    )
    .await
    .expect_problem(409, "plugin.in_use");
    let audit = app
        .get("/api/v1/audit?limit=50", &t.token)
        .await
        .expect(200);
    assert!(audit.to_string().contains("plugin.installed"), "{audit:#}");
}

#[tokio::test]
async fn events_run_plugins_within_their_limits_and_grants_and_a_crash_leaves_the_server_serving() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let probe = install(
        &app,
        &t,
        PROBE,
        json!({
            "grants": ["customers:read"],
            "config": {"greeting": "你好"},
            "secrets": {"token": "abc"},
        }),
    )
    .await;

    // Without customers:update, the plugin's update is refused by the same service as REST.
    let c = customer(&app, &t, "probe:update").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert!(
        run["logs"]
            .as_str()
            .unwrap()
            .contains("update: err auth.forbidden"),
        "{run:#}"
    );
    assert_eq!(run["trigger"]["event"], "customers.created");

    // No files, no environment.
    let c = customer(&app, &t, "probe:files").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert!(
        run["logs"]
            .as_str()
            .unwrap()
            .contains("files: fopen=fail opendir=fail env=0"),
        "{run:#}"
    );

    // Config and secrets; the secret's value is not logged, only its length.
    let c = customer(&app, &t, "probe:config").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert!(
        run["logs"]
            .as_str()
            .unwrap()
            .contains("config: \"你好\" secret: 3"),
        "{run:#}"
    );

    // An infinite loop runs out of fuel; runaway memory hits its cap; a trap is a crash.
    for (marker, code) in [
        ("probe:loop", "plugin.fuel_exhausted"),
        ("probe:grow", "plugin.memory_limit"),
        ("probe:trap", "plugin.trap"),
    ] {
        let c = customer(&app, &t, marker).await;
        let run = run_for(&app, &t, &probe, &c).await;
        assert_eq!(run["outcome"], "failed", "{run:#}");
        assert_eq!(run["error"]["code"], code, "{run:#}");
        if code == "plugin.fuel_exhausted" {
            assert_eq!(run["fuel_used"], 50_000_000);
        }
        if code == "plugin.memory_limit" {
            assert!(run["memory_peak"].as_i64().unwrap() <= 64 << 20, "{run:#}");
        }
    }
    // The server still serves.
    app.client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    customer(&app, &t, "still serving").await;

    // Key/value data persists across calls of the install.
    for n in 1..=2 {
        let c = customer(&app, &t, "probe:kv").await;
        let run = run_for(&app, &t, &probe, &c).await;
        assert!(
            run["logs"].as_str().unwrap().contains(&format!("kv: {n}")),
            "{run:#}"
        );
    }

    // An action needs the grant too; with it, the change is the plugin's own in history.
    let c = customer(&app, &t, "probe:action").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["error"]["code"], "auth.forbidden", "{run:#}");
    app.patch(
        &format!("/api/v1/plugins/installs/{probe}"),
        &t.token,
        json!({"grants": ["customers:read", "customers:update"]}),
    )
    .await
    .expect(200);
    let c = customer(&app, &t, "probe:action").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    let rec = app
        .get(&format!("/api/v1/customers/{c}"), &t.token)
        .await
        .expect(200);
    assert_eq!(rec["level"], "B");
    let history = app
        .get(&format!("/api/v1/customers/{c}/history"), &t.token)
        .await
        .expect(200);
    assert!(
        history.to_string().contains("\"actor_kind\":\"plugin\""),
        "{history:#}"
    );
    // The plugin's own change does not come back to it as an event.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let for_c = runs(&app, &t, &probe)
        .await
        .into_iter()
        .filter(|r| r["trigger"]["record_id"] == c.as_str())
        .count();
    assert_eq!(for_c, 1, "one run: the create, not the plugin's own update");

    // Uninstalling removes the install's key/value data and runs.
    let schema = app.schema_of(&t).await;
    app.delete(&format!("/api/v1/plugins/installs/{probe}"), &t.token)
        .await
        .expect(204);
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM {schema}.plugin_kv) + (SELECT count(*) FROM {schema}.plugin_runs)"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_runaway_plugin_is_stopped_by_its_deadline() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let probe = install(
        &app,
        &t,
        PROBE,
        json!({"grants": ["customers:read"], "limits": {"fuel": 2_000_000_000u64, "event_ms": 200}}),
    )
    .await;
    let c = customer(&app, &t, "probe:loop").await;
    let run = run_for(&app, &t, &probe, &c).await;
    assert_eq!(run["error"]["code"], "plugin.timeout", "{run:#}");
    // Stopped near its deadline (an epoch tick is 10 ms), not when its fuel ran out.
    let ms = run["duration_ms"].as_f64().unwrap();
    assert!(ms < 2_000.0, "stopped after {ms} ms");
    assert!(run["fuel_used"].as_i64().unwrap() < 2_000_000_000);
}

#[tokio::test]
async fn http_fetch_is_refused_off_the_allow_list_to_internal_addresses_and_over_plain_http() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let probe = install(
        &app,
        &t,
        PROBE,
        json!({"grants": ["customers:read"], "allowed_hosts": ["localhost", "example.com"]}),
    )
    .await;
    for url in [
        "https://not-allowed.example.org/",
        "https://localhost/",
        "http://example.com/",
    ] {
        let c = customer(&app, &t, &format!("probe:fetch:{url}")).await;
        let run = run_for(&app, &t, &probe, &c).await;
        assert!(
            run["logs"]
                .as_str()
                .unwrap()
                .contains("fetch: err http.refused"),
            "{url}: {run:#}"
        );
    }
}

#[tokio::test]
async fn a_plugin_cannot_open_sockets_or_look_names_up() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let sockets = install(
        &app,
        &t,
        "plugins/tests/fixtures/sockets.wasm",
        json!({"grants": ["customers:read"]}),
    )
    .await;
    let c = customer(&app, &t, "网络探测").await;
    let run = run_for(&app, &t, &sockets, &c).await;
    let logs = run["logs"].as_str().unwrap();
    assert!(logs.contains("lookup: err"), "{run:#}");
    assert!(logs.contains("socket: err access-denied"), "{run:#}");
    assert!(!logs.contains(": ok"), "{run:#}");
}

#[tokio::test]
async fn an_install_never_hears_another_tenants_events_nor_reads_its_records() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let probe = install(&app, &a, PROBE, json!({"grants": ["customers:read"]})).await;
    let theirs = customer(&app, &b, "B 的客户").await;
    customer(&app, &b, "B 的第二个客户").await;
    let c = customer(&app, &a, &format!("probe:get:{theirs}")).await;
    let run = run_for(&app, &a, &probe, &c).await;
    assert!(
        run["logs"]
            .as_str()
            .unwrap()
            .contains("get: err record.not_found"),
        "{run:#}"
    );
    // Only A's own record's event reached A's install.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = runs(&app, &a, &probe).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    // B cannot see A's install.
    app.get(&format!("/api/v1/plugins/installs/{probe}"), &b.token)
        .await
        .expect_problem(404, "plugin.install_not_found");
}

#[tokio::test]
async fn a_1_0_plugin_runs_beside_a_1_1_plugin() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let old = install(&app, &t, PROBE, json!({"grants": ["customers:read"]})).await;
    let p11 = upload(&app, &t.token, bytes(PROBE11)).await.expect(201);
    assert_eq!(p11["wit_version"], "1.1.0");
    let new = id(&app
        .post(
            "/api/v1/plugins/installs",
            &t.token,
            json!({"package_id": p11["id"], "grants": ["customers:read", "customers:delete"]}),
        )
        .await
        .expect(201));
    let c = customer(&app, &t, "probe:delete").await;
    let run = run_for(&app, &t, &new, &c).await;
    assert!(
        run["logs"].as_str().unwrap().contains("delete: ok"),
        "{run:#}"
    );
    app.get(&format!("/api/v1/customers/{c}"), &t.token)
        .await
        .expect_problem(404, "record.not_found");
    let run = run_for(&app, &t, &old, &c).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
}

#[tokio::test]
async fn an_install_moves_to_another_version_of_its_plugin_only() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let probe = install(&app, &t, PROBE, json!({"grants": ["customers:read"]})).await;
    // The same plugin, version 1.0.1: the manifest's version literal (the one "1.0.0" not
    // preceded by '@') patched in place.
    let mut next = bytes(PROBE);
    let at = next
        .windows(7)
        .position(|w| w == b"\x001.0.0\x00")
        .expect("the version literal");
    next[at + 5] = b'1';
    let v101 = upload(&app, &t.token, next).await.expect(201);
    assert_eq!(v101["version"], "1.0.1");
    let i = app
        .patch(
            &format!("/api/v1/plugins/installs/{probe}"),
            &t.token,
            json!({"package_id": v101["id"]}),
        )
        .await
        .expect(200);
    assert_eq!(i["version"], "1.0.1");
    assert_eq!(i["grants"], json!(["customers:read"]));
    let c = customer(&app, &t, "升级之后").await;
    assert_eq!(run_for(&app, &t, &probe, &c).await["outcome"], "succeeded");
    // Another plugin is not an upgrade.
    let other = upload(&app, &t.token, bytes(PROBE11)).await.expect(201);
    let e = app
        .patch(
            &format!("/api/v1/plugins/installs/{probe}"),
            &t.token,
            json!({"package_id": other["id"]}),
        )
        .await
        .expect(422);
    assert_eq!(e["errors"][0]["code"], "other_plugin", "{e:#}");
}

#[tokio::test]
async fn an_install_that_keeps_failing_is_disabled_and_its_admin_notified() {
    let app = TestApp::spawn_with(|c| c.plugins.disable_after_failures = 3).await;
    let t = app.signup().await;
    let probe = install(&app, &t, PROBE, json!({"grants": ["customers:read"]})).await;
    for _ in 0..3 {
        let c = customer(&app, &t, "probe:trap").await;
        run_for(&app, &t, &probe, &c).await;
    }
    let i = eventually("the install disabled", || async {
        let i = app
            .get(&format!("/api/v1/plugins/installs/{probe}"), &t.token)
            .await
            .expect(200);
        (i["enabled"] == false).then_some(i)
    })
    .await;
    assert!(
        i["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed runs"),
        "{i:#}"
    );
    let notes = app.get("/api/v1/notifications", &t.token).await.expect(200);
    assert!(notes.to_string().contains("plugin.disabled"), "{notes:#}");
    // Counted in /metrics, per install too.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "crm_plugin_install_failures_total{{install=\"{probe}\"}} 3"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("crm_plugin_calls_total{outcome=\"failed\",trigger=\"event\"}"));
    // Disabled: no more events.
    let c = customer(&app, &t, "after disabling").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(runs(&app, &t, &probe)
        .await
        .iter()
        .all(|r| r["trigger"]["record_id"] != c.as_str()));
    let i = app
        .patch(
            &format!("/api/v1/plugins/installs/{probe}"),
            &t.token,
            json!({"enabled": true}),
        )
        .await
        .expect(200);
    assert_eq!(i["consecutive_failures"], 0);
    assert!(i.get("disabled_reason").is_none_or(Value::is_null));
}

#[tokio::test]
async fn rules_call_plugins_with_a_payload() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let probe = install(&app, &t, PROBE, json!({"grants": ["customers:read"]})).await;
    app.post(
        "/api/v1/rules",
        &t.token,
        json!({
            "name": "大客户交给插件",
            "object": "customers",
            "trigger": {"event": "customer.created"},
            "condition": "record.name.contains(\"大客户\")",
            "script": "call_plugin(\"probe\", #{reason: \"vip\", name: record.name});",
        }),
    )
    .await
    .expect(201);
    let c = customer(&app, &t, "大客户 甲").await;
    let run = eventually("the rule's call of the plugin", || async {
        runs(&app, &t, &probe)
            .await
            .into_iter()
            .find(|r| r["trigger"]["kind"] == "rule")
    })
    .await;
    assert_eq!(run["trigger"]["record_id"], c.as_str(), "{run:#}");
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert!(
        run["logs"].as_str().unwrap().contains("event: rule.call"),
        "{run:#}"
    );
}
