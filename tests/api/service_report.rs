//! The service report over a known set of tickets: counts by status, priority and type, SLA
//! compliance, median business times, satisfaction, per team and per agent; the date range,
//! the permission, the caller's ticket scope and tenant isolation.

use crate::helpers::{id, Tenant, TestApp, PASSWORD};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("timestamp").parse().expect("rfc3339")
}

/// A staff user with this name and these roles, logged in: (user id, token).
async fn staff(app: &TestApp, t: &Tenant, name: &str, roles: &[&str]) -> (String, String) {
    let email = format!(
        "{}@{}.example.com",
        crate::helpers::unique_slug("u"),
        t.slug
    );
    let user = app
        .post(
            "/api/v1/users",
            &t.token,
            json!({"email": email, "name": name, "password": PASSWORD, "roles": roles}),
        )
        .await
        .expect(201);
    let token = app.login(&t.slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    (id(&user), token)
}

async fn ticket(app: &TestApp, t: &Tenant, body: Value) -> String {
    id(&app
        .post("/api/v1/tickets", &t.token, body)
        .await
        .expect(201))
}

/// The SLA columns of a ticket, as offsets from now (`"-10 hours"`; `None` is NULL).
struct Times {
    fr_due: Option<&'static str>,
    fr_at: Option<&'static str>,
    fr_secs: Option<i64>,
    res_due: Option<&'static str>,
    res_at: Option<&'static str>,
    res_secs: Option<i64>,
}

async fn set_times(app: &TestApp, schema: &str, ticket: &str, t: Times) {
    sqlx::query(&format!(
        "UPDATE \"{schema}\".tickets SET \
         first_response_due_at = now() + $2::interval, first_responded_at = now() + $3::interval, \
         first_response_seconds = $4, resolution_due_at = now() + $5::interval, \
         resolved_at = now() + $6::interval, resolution_seconds = $7 WHERE id = $1::uuid"
    ))
    .bind(ticket)
    .bind(t.fr_due)
    .bind(t.fr_at)
    .bind(t.fr_secs)
    .bind(t.res_due)
    .bind(t.res_at)
    .bind(t.res_secs)
    .execute(&app.pool)
    .await
    .expect("set SLA columns");
}

/// A survey sent for the ticket, rated or not.
async fn survey(app: &TestApp, schema: &str, ticket: &str, rating: Option<i16>) {
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".csat_surveys (ticket_id, token_hash, rating, rated_at) \
         VALUES ($1::uuid, $2, $3, CASE WHEN $3::smallint IS NULL THEN NULL ELSE now() END)"
    ))
    .bind(ticket)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(rating)
    .execute(&app.pool)
    .await
    .expect("insert survey");
}

fn target(met: i64, breached: i64, pending: i64, pct: Value) -> Value {
    json!({"met": met, "breached": breached, "pending": pending, "compliance_pct": pct})
}

fn median(median: Value, count: i64) -> Value {
    json!({"median": median, "count": count})
}

fn csat(sent: i64, rated: i64, rate: Value, average: Value) -> Value {
    json!({"sent": sent, "rated": rated, "response_rate_pct": rate, "average": average})
}

/// The metrics of a group, as the report must show them.
fn metrics(total: i64, fr: Value, res: Value, fr_med: Value, res_med: Value, csat: Value) -> Value {
    json!({
        "total": total,
        "sla": {"first_response": fr, "resolution": res},
        "first_response_business_seconds": fr_med,
        "resolution_business_seconds": res_med,
        "csat": csat,
    })
}

