//! Tickets on the record engine: numbers, the status machine, SLA due times and timers,
//! the conversation and team assignment.

use crate::helpers::{eventually, id, Tenant, TestApp};
use crate::mail::eml_files;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("timestamp").parse().expect("rfc3339")
}

async fn ticket(app: &TestApp, t: &Tenant, body: Value) -> Value {
    app.post("/api/v1/tickets", &t.token, body)
        .await
        .expect(201)
}

/// A 24×7 calendar and a policy on it for `priority` with these targets (minutes), tried first.
async fn round_the_clock_policy(
    app: &TestApp,
    t: &Tenant,
    priority: &str,
    fr: i64,
    res: i64,
) -> String {
    let hours: Value = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| (d.to_string(), json!([{"start": "00:00", "end": "24:00"}])))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let cal = app
        .post(
            "/api/v1/business-calendars",
            &t.token,
            json!({"name": "7×24", "spec": {"timezone": "Asia/Shanghai", "hours": hours, "holidays": [], "workdays": []}}),
        )
        .await
        .expect(201);
    let policy = app
        .post(
            "/api/v1/sla-policies",
            &t.token,
            json!({"name": "VIP 7×24", "position": 1, "priorities": [priority],
                   "first_response_minutes": fr, "resolution_minutes": res, "calendar_id": cal["id"]}),
        )
        .await
        .expect(201);
    id(&policy)
}

