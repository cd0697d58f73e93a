use crate::helpers::{id, TestApp};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn activities_and_tasks_keep_the_customers_follow_up_status() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let a = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "A级客户", "level": "A"}),
        )
        .await
        .expect(201);
    let quiet = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "沉默的A级客户", "level": "A"}),
        )
        .await
        .expect(201);
    let ten_days_ago = Utc::now() - Duration::days(10);
    app.post("/api/v1/activities", &t.token, json!({"kind": "call", "direction": "outbound", "subject": "首次电话", "customer_id": quiet["id"], "occurred_at": rfc(ten_days_ago)}))
        .await
        .expect(201);
    let call = app
        .post("/api/v1/activities", &t.token, json!({"kind": "call", "direction": "inbound", "subject": "询价", "duration_minutes": 12, "outcome": "感兴趣", "customer_id": a["id"]}))
        .await
        .expect(201);
    assert_eq!(
        call["owner_id"],
        t.admin_id.as_str(),
        "the author is the acting user"
    );
    assert!(
        call["occurred_at"].is_string(),
        "occurred_at defaults to now"
    );
    let a_now = app
        .get(&format!("/api/v1/customers/{}", id(&a)), &t.token)
        .await
        .expect(200);
    assert_eq!(a_now["last_activity_at"], call["occurred_at"]);
    assert_eq!(
        a_now["version"], 1,
        "derived follow-up columns do not version the customer"
    );

    // Level A customers with no activity in 7 days.
    let week_ago = enc(&rfc(Utc::now() - Duration::days(7)));
    let stale = app
        .get(
            &format!("/api/v1/customers?filter[level]=A&filter[last_activity_at][lt]={week_ago}"),
            &t.token,
        )
        .await
        .expect(200);
    let names: Vec<&str> = stale["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["沉默的A级客户"]);
    let sorted = app
        .get("/api/v1/customers?sort=last_activity_at", &t.token)
        .await
        .expect(200);
    assert_eq!(sorted["items"][0]["id"], quiet["id"]);

    // Tasks set next_task_due; completing or deleting them moves it on.
    let soon = Utc::now() + Duration::days(1);
    let later = Utc::now() + Duration::days(3);
    let t1 = app
        .post(
            "/api/v1/tasks",
            &t.token,
            json!({"title": "回访报价", "due_at": rfc(soon), "customer_id": a["id"]}),
        )
        .await
        .expect(201);
    app.post("/api/v1/tasks", &t.token, json!({"title": "寄样品", "due_at": rfc(later), "customer_id": a["id"], "priority": "high"})).await.expect(201);
    assert_eq!(
        t1["assignee_id"],
        t.admin_id.as_str(),
        "the creator is the default assignee"
    );
    let due_of = |c: &Value| c["next_task_due"].as_str().map(str::to_owned);
    let c1 = app
        .get(&format!("/api/v1/customers/{}", id(&a)), &t.token)
        .await
        .expect(200);
    assert_eq!(due_of(&c1), t1["due_at"].as_str().map(str::to_owned));
    app.patch(
        &format!("/api/v1/tasks/{}", id(&t1)),
        &t.token,
        json!({"done_at": rfc(Utc::now())}),
    )
    .await
    .expect(200);
    let c2 = app
        .get(&format!("/api/v1/customers/{}", id(&a)), &t.token)
        .await
        .expect(200);
    assert!(
        due_of(&c2).is_some_and(|d| d != due_of(&c1).unwrap_or_default()),
        "moves to the next open task"
    );
    app.delete(&format!("/api/v1/activities/{}", id(&call)), &t.token)
        .await
        .expect(204);
    let c3 = app
        .get(&format!("/api/v1/customers/{}", id(&a)), &t.token)
        .await
        .expect(200);
    assert!(c3["last_activity_at"].is_null());

    // Related records must hang together.
    let other = app
        .post("/api/v1/customers", &t.token, json!({"name": "别家"}))
        .await
        .expect(201);
    let other_contact = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"customer_id": other["id"], "name": "别人"}),
        )
        .await
        .expect(201);
    for (body, field) in [
        (json!({"kind": "fax", "customer_id": a["id"]}), "kind"),
        (
            json!({"kind": "call", "customer_id": a["id"], "contact_id": other_contact["id"]}),
            "contact_id",
        ),
        (
            json!({"kind": "call", "contact_id": other_contact["id"]}),
            "customer_id",
        ),
    ] {
        let err = app
            .post("/api/v1/activities", &t.token, body)
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(err["errors"][0]["field"], field);
    }
    app.post("/api/v1/tasks", &t.token, json!({"notes": "no title"}))
        .await
        .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn my_tasks_by_due_today_overdue_upcoming() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, other) = app.user_with_roles(&t, &["sales"]).await;
    let now = Utc::now();
    for (title, due, done) in [
        ("逾期任务", now - Duration::hours(30), false),
        ("已完成的逾期任务", now - Duration::hours(30), true),
        ("今天稍后", now + Duration::minutes(1), false),
        ("下周", now + Duration::days(7), false),
    ] {
        let mut body = json!({"title": title, "due_at": rfc(due)});
        if done {
            body["done_at"] = json!(rfc(now));
        }
        app.post("/api/v1/tasks", &t.token, body).await.expect(201);
    }
    app.post(
        "/api/v1/tasks",
        &other,
        json!({"title": "别人的任务", "due_at": rfc(now - Duration::hours(30))}),
    )
    .await
    .expect(201);
    let titles = |v: &Value| -> Vec<String> {
        let mut t: Vec<String> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|x| x["title"].as_str().expect("title").to_owned())
            .collect();
        t.sort();
        t
    };
    let overdue = app
        .get("/api/v1/tasks?mine=true&due=overdue", &t.token)
        .await
        .expect(200);
    assert_eq!(titles(&overdue), ["逾期任务"]);
    let upcoming = app
        .get("/api/v1/tasks?mine=true&due=upcoming", &t.token)
        .await
        .expect(200);
    assert_eq!(titles(&upcoming), ["下周"]);
    let today = app
        .get("/api/v1/tasks?mine=true&due=today", &t.token)
        .await
        .expect(200);
    let shanghai =
        |t: chrono::DateTime<Utc>| t.with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
    if shanghai(now) == shanghai(now + Duration::minutes(1)) {
        // (Unless the test runs in the last minute of a Shanghai day.)
        assert!(titles(&today).contains(&"今天稍后".to_owned()));
    }
    let counted = app
        .get("/api/v1/tasks/count?mine=true&due=overdue", &t.token)
        .await
        .expect(200);
    assert_eq!(
        counted["count"], 1,
        "counts take the same parameters as lists"
    );
    let all_mine = app
        .get("/api/v1/tasks?mine=true", &t.token)
        .await
        .expect(200);
    assert_eq!(all_mine["items"].as_array().map(Vec::len), Some(4));
    app.get("/api/v1/tasks?due=someday", &t.token)
        .await
        .expect_problem(422, "validation.failed");
    app.get("/api/v1/customers?mine=true", &t.token)
        .await
        .expect_problem(422, "validation.failed");
    // The salesperson's scope on tasks is their own.
    let theirs = app.get("/api/v1/tasks", &other).await.expect(200);
    assert_eq!(titles(&theirs), ["别人的任务"]);
}