/// The metric fields of a report or of one of its groups.
fn metrics_of(v: &Value) -> Value {
    let keys = [
        "total",
        "sla",
        "first_response_business_seconds",
        "resolution_business_seconds",
        "csat",
    ];
    keys.iter()
        .map(|k| (k.to_string(), v[*k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn counts(list: &Value, key: &str) -> Vec<(String, i64)> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|e| {
            (
                e[key].as_str().expect("key").to_owned(),
                e["count"].as_i64().expect("count"),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// A tenant with seven tickets in the last 30 days, one 40 days old and one deleted:
///
/// | ticket | team   | agent | priority | type            | status   | first response         | resolution              | survey |
/// |--------|--------|-------|----------|-----------------|----------|------------------------|-------------------------|--------|
/// | T1     | front  | Wang  | urgent   | complaint       | resolved | met, 600 s             | met, 3600 s             | 5      |
/// | T2     | front  | Wang  | high     | complaint       | closed   | late, 1801 s           | late, 7201 s            | 2      |
/// | T3     | front  | Chen  | normal   | consultation    | open     | overdue                | pending                 | -      |
/// | T4     | second | Chen  | normal   | -               | pending  | met, 900 s             | pending                 | -      |
/// | T5     | -      | -     | low      | service_request | new      | pending                | no target               | -      |
/// | T6     | -      | Wang  | normal   | -               | resolved | no target, 300 s       | met, 5400 s             | unrated|
/// | T7     | second | Zhou  | urgent   | after_sales     | open     | late, 2400 s           | pending                 | 4      |
/// | T8     | front  | Wang  | low      | consultation    | new      | met, 100 s             | no target               | 1      |
///
/// T1-T7 and T9 were created a day ago, T8 40 days ago; T9 is deleted (with a rated survey).
struct Desk {
    t: Tenant,
    front: String,
    second: String,
    wang: String,
    chen: String,
    zhou: String,
    zhou_token: String,
    chen_token: String,
}

async fn desk(app: &TestApp) -> Desk {
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    let front = id(&app
        .post(
            "/api/v1/teams",
            &t.token,
            json!({"name": "Frontline 一线客服"}),
        )
        .await
        .expect(201));
    let second = id(&app
        .post(
            "/api/v1/teams",
            &t.token,
            json!({"name": "Second line 二线支持"}),
        )
        .await
        .expect(201));
    let (wang, _) = staff(app, &t, "Wang Fang 王芳", &["service"]).await;
    let (chen, chen_token) = staff(app, &t, "Chen Jing 陈静", &["service"]).await;
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "own-reporter", "description": "自己的工单报表",
               "permissions": ["tickets:read", "reports:read"], "scopes": {"tickets": "own"}}),
    )
    .await
    .expect(201);
    let (zhou, zhou_token) = staff(app, &t, "Zhou Min 周敏", &["own-reporter"]).await;

    let t1 = ticket(app, &t, json!({"subject": "发票开错了", "team_id": front, "assignee_id": wang, "priority": "urgent", "type": "complaint"})).await;
    let t2 = ticket(app, &t, json!({"subject": "退款太慢", "team_id": front, "assignee_id": wang, "priority": "high", "type": "complaint"})).await;
    let t3 = ticket(app, &t, json!({"subject": "如何导出数据", "team_id": front, "assignee_id": chen, "priority": "normal", "type": "consultation", "status": "open"})).await;
    let t4 = ticket(app, &t, json!({"subject": "等待客户日志", "team_id": second, "assignee_id": chen, "priority": "normal", "status": "pending"})).await;
    let t5 = ticket(
        app,
        &t,
        json!({"subject": "安装新打印机", "priority": "low", "type": "service_request"}),
    )
    .await;
    let t6 = ticket(
        app,
        &t,
        json!({"subject": "密码重置", "assignee_id": wang, "priority": "normal"}),
    )
    .await;
    let t7 = ticket(app, &t, json!({"subject": "主板返修", "team_id": second, "assignee_id": zhou, "priority": "urgent", "type": "after_sales", "status": "open"})).await;
    let t8 = ticket(app, &t, json!({"subject": "上个月的问题", "team_id": front, "assignee_id": wang, "priority": "low", "type": "consultation"})).await;
    let t9 = ticket(app, &t, json!({"subject": "重复提交", "team_id": front, "assignee_id": wang, "priority": "urgent", "type": "complaint"})).await;
    for (tk, status) in [(&t1, "resolved"), (&t2, "closed"), (&t6, "resolved")] {
        app.patch(
            &format!("/api/v1/tickets/{tk}"),
            &t.token,
            json!({"status": status}),
        )
        .await
        .expect(200);
    }
    app.delete(&format!("/api/v1/tickets/{t9}"), &t.token)
        .await
        .expect(204);

    let times = [
        (
            &t1,
            Times {
                fr_due: Some("-10 hours"),
                fr_at: Some("-11 hours"),
                fr_secs: Some(600),
                res_due: Some("-2 hours"),
                res_at: Some("-3 hours"),
                res_secs: Some(3600),
            },
        ),
        (
            &t2,
            Times {
                fr_due: Some("-10 hours"),
                fr_at: Some("-9 hours"),
                fr_secs: Some(1801),
                res_due: Some("-5 hours"),
                res_at: Some("-4 hours"),
                res_secs: Some(7201),
            },
        ),
        (
            &t3,
            Times {
                fr_due: Some("-1 hour"),
                fr_at: None,
                fr_secs: None,
                res_due: Some("5 hours"),
                res_at: None,
                res_secs: None,
            },
        ),
        (
            &t4,
            Times {
                fr_due: Some("2 hours"),
                fr_at: Some("-30 minutes"),
                fr_secs: Some(900),
                res_due: Some("20 hours"),
                res_at: None,
                res_secs: None,
            },
        ),
        (
            &t5,
            Times {
                fr_due: Some("3 hours"),
                fr_at: None,
                fr_secs: None,
                res_due: None,
                res_at: None,
                res_secs: None,
            },
        ),
        (
            &t6,
            Times {
                fr_due: None,
                fr_at: Some("-5 hours"),
                fr_secs: Some(300),
                res_due: Some("-1 hour"),
                res_at: Some("-2 hours"),
                res_secs: Some(5400),
            },
        ),
        (
            &t7,
            Times {
                fr_due: Some("-3 hours"),
                fr_at: Some("-150 minutes"),
                fr_secs: Some(2400),
                res_due: Some("1 hour"),
                res_at: None,
                res_secs: None,
            },
        ),
        (
            &t8,
            Times {
                fr_due: Some("-57540 minutes"),
                fr_at: Some("-57570 minutes"),
                fr_secs: Some(100),
                res_due: None,
                res_at: None,
                res_secs: None,
            },
        ),
        // Deleted tickets never count, whatever their columns say.
        (
            &t9,
            Times {
                fr_due: Some("-1 hour"),
                fr_at: Some("-2 hours"),
                fr_secs: Some(50),
                res_due: Some("-1 hour"),
                res_at: Some("-2 hours"),
                res_secs: Some(50),
            },
        ),
    ];
    for (tk, tm) in times {
        set_times(app, &schema, tk, tm).await;
    }
    sqlx::query(&format!(
        "UPDATE \"{schema}\".tickets SET created_at = now() - CASE WHEN id = $1::uuid \
         THEN interval '40 days' ELSE interval '1 day' END"
    ))
    .bind(&t8)
    .execute(&app.pool)
    .await
    .expect("age the tickets");
    for (tk, rating) in [
        (&t1, Some(5)),
        (&t2, Some(2)),
        (&t6, None),
        (&t7, Some(4)),
        (&t8, Some(1)),
        (&t9, Some(1)),
    ] {
        survey(app, &schema, tk, rating).await;
    }
    Desk {
        t,
        front,
        second,
        wang,
        chen,
        zhou,
        zhou_token,
        chen_token,
    }
}

#[tokio::test]
async fn the_report_counts_sla_medians_and_satisfaction_overall_per_team_and_per_agent() {
    let app = TestApp::spawn().await;
    let d = desk(&app).await;
    let before = Utc::now();
    let r = app
        .get("/api/v1/reports/service", &d.t.token)
        .await
        .expect(200);
    let after = Utc::now();
    // Default range: the last 30 days, up to now.
    let (from, to) = (at(&r["from"]), at(&r["to"]));
    assert!(to >= before && to <= after, "{to}");
    assert_eq!(to - from, Duration::days(30));

    // T1-T7: T8 is older than 30 days and T9 is deleted.
    assert_eq!(
        metrics_of(&r),
        metrics(
            7,
            target(2, 3, 1, json!(40.0)),
            target(2, 1, 3, json!(66.7)),
            median(json!(900), 5),
            median(json!(5400), 3),
            csat(4, 3, json!(75.0), json!(3.67)),
        )
    );
    assert_eq!(
        r["by_status"],
        json!([
            {"status": "new", "name": "新建", "category": "open", "count": 1},
            {"status": "open", "name": "处理中", "category": "open", "count": 2},
            {"status": "pending", "name": "待回复", "category": "open", "count": 1},
            {"status": "resolved", "name": "已解决", "category": "resolved", "count": 2},
            {"status": "closed", "name": "已关闭", "category": "closed", "count": 1},
        ])
    );
    assert_eq!(
        counts(&r["by_priority"], "priority"),
        pairs(&[("low", 1), ("normal", 3), ("high", 1), ("urgent", 2)])
    );
    assert_eq!(
        counts(&r["by_type"], "type"),
        pairs(&[
            ("consultation", 1),
            ("complaint", 2),
            ("service_request", 1),
            ("after_sales", 1),
            ("none", 2),
        ])
    );

    let teams = r["by_team"].as_array().expect("by_team");
    let team_keys: Vec<(Value, Value)> = teams
        .iter()
        .map(|g| (g["team_id"].clone(), g["team_name"].clone()))
        .collect();
    assert_eq!(
        team_keys,
        [
            (json!(d.front), json!("Frontline 一线客服")),
            (json!(d.second), json!("Second line 二线支持")),
            (Value::Null, Value::Null),
        ]
    );
    // Frontline: T1-T3; even medians are the mean of the middle two, rounded half up
    // ((600 + 1801) / 2 = 1200.5, (3600 + 7201) / 2 = 5400.5).
    assert_eq!(
        metrics_of(&teams[0]),
        metrics(
            3,
            target(1, 2, 0, json!(33.3)),
            target(1, 1, 1, json!(50.0)),
            median(json!(1201), 2),
            median(json!(5401), 2),
            csat(2, 2, json!(100.0), json!(3.5)),
        )
    );
    // Second line: T4 and T7; nothing decided on resolution yet.
    assert_eq!(
        metrics_of(&teams[1]),
        metrics(
            2,
            target(1, 1, 0, json!(50.0)),
            target(0, 0, 2, Value::Null),
            median(json!(1650), 2),
            median(Value::Null, 0),
            csat(1, 1, json!(100.0), json!(4.0)),
        )
    );
    // No team: T5 and T6; T5 has no resolution target, T6 no first-response target.
    assert_eq!(
        metrics_of(&teams[2]),
        metrics(
            2,
            target(0, 0, 1, Value::Null),
            target(1, 0, 0, json!(100.0)),
            median(json!(300), 1),
            median(json!(5400), 1),
            csat(1, 0, json!(0.0), Value::Null),
        )
    );

    let agents = r["by_agent"].as_array().expect("by_agent");
    let agent_keys: Vec<(Value, Value)> = agents
        .iter()
        .map(|g| (g["user_id"].clone(), g["name"].clone()))
        .collect();
    assert_eq!(
        agent_keys,
        [
            (json!(d.chen), json!("Chen Jing 陈静")),
            (json!(d.wang), json!("Wang Fang 王芳")),
            (json!(d.zhou), json!("Zhou Min 周敏")),
            (Value::Null, Value::Null),
        ]
    );
    assert_eq!(
        metrics_of(&agents[0]),
        metrics(
            2,
            target(1, 1, 0, json!(50.0)),
            target(0, 0, 2, Value::Null),
            median(json!(900), 1),
            median(Value::Null, 0),
            csat(0, 0, Value::Null, Value::Null),
        )
    );
    assert_eq!(
        metrics_of(&agents[1]),
        metrics(
            3,
            target(1, 1, 0, json!(50.0)),
            target(2, 1, 0, json!(66.7)),
            median(json!(600), 3),
            median(json!(5400), 3),
            csat(3, 2, json!(66.7), json!(3.5)),
        )
    );
    assert_eq!(
        metrics_of(&agents[2]),
        metrics(
            1,
            target(0, 1, 0, json!(0.0)),
            target(0, 0, 1, Value::Null),
            median(json!(2400), 1),
            median(Value::Null, 0),
            csat(1, 1, json!(100.0), json!(4.0)),
        )
    );
    assert_eq!(
        metrics_of(&agents[3]),
        metrics(
            1,
            target(0, 0, 1, Value::Null),
            target(0, 0, 0, Value::Null),
            median(Value::Null, 0),
            median(Value::Null, 0),
            csat(0, 0, Value::Null, Value::Null),
        )
    );
}

#[tokio::test]
async fn the_date_range_selects_tickets_by_creation_and_is_validated() {
    let app = TestApp::spawn().await;
    let d = desk(&app).await;
    let token = &d.t.token;
    // From a day 60 days back (midnight in the tenant's zone) to now: T8 comes in.
    let day = (Utc::now() - Duration::days(60))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let r = app
        .get(&format!("/api/v1/reports/service?from={day}"), token)
        .await
        .expect(200);
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(chrono_tz::Asia::Shanghai)
        .single()
        .expect("one midnight")
        .with_timezone(&Utc);
    assert_eq!(at(&r["from"]), midnight);
    assert_eq!(
        metrics_of(&r),
        metrics(
            8,
            target(3, 3, 1, json!(50.0)),
            target(2, 1, 3, json!(66.7)),
            median(json!(750), 6),
            median(json!(5400), 3),
            csat(5, 4, json!(80.0), json!(3.0)),
        )
    );
    assert_eq!(
        counts(&r["by_priority"], "priority"),
        pairs(&[("low", 2), ("normal", 3), ("high", 1), ("urgent", 2)])
    );
    assert_eq!(r["by_team"][0]["total"], 4);
    assert_eq!(r["by_agent"][1]["user_id"], json!(d.wang));
    assert_eq!(r["by_agent"][1]["total"], 4);

    // A date-time `to` (exclusive) 20 days back leaves T8 alone.
    let to = (Utc::now() - Duration::days(20)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = app
        .get(
            &format!("/api/v1/reports/service?from={day}&to={to}"),
            token,
        )
        .await
        .expect(200);
    assert_eq!(
        metrics_of(&r),
        metrics(
            1,
            target(1, 0, 0, json!(100.0)),
            target(0, 0, 0, Value::Null),
            median(json!(100), 1),
            median(Value::Null, 0),
            csat(1, 1, json!(100.0), json!(1.0)),
        )
    );
    assert_eq!(r["by_agent"][0]["user_id"], json!(d.wang));
    assert_eq!(r["by_team"][0]["team_id"], json!(d.front));

    // An empty range: every state, priority and type still listed, with zeros.
    let r = app
        .get(
            "/api/v1/reports/service?from=2020-01-01&to=2020-02-01",
            token,
        )
        .await
        .expect(200);
    // Days start at midnight in the tenant's zone (Asia/Shanghai, UTC+8).
    assert_eq!(
        at(&r["from"]),
        Utc.with_ymd_and_hms(2019, 12, 31, 16, 0, 0).unwrap()
    );
    assert_eq!(
        at(&r["to"]),
        Utc.with_ymd_and_hms(2020, 1, 31, 16, 0, 0).unwrap()
    );
    assert_eq!(
        metrics_of(&r),
        metrics(
            0,
            target(0, 0, 0, Value::Null),
            target(0, 0, 0, Value::Null),
            median(Value::Null, 0),
            median(Value::Null, 0),
            csat(0, 0, Value::Null, Value::Null),
        )
    );
    assert_eq!(
        counts(&r["by_status"], "status"),
        pairs(&[
            ("new", 0),
            ("open", 0),
            ("pending", 0),
            ("resolved", 0),
            ("closed", 0)
        ])
    );
    assert_eq!(counts(&r["by_type"], "type").len(), 5);
    assert_eq!(r["by_team"], json!([]));
    assert_eq!(r["by_agent"], json!([]));

    // Bad dates are 422 naming the field; so is an empty or reversed range.
    let bad = app
        .get("/api/v1/reports/service?from=2025-02-30", token)
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"][0]["field"], "from");
    assert!(bad["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("2025-03-01")));
    let both = app
        .get("/api/v1/reports/service?from=last-week&to=tomorrow", token)
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = both["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["from", "to"]);
    for range in [
        "from=2025-03-02&to=2025-03-01",
        "from=2025-03-01&to=2025-03-01",
        "from=2025-03-01T08:00:00%2B08:00&to=2025-03-01",
    ] {
        let e = app
            .get(&format!("/api/v1/reports/service?{range}"), token)
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(e["errors"][0]["field"], "from", "{range}");
    }
}

#[tokio::test]
async fn the_report_needs_reports_read_and_follows_the_callers_ticket_scope() {
    let app = TestApp::spawn().await;
    let d = desk(&app).await;
    // A service agent works tickets but does not read reports.
    app.get("/api/v1/reports/service", &d.chen_token)
        .await
        .expect_problem(403, "auth.forbidden");
    app.call(reqwest::Method::GET, "/api/v1/reports/service", None, None)
        .await
        .expect_problem(401, "auth.unauthenticated");
    // Scope `own`: only the tickets assigned to Zhou (T7).
    let r = app
        .get("/api/v1/reports/service", &d.zhou_token)
        .await
        .expect(200);
    let own = metrics(
        1,
        target(0, 1, 0, json!(0.0)),
        target(0, 0, 1, Value::Null),
        median(json!(2400), 1),
        median(Value::Null, 0),
        csat(1, 1, json!(100.0), json!(4.0)),
    );
    assert_eq!(metrics_of(&r), own);
    assert_eq!(
        counts(&r["by_status"], "status"),
        pairs(&[
            ("new", 0),
            ("open", 1),
            ("pending", 0),
            ("resolved", 0),
            ("closed", 0)
        ])
    );
    assert_eq!(r["by_team"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["by_team"][0]["team_id"], json!(d.second));
    assert_eq!(metrics_of(&r["by_team"][0]), own);
    assert_eq!(r["by_agent"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["by_agent"][0]["user_id"], json!(d.zhou));

    // The OpenAPI document describes the response, metrics flattened into each group.
    let spec = app
        .call(reqwest::Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200);
    assert!(spec["paths"]["/reports/service"]["get"].is_object());
    let schemas = &spec["components"]["schemas"];
    for (schema, key) in [
        ("ServiceReport", "total"),
        ("ServiceReport", "by_agent"),
        ("ServiceReportTeam", "csat"),
        ("ServiceReportType", "type"),
    ] {
        assert!(
            schemas[schema]["properties"][key].is_object(),
            "{schema}.{key}: {:#}",
            schemas[schema]
        );
    }
}

#[tokio::test]
async fn another_tenants_tickets_never_reach_the_report() {
    let app = TestApp::spawn().await;
    let d = desk(&app).await;
    let other = app.signup().await;
    let schema = app.schema_of(&other).await;
    let tk = ticket(
        &app,
        &other,
        json!({"subject": "别家的工单", "priority": "urgent"}),
    )
    .await;
    set_times(
        &app,
        &schema,
        &tk,
        Times {
            fr_due: Some("-1 hour"),
            fr_at: Some("-2 hours"),
            fr_secs: Some(42),
            res_due: None,
            res_at: None,
            res_secs: None,
        },
    )
    .await;
    survey(&app, &schema, &tk, Some(3)).await;

    let theirs = app
        .get("/api/v1/reports/service", &other.token)
        .await
        .expect(200);
    assert_eq!(
        metrics_of(&theirs),
        metrics(
            1,
            target(1, 0, 0, json!(100.0)),
            target(0, 0, 0, Value::Null),
            median(json!(42), 1),
            median(Value::Null, 0),
            csat(1, 1, json!(100.0), json!(3.0)),
        )
    );
    assert_eq!(theirs["by_agent"][0]["user_id"], Value::Null);
    let ours = app
        .get("/api/v1/reports/service", &d.t.token)
        .await
        .expect(200);
    assert_eq!(ours["total"], 7);
    assert_eq!(
        ours["first_response_business_seconds"],
        median(json!(900), 5)
    );
    assert_eq!(ours["csat"], csat(4, 3, json!(75.0), json!(3.67)));
}