#[tokio::test]
async fn tickets_get_numbers_defaults_and_sla_due_times_in_business_hours() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let customer = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "上海蓝天贸易", "level": "A"}),
        )
        .await
        .expect(201);
    let first = ticket(&app, &t, json!({"subject": "打印机卡纸", "customer_id": customer["id"], "channel": "phone", "type": "service_request"})).await;
    assert_eq!(first["number"], "T-000001");
    assert_eq!(first["status"], "new");
    assert_eq!(first["priority"], "normal");
    assert!(
        first["assignee_id"].is_null(),
        "not assigned to its creator"
    );
    assert!(first["sla_policy_id"].is_string());
    // The default "normal" policy: 4 business hours to respond, 24 to resolve, Mon-Fri 9-18
    // Shanghai: both are due inside office hours, and resolution comes later.
    let fr = at(&first["first_response_due_at"]);
    let res = at(&first["resolution_due_at"]);
    assert!(fr > Utc::now() && res > fr);
    let shanghai = |d: DateTime<Utc>| d.with_timezone(&chrono_tz::Asia::Shanghai);
    use chrono::{Datelike, Timelike};
    for due in [fr, res] {
        let local = shanghai(due);
        assert!(local.weekday().num_days_from_monday() < 5, "{local}");
        assert!((9..=18).contains(&local.hour()), "{local}");
    }
    let second = ticket(
        &app,
        &t,
        json!({"subject": "发票抬头错误", "priority": "urgent", "type": "complaint"}),
    )
    .await;
    assert_eq!(second["number"], "T-000002");
    assert!(
        at(&second["first_response_due_at"]) < fr,
        "urgent responds sooner"
    );

    // Numbers and SLA columns are the server's.
    app.patch(
        &format!("/api/v1/tickets/{}", id(&first)),
        &t.token,
        json!({"number": "T-9"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    // Unknown type, channel, team are refused with what to do.
    let bad = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "x", "type": "gossip", "channel": "fax"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(fields.contains(&"channel"), "{bad:#}");
    app.post(
        "/api/v1/tickets",
        &t.token,
        json!({"subject": "x", "type": "gossip"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/tickets",
        &t.token,
        json!({"subject": "x", "team_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect_problem(422, "validation.failed");

    // The record engine's list, filter, search and history work on tickets.
    let list = app
        .get("/api/v1/tickets?filter[priority]=urgent", &t.token)
        .await
        .expect(200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let found = app
        .get("/api/v1/tickets?q=打印机", &t.token)
        .await
        .expect(200);
    assert_eq!(found["items"][0]["number"], "T-000001");
    let sorted = app
        .get("/api/v1/tickets?sort=-number", &t.token)
        .await
        .expect(200);
    assert_eq!(sorted["items"][0]["number"], "T-000002");
    // And the customer's timeline shows the ticket.
    let timeline = app
        .get(
            &format!("/api/v1/customers/{}/timeline", id(&customer)),
            &t.token,
        )
        .await
        .expect(200);
    assert!(timeline["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["kind"] == "ticket" && e["data"]["number"] == "T-000001"));
}

#[tokio::test]
async fn the_status_machine_allows_only_its_transitions_and_is_the_tenants_own() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let tk = ticket(&app, &t, json!({"subject": "无法登录"})).await;
    let path = format!("/api/v1/tickets/{}", id(&tk));
    for status in ["open", "pending", "open", "resolved"] {
        let r = app
            .patch(&path, &t.token, json!({"status": status}))
            .await
            .expect(200);
        assert_eq!(r["status"], status);
    }
    let resolved = app.get(&path, &t.token).await.expect(200);
    assert!(resolved["resolved_at"].is_string());
    let refused = app
        .patch(&path, &t.token, json!({"status": "pending"}))
        .await
        .expect_problem(409, "ticket.invalid_transition");
    assert_eq!(refused["allowed"], json!(["open", "closed"]));
    // Reopen from resolved clears the resolution; close is final.
    let reopened = app
        .patch(&path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    assert!(reopened["resolved_at"].is_null());
    app.patch(&path, &t.token, json!({"status": "closed"}))
        .await
        .expect(200);
    let closed = app
        .patch(&path, &t.token, json!({"status": "open"}))
        .await
        .expect_problem(409, "ticket.invalid_transition");
    assert_eq!(closed["allowed"], json!([]));
    app.patch(&path, &t.token, json!({"status": "limbo"}))
        .await
        .expect_problem(422, "validation.failed");
    // Status changes are in the history and the outbox.
    let history = app
        .get(&format!("{path}/history"), &t.token)
        .await
        .expect(200);
    let moves = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|h| h["action"] != "created" && h["changes"].get("status").is_some())
        .count();
    assert_eq!(moves, 6);
    let schema = app.schema_of(&t).await;
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".outbox WHERE event = 'ticket.status_changed'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(events, 6);

    // The tenant adds a state "waiting for parts" (pausing SLA) and a ticket type.
    let mut wf = app
        .get("/api/v1/ticket-workflow", &t.token)
        .await
        .expect(200);
    wf["states"]
        .as_array_mut()
        .expect("states")
        .push(json!({"key": "parts", "name": "等待配件", "sla": "paused"}));
    wf["transitions"]["open"]
        .as_array_mut()
        .expect("open")
        .push(json!("parts"));
    wf["transitions"]["parts"] = json!(["open", "resolved"]);
    wf["types"]
        .as_array_mut()
        .expect("types")
        .push(json!("installation"));
    let saved = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/ticket-workflow",
            Some(&t.token),
            Some(wf.clone()),
        )
        .await
        .expect(200);
    assert_eq!(saved["states"].as_array().map(Vec::len), Some(6));
    let other = ticket(
        &app,
        &t,
        json!({"subject": "安装空调", "type": "installation"}),
    )
    .await;
    let other_path = format!("/api/v1/tickets/{}", id(&other));
    app.patch(&other_path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    let parked = app
        .patch(&other_path, &t.token, json!({"status": "parts"}))
        .await
        .expect(200);
    assert!(
        parked["sla_paused_at"].is_string(),
        "a paused state stops the clock"
    );
    // A state tickets are in cannot be removed; a broken workflow is refused with paths.
    let mut without = wf.clone();
    without["states"]
        .as_array_mut()
        .expect("states")
        .retain(|s| s["key"] != "parts");
    without["transitions"]
        .as_object_mut()
        .expect("t")
        .remove("parts");
    without["transitions"]["open"]
        .as_array_mut()
        .expect("open")
        .retain(|s| s != "parts");
    app.call(
        reqwest::Method::PUT,
        "/api/v1/ticket-workflow",
        Some(&t.token),
        Some(without),
    )
    .await
    .expect_problem(409, "ticket_workflow.state_in_use");
    let mut broken = wf.clone();
    broken["initial"] = json!("nowhere");
    app.call(
        reqwest::Method::PUT,
        "/api/v1/ticket-workflow",
        Some(&t.token),
        Some(broken),
    )
    .await
    .expect_problem(422, "validation.failed");
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.call(
        reqwest::Method::PUT,
        "/api/v1/ticket-workflow",
        Some(&sales),
        Some(wf),
    )
    .await
    .expect_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn pausing_shifts_due_times_and_replies_stop_the_first_response_clock() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    round_the_clock_policy(&app, &t, "high", 60, 240).await;
    let contact_customer = app
        .post("/api/v1/customers", &t.token, json!({"name": "王先生"}))
        .await
        .expect(201);
    let contact = app
        .post("/api/v1/contacts", &t.token, json!({"name": "王磊", "customer_id": contact_customer["id"], "email": "wang.lei@example.com"}))
        .await
        .expect(201);
    let tk = ticket(&app, &t, json!({"subject": "空调不制冷", "priority": "high", "customer_id": contact_customer["id"], "contact_id": contact["id"]})).await;
    let path = format!("/api/v1/tickets/{}", id(&tk));
    let created = at(&tk["created_at"]);
    let fr = at(&tk["first_response_due_at"]);
    let res = at(&tk["resolution_due_at"]);
    // 7×24: due exactly after the targets.
    assert!(
        (fr - created - chrono::Duration::minutes(60))
            .num_seconds()
            .abs()
            <= 1,
        "{fr} vs {created}"
    );
    assert!(
        (res - created - chrono::Duration::minutes(240))
            .num_seconds()
            .abs()
            <= 1
    );

    // Pending pauses the clock; back to open shifts the due times by the pause.
    app.patch(&path, &t.token, json!({"status": "pending"}))
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let resumed = app
        .patch(&path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    assert!(resumed["sla_paused_at"].is_null());
    let shift = (at(&resumed["resolution_due_at"]) - res).num_milliseconds();
    assert!(
        (2000..6000).contains(&shift),
        "shifted by the pause: {shift} ms"
    );
    let fr_shift = (at(&resumed["first_response_due_at"]) - fr).num_milliseconds();
    assert!((2000..6000).contains(&fr_shift), "{fr_shift} ms");

    // An internal note is not a response; a public reply is, and is mailed to the contact.
    let note = app
        .post(
            &format!("{path}/comments"),
            &t.token,
            json!({"body": "客户说上周也坏过", "public": false}),
        )
        .await
        .expect(201);
    assert_eq!(note["public"], false);
    assert_eq!(note["author_name"], "张伟");
    assert!(app.get(&path, &t.token).await.expect(200)["first_responded_at"].is_null());
    app.post(
        &format!("{path}/comments"),
        &t.token,
        json!({"body": "师傅明天上午上门检修", "public": true}),
    )
    .await
    .expect(201);
    let replied = app.get(&path, &t.token).await.expect(200);
    assert!(replied["first_responded_at"].is_string());
    let listed = app
        .get(&format!("{path}/comments"), &t.token)
        .await
        .expect(200);
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(listed["items"][0]["body"], "客户说上周也坏过");
    app.post(
        &format!("{path}/comments"),
        &t.token,
        json!({"body": "  ", "public": true}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let mails = eventually("the reply mail", || async {
        let m = eml_files(&app.config.data_dir, &t.slug);
        m.iter()
            .any(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("有新回复"))
            })
            .then_some(m)
    })
    .await;
    let reply = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("有新回复"))
        })
        .expect("reply");
    assert!(reply["to"]
        .as_str()
        .expect("to")
        .contains("wang.lei@example.com"));
    assert!(reply["body"]
        .as_str()
        .expect("body")
        .contains("师傅明天上午上门检修"));
    assert!(
        !mails
            .iter()
            .any(|m| m["body"].as_str().is_some_and(|b| b.contains("上周也坏过"))),
        "notes are never mailed"
    );
}

#[tokio::test]
async fn sla_warning_and_breach_are_emitted_once_per_target_across_a_restart() {
    let mut app = TestApp::spawn().await;
    let t = app.signup().await;
    round_the_clock_policy(&app, &t, "urgent", 10, 600).await;
    let team = app
        .post("/api/v1/teams", &t.token, json!({"name": "一线客服"}))
        .await
        .expect(201);
    let (agent, agent_token) = app.user_with_roles(&t, &["service"]).await;
    app.post(
        &format!("/api/v1/teams/{}/members", id(&team)),
        &t.token,
        json!({"user_id": agent}),
    )
    .await
    .expect(204);
    let tk = ticket(
        &app,
        &t,
        json!({"subject": "系统宕机", "priority": "urgent", "team_id": team["id"]}),
    )
    .await;
    // As if the ticket had waited 9 minutes: the 80% warning (8 min) is past, the breach
    // (10 min) is a minute away. A priority round-trip makes the server recompute.
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!("UPDATE \"{schema}\".tickets SET created_at = now() - interval '9 minutes' WHERE id = $1::uuid"))
        .bind(id(&tk))
        .execute(&app.pool)
        .await
        .expect("age the ticket");
    let path = format!("/api/v1/tickets/{}", id(&tk));
    app.patch(&path, &t.token, json!({"priority": "high"}))
        .await
        .expect(200);
    app.patch(&path, &t.token, json!({"priority": "urgent"}))
        .await
        .expect(200);
    let pool = app.pool.clone();
    let count = |event: &'static str| {
        let pool = pool.clone();
        let schema = schema.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!(
                "SELECT count(*) FROM \"{schema}\".outbox WHERE event = $1"
            ))
            .bind(event)
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    eventually("the warning", || async {
        (count("ticket.sla_warning").await == 1).then_some(())
    })
    .await;
    // The warning went to the team, in-app and by mail.
    let notes = app
        .get("/api/v1/notifications", &agent_token)
        .await
        .expect(200);
    assert!(
        notes["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|n| n["kind"] == "ticket.sla_warning"),
        "{notes:#}"
    );
    eventually("the warning mail", || async {
        eml_files(&app.config.data_dir, &t.slug)
            .iter()
            .any(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("SLA 预警"))
            })
            .then_some(())
    })
    .await;

    // Breach: move it past due, restart the server meanwhile; still exactly once each.
    sqlx::query(&format!("UPDATE \"{schema}\".tickets SET created_at = now() - interval '11 minutes' WHERE id = $1::uuid"))
        .bind(id(&tk))
        .execute(&app.pool)
        .await
        .expect("age again");
    app.patch(&path, &t.token, json!({"priority": "high"}))
        .await
        .expect(200);
    app.restart().await;
    app.patch(&path, &t.token, json!({"priority": "urgent"}))
        .await
        .expect(200);
    eventually("the breach", || async {
        (count("ticket.sla_breached").await == 1).then_some(())
    })
    .await;
    app.restart().await;
    app.patch(&path, &t.token, json!({"priority": "high"}))
        .await
        .expect(200);
    app.patch(&path, &t.token, json!({"priority": "urgent"}))
        .await
        .expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(count("ticket.sla_warning").await, 1);
    assert_eq!(count("ticket.sla_breached").await, 1);
    let payload: Value = sqlx::query_scalar(&format!(
        "SELECT payload FROM \"{schema}\".outbox WHERE event = 'ticket.sla_breached'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("payload");
    assert_eq!(payload["target"], "first_response");
    // Answering stops the clock: no resolution events yet, no first-response timers left.
    app.post(
        &format!("{path}/comments"),
        &t.token,
        json!({"body": "已收到，正在处理", "public": true}),
    )
    .await
    .expect(201);
    let pending = app
        .get(
            &format!(
                "/api/v1/jobs?kind=ticket.sla&subject_id={}&status=pending",
                id(&tk)
            ),
            &t.token,
        )
        .await
        .expect(200);
    assert!(pending["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|j| j["status"] == "pending"));
}

#[tokio::test]
async fn round_robin_and_least_open_assignment_are_fair_and_skip_the_away() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let team = app
        .post("/api/v1/teams", &t.token, json!({"name": "售后组"}))
        .await
        .expect(201);
    let team_id = id(&team);
    let mut agents = Vec::new();
    for _ in 0..3 {
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
    // Manual by default: nobody is picked.
    let manual = ticket(&app, &t, json!({"subject": "手动", "team_id": team_id})).await;
    assert!(manual["assignee_id"].is_null());
    app.call(
        reqwest::Method::PUT,
        &format!("/api/v1/teams/{team_id}/assignment"),
        Some(&t.token),
        Some(json!({"mode": "round_robin"})),
    )
    .await
    .expect(200);
    let mut counts = std::collections::HashMap::new();
    for i in 0..9 {
        let tk = ticket(
            &app,
            &t,
            json!({"subject": format!("轮询 {i}"), "team_id": team_id}),
        )
        .await;
        *counts
            .entry(tk["assignee_id"].as_str().expect("assigned").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|n| *n == 3), "{counts:?}");
    // Each assignee is told: in-app and by mail.
    let email = app
        .get(&format!("/api/v1/users/{}", agents[0]), &t.token)
        .await
        .expect(200)["email"]
        .as_str()
        .expect("email")
        .to_owned();
    let mails = eventually("the assignment mails", || async {
        let m: Vec<Value> = eml_files(&app.config.data_dir, &t.slug)
            .into_iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("新工单 T-"))
            })
            .collect();
        (m.len() >= 9).then_some(m)
    })
    .await;
    let to_first: Vec<&Value> = mails
        .iter()
        .filter(|m| m["to"].as_str().is_some_and(|to| to.contains(&email)))
        .collect();
    assert_eq!(to_first.len(), 3, "{mails:#?}");
    assert!(to_first[0]["body"]
        .as_str()
        .expect("body")
        .contains("已分配给您"));

    // Away agents are skipped.
    app.call(
        reqwest::Method::PUT,
        &format!("/api/v1/users/{}/availability", agents[0]),
        Some(&t.token),
        Some(json!({"available": false})),
    )
    .await
    .expect(204);
    for i in 0..4 {
        let tk = ticket(
            &app,
            &t,
            json!({"subject": format!("休假 {i}"), "team_id": team_id}),
        )
        .await;
        assert_ne!(tk["assignee_id"], agents[0].as_str());
    }
    app.call(
        reqwest::Method::PUT,
        &format!("/api/v1/users/{}/availability", agents[0]),
        Some(&t.token),
        Some(json!({"available": true})),
    )
    .await
    .expect(204);

    // Least open: the returning agent (fewest open tickets) gets the next ones until level.
    app.call(
        reqwest::Method::PUT,
        &format!("/api/v1/teams/{team_id}/assignment"),
        Some(&t.token),
        Some(json!({"mode": "least_open"})),
    )
    .await
    .expect(200);
    let before = app
        .get(&format!("/api/v1/teams/{team_id}/assignment"), &t.token)
        .await
        .expect(200);
    let load = |v: &Value, who: &str| {
        v["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["user_id"] == who)
            .expect("member")["open_tickets"]
            .as_i64()
            .expect("n")
    };
    assert_eq!(load(&before, &agents[0]), 3);
    assert_eq!(load(&before, &agents[1]) + load(&before, &agents[2]), 10);
    for i in 0..2 {
        let tk = ticket(
            &app,
            &t,
            json!({"subject": format!("最少 {i}"), "team_id": team_id}),
        )
        .await;
        assert_eq!(
            tk["assignee_id"],
            agents[0].as_str(),
            "the least loaded first"
        );
    }
    let after = app
        .get(&format!("/api/v1/teams/{team_id}/assignment"), &t.token)
        .await
        .expect(200);
    let loads: Vec<i64> = agents.iter().map(|a| load(&after, a)).collect();
    assert!(
        loads.iter().max().expect("max") - loads.iter().min().expect("min") <= 1,
        "{loads:?}"
    );

    // Resolved tickets do not count as load; reassignment is in the history.
    let tk = ticket(&app, &t, json!({"subject": "改派", "team_id": team_id})).await;
    let path = format!("/api/v1/tickets/{}", id(&tk));
    let first = tk["assignee_id"].as_str().expect("assigned").to_owned();
    let other = agents.iter().find(|a| **a != first).expect("other").clone();
    app.patch(&path, &t.token, json!({"assignee_id": other}))
        .await
        .expect(200);
    let history = app
        .get(&format!("{path}/history"), &t.token)
        .await
        .expect(200);
    let items = history["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|h| h["action"] == "assigned"
                && h["changes"]["assignee_id"]["after"] == first.as_str()),
        "{history:#}"
    );
    assert!(
        items
            .iter()
            .any(|h| h["changes"]["assignee_id"]["after"] == other.as_str()),
        "{history:#}"
    );
    app.call(
        reqwest::Method::PUT,
        &format!("/api/v1/teams/{team_id}/assignment"),
        Some(&t.token),
        Some(json!({"mode": "lottery"})),
    )
    .await
    .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn a_company_can_send_through_its_own_smtp_server() {
    let smtp = crate::mail::SmtpServer::start().await;
    // The test's SMTP server listens on loopback, on a port of its own: allowed here only.
    let port = smtp.port;
    let app = TestApp::spawn_with(|c| {
        c.mail.tenant_smtp_allow_private = true;
        c.mail.tenant_smtp_ports = vec![port];
    })
    .await;
    let own = app.signup_verified().await;
    let default = app.signup().await;
    let current = app
        .get("/api/v1/settings/mail", &own.token)
        .await
        .expect(200);
    assert_eq!(current["uses_server_transport"], true);
    let bad = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/mail",
            Some(&own.token),
            Some(json!({"from": "nobody", "smtp_url": "ftp://x"})),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"].as_array().map(Vec::len), Some(2));
    // Credentials are shown masked and stored sealed, never in clear.
    let with_password = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/mail",
            Some(&own.token),
            Some(json!({"smtp_url": "smtp://crm:s3cret@smtp.lantian.example:587?tls=required"})),
        )
        .await
        .expect(200);
    assert_eq!(
        with_password["smtp_url"],
        "smtp://crm:***@smtp.lantian.example:587?tls=required"
    );
    let schema = app.schema_of(&own).await;
    let stored: Vec<u8> =
        sqlx::query_scalar(&format!("SELECT mail_smtp_url FROM \"{schema}\".settings"))
            .fetch_one(&app.pool)
            .await
            .expect("stored");
    assert!(!String::from_utf8_lossy(&stored).contains("s3cret"));
    // The sender is confirmed through the link mailed to it (to a file: no SMTP server yet).
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/mail",
        Some(&own.token),
        Some(json!({"from": "蓝天客服 <service@lantian.example>"})),
    )
    .await
    .expect(200);
    let token = app
        .confirmation_token(&own, "service@lantian.example")
        .await;
    app.call(
        reqwest::Method::POST,
        "/api/v1/auth/verify-email",
        None,
        Some(json!({ "token": token })),
    )
    .await
    .expect(200);
    // The test SMTP server takes mail without authentication.
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let saved = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/mail",
            Some(&own.token),
            Some(json!({"from": "蓝天客服 <service@lantian.example>", "smtp_url": url})),
        )
        .await
        .expect(200);
    assert_eq!(saved["uses_server_transport"], false);
    let (_, sales) = app.user_with_roles(&own, &["sales"]).await;
    app.get("/api/v1/settings/mail", &sales)
        .await
        .expect_problem(403, "auth.forbidden");

    for t in [&own, &default] {
        let customer = app
            .post("/api/v1/customers", &t.token, json!({"name": "客户"}))
            .await
            .expect(201);
        let contact = app
            .post("/api/v1/contacts", &t.token, json!({"name": "赵敏", "customer_id": customer["id"], "email": format!("zhao@{}.example", t.slug)}))
            .await
            .expect(201);
        let tk = ticket(&app, t, json!({"subject": "退货申请", "customer_id": customer["id"], "contact_id": contact["id"]})).await;
        app.post(
            &format!("/api/v1/tickets/{}/comments", id(&tk)),
            &t.token,
            json!({"body": "已为您办理退货", "public": true}),
        )
        .await
        .expect(201);
    }
    // The company with its own server sends through it, with its sender; the other writes files.
    let got = smtp.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["mail_from"], "service@lantian.example");
    assert_eq!(
        got[0]["rcpt_tos"],
        json!([format!("zhao@{}.example", own.slug)])
    );
    assert!(got[0]["subject"]
        .as_str()
        .expect("subject")
        .contains("退货申请"));
    assert!(got[0]["body"]
        .as_str()
        .expect("body")
        .contains("已为您办理退货"));
    eventually("the other company's mail file", || async {
        (!eml_files(&app.config.data_dir, &default.slug).is_empty()).then_some(())
    })
    .await;
    assert!(eml_files(&app.config.data_dir, &own.slug).is_empty());
    // Back to the server's transport.
    let reset = app
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/mail",
            Some(&own.token),
            Some(json!({"from": null, "smtp_url": null})),
        )
        .await
        .expect(200);
    assert_eq!(reset["uses_server_transport"], true);
}

#[tokio::test]
async fn a_tickets_satisfaction_is_read_with_the_ticket_and_never_across_tenants() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let other = app.signup().await;
    let tk = ticket(&app, &t, json!({"subject": "满意度"})).await;
    let path = format!("/api/v1/tickets/{}/satisfaction", id(&tk));
    assert_eq!(
        app.get(&path, &t.token).await.expect(200),
        json!({"sent": false})
    );
    app.get(&path, &other.token)
        .await
        .expect_problem(404, "record.not_found");
}