#[tokio::test]
async fn the_timeline_merges_everything_newest_first_and_pages() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "时间线客户", "phone": "13600001111"}),
        )
        .await
        .expect(201);
    let cid = id(&c);
    let base = Utc::now() - Duration::days(5);
    app.post("/api/v1/activities", &t.token, json!({"kind": "visit", "subject": "到店看车", "customer_id": cid, "occurred_at": rfc(base)})).await.expect(201);
    app.post(
        "/api/v1/tasks",
        &t.token,
        json!({"title": "三天后回访", "customer_id": cid, "due_at": rfc(base + Duration::days(3))}),
    )
    .await
    .expect(201);
    let opp = app
        .post(
            "/api/v1/opportunities",
            &t.token,
            json!({"name": "购车意向", "customer_id": cid}),
        )
        .await
        .expect(201);
    app.patch(
        &format!("/api/v1/opportunities/{}", id(&opp)),
        &t.token,
        json!({"stage": "proposal"}),
    )
    .await
    .expect(200);
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"level": "A", "phone": "13600002222"}),
    )
    .await
    .expect(200);

    let all = app
        .get(
            &format!("/api/v1/customers/{cid}/timeline?limit=50"),
            &t.token,
        )
        .await
        .expect(200);
    let items = all["items"].as_array().expect("items");
    let kinds: Vec<&str> = items.iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["activity", "task", "stage_change", "history"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let times: Vec<&str> = items.iter().filter_map(|e| e["at"].as_str()).collect();
    let parsed: Vec<chrono::DateTime<chrono::FixedOffset>> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).expect("time"))
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(
        items.last().map(|e| e["kind"].clone()),
        Some(json!("activity")),
        "the oldest is the visit"
    );
    let stage = items
        .iter()
        .find(|e| e["kind"] == "stage_change" && e["data"]["to"] == "proposal")
        .expect("stage move");
    assert_eq!(stage["data"]["from"], "lead");

    // Pages of 2 visit every entry once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get(
                &format!("/api/v1/customers/{cid}/timeline?limit=2{cursor}"),
                &t.token,
            )
            .await
            .expect(200);
        for e in page["items"].as_array().expect("items") {
            seen.push(format!("{}:{}", e["kind"], e["id"]));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), items.len());
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    let masked = app
        .get(
            &format!("/api/v1/customers/{cid}/timeline?limit=50"),
            &viewer,
        )
        .await
        .expect(200);
    let phone_change = masked["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "history" && e["data"]["changes"]["phone"].is_object())
        .expect("phone change");
    assert_eq!(
        phone_change["data"]["changes"]["phone"]["after"],
        "136****2222"
    );
    app.get(
        &format!("/api/v1/customers/{}/timeline", uuid::Uuid::new_v4()),
        &t.token,
    )
    .await
    .expect_problem(404, "record.not_found");
}

#[tokio::test]
async fn the_register_logs_calls_and_offers_to_create_unknown_callers() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let unknown = app
        .post(
            "/api/v1/activities/register",
            &t.token,
            json!({"phone": "139 1111 2222", "kind": "visit", "subject": "看车"}),
        )
        .await
        .expect_problem(404, "register.unknown_caller");
    assert!(unknown["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("create_customer"));
    let created = app
        .post("/api/v1/activities/register", &t.token, json!({"phone": "139 1111 2222", "name": "赵先生", "kind": "visit", "subject": "看车", "create_customer": true}))
        .await
        .expect(201);
    assert_eq!(created["customer_created"], true);
    let customer = app
        .get(
            &format!(
                "/api/v1/customers/{}",
                created["customer_id"].as_str().expect("id")
            ),
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(customer["name"], "赵先生");
    assert_eq!(customer["phone"], "+8613911112222");
    assert!(customer["last_activity_at"].is_string());
    let again = app
        .post(
            "/api/v1/activities/register",
            &t.token,
            json!({"phone": "+86 139-1111-2222", "subject": "来电咨询"}),
        )
        .await
        .expect(201);
    assert_eq!(again["customer_created"], false);
    assert_eq!(again["customer_id"], created["customer_id"]);
    assert_eq!(again["activity"]["kind"], "call");
    assert_eq!(again["activity"]["direction"], "inbound");
    app.post(
        "/api/v1/activities/register",
        &t.token,
        json!({"phone": "12"}),
    )
    .await
    .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn the_calendar_feed_is_valid_icalendar_behind_a_replaceable_token() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (other_id, other) = app.user_with_roles(&t, &["sales"]).await;
    let due = Utc::now() + Duration::days(2);
    app.post("/api/v1/tasks", &t.token, json!({"title": "回访张总, 确认报价; 寄合同", "notes": "第一行\n第二行", "due_at": rfc(due), "remind_at": rfc(due - Duration::hours(1))}))
        .await
        .expect(201);
    app.post(
        "/api/v1/tasks",
        &t.token,
        json!({"title": "没有截止时间的任务"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/activities", &t.token, json!({"kind": "meeting", "subject": "季度业务回顾".repeat(8), "occurred_at": rfc(Utc::now() + Duration::days(1)), "duration_minutes": 90}))
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/users/{other_id}/calendar-token"),
        &other,
        json!({}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/users/{}/calendar-token", t.admin_id),
        &other,
        json!({}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    let issued = app
        .post(
            &format!("/api/v1/users/{}/calendar-token", t.admin_id),
            &t.token,
            json!({}),
        )
        .await
        .expect(201);
    let token = issued["token"].as_str().expect("token").to_owned();
    assert!(issued["url"]
        .as_str()
        .is_some_and(|u| u.contains("calendar.ics?token=")));

    let resp = app
        .client
        .get(format!(
            "{}/api/v1/users/{}/calendar.ics?token={token}",
            app.base, t.admin_id
        ))
        .send()
        .await
        .expect("feed");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/calendar")));
    let ics = resp.text().await.expect("body");
    let dir = std::env::temp_dir().join(format!("feed-{}.ics", uuid::Uuid::new_v4()));
    std::fs::write(&dir, &ics).expect("write");
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
events = [c for c in cal.walk('VEVENT')]
for e in events:
    alarms = len([a for a in e.walk('VALARM')])
    print('%s|%s|%s|%d' % (e.get('summary'), e.decoded('dtstart').isoformat(), e.get('uid'), alarms))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&dir)
        .output()
        .expect("python3 with icalendar");
    let _ = std::fs::remove_file(&dir);
    assert!(
        out.status.success(),
        "icalendar rejected the feed: {}\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = parsed.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one task with a due time, one meeting: {parsed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("回访张总, 确认报价; 寄合同|") && l.ends_with("|1")),
        "{parsed}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&"季度业务回顾".repeat(8))),
        "long folded summary: {parsed}"
    );

    // A feed token opens nothing else, and a new token replaces the old one.
    app.get("/api/v1/me", &token)
        .await
        .expect_problem(401, "auth.invalid_token");
    app.post(
        &format!("/api/v1/users/{}/calendar-token", t.admin_id),
        &t.token,
        json!({}),
    )
    .await
    .expect(201);
    let old = app
        .client
        .get(format!(
            "{}/api/v1/users/{}/calendar.ics?token={token}",
            app.base, t.admin_id
        ))
        .send()
        .await
        .expect("feed");
    assert_eq!(old.status(), 401);
    app.delete(
        &format!("/api/v1/users/{}/calendar-token", t.admin_id),
        &t.token,
    )
    .await
    .expect(204);
    app.delete(
        &format!("/api/v1/users/{}/calendar-token", t.admin_id),
        &t.token,
    )
    .await
    .expect_problem(404, "calendar_token.not_found");
}
