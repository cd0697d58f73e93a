use crate::helpers::{id, TestApp};
use serde_json::json;

#[tokio::test]
async fn opportunities_follow_their_pipeline_stages() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let pipelines = app.get("/api/v1/pipelines", &t.token).await.expect(200);
    let default = &pipelines[0];
    let keys: Vec<&str> = default["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["lead", "qualified", "proposal", "negotiation"],
        "every tenant starts with a default pipeline"
    );

    let customer = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "深圳创新科技"}),
        )
        .await
        .expect(201);
    let opp = app
        .post("/api/v1/opportunities", &t.token, json!({"name": "年度软件采购", "customer_id": customer["id"], "amount": 120000, "expected_close": "2026-12-31"}))
        .await
        .expect(201);
    assert_eq!(opp["pipeline_id"], default["id"]);
    assert_eq!(opp["stage"], "lead");
    assert_eq!(opp["probability"], 10);
    assert_eq!(opp["status"], "open");
    assert_eq!(opp["currency"], "CNY");
    assert_eq!(opp["owner_id"], t.admin_id.as_str());
    let path = format!("/api/v1/opportunities/{}", id(&opp));

    let moved = app
        .patch(&path, &t.token, json!({"stage": "proposal"}))
        .await
        .expect(200);
    assert_eq!(moved["probability"], 60, "stage default on a stage move");
    let chosen = app
        .patch(
            &path,
            &t.token,
            json!({"stage": "negotiation", "probability": 75}),
        )
        .await
        .expect(200);
    assert_eq!(
        chosen["probability"], 75,
        "the request's own probability wins"
    );
    let same_stage = app
        .patch(&path, &t.token, json!({"amount": 130000}))
        .await
        .expect(200);
    assert_eq!(same_stage["probability"], 75, "no stage move, no reset");
    let bad = app
        .patch(&path, &t.token, json!({"stage": "dreaming"}))
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"][0]["code"], "unknown_stage");
    assert!(bad["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("negotiation, won, lost"));
    let won = app
        .patch(&path, &t.token, json!({"status": "won"}))
        .await
        .expect(200);
    assert_eq!(
        (won["stage"].as_str(), won["probability"].as_i64()),
        (Some("won"), Some(100))
    );
    app.patch(&path, &t.token, json!({"stage": "lead", "status": "won"}))
        .await
        .expect_problem(422, "validation.failed");
    let reopened = app
        .patch(&path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    assert_eq!(
        (reopened["stage"].as_str(), reopened["probability"].as_i64()),
        (Some("lead"), Some(10))
    );
    let lost = app
        .patch(
            &path,
            &t.token,
            json!({"stage": "lost", "lost_reason": "预算取消"}),
        )
        .await
        .expect(200);
    assert_eq!(
        (lost["status"].as_str(), lost["probability"].as_i64()),
        (Some("lost"), Some(0))
    );

    let history = app
        .get(&format!("{path}/history"), &t.token)
        .await
        .expect(200);
    let stage_moves: Vec<(String, String)> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| {
            let c = &e["changes"]["stage"];
            Some((
                c["before"].as_str()?.to_owned(),
                c["after"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(stage_moves.len(), 5, "{stage_moves:?}");
    assert_eq!(stage_moves[0], ("lead".to_owned(), "lost".to_owned()));
}

#[tokio::test]
async fn opportunity_input_is_checked_against_its_customer_and_ranges() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let a = app
        .post("/api/v1/customers", &t.token, json!({"name": "甲"}))
        .await
        .expect(201);
    let b = app
        .post("/api/v1/customers", &t.token, json!({"name": "乙"}))
        .await
        .expect(201);
    let b_contact = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"customer_id": b["id"], "name": "乙的联系人"}),
        )
        .await
        .expect(201);
    for (body, field) in [
        (
            json!({"name": "x", "customer_id": a["id"], "discount_pct": 150}),
            "discount_pct",
        ),
        (
            json!({"name": "x", "customer_id": a["id"], "amount": -5}),
            "amount",
        ),
        (
            json!({"name": "x", "customer_id": a["id"], "probability": 101}),
            "probability",
        ),
        (
            json!({"name": "x", "customer_id": a["id"], "contact_id": b_contact["id"]}),
            "contact_id",
        ),
        (
            json!({"name": "x", "customer_id": uuid::Uuid::new_v4()}),
            "customer_id",
        ),
        (
            json!({"name": "x", "customer_id": a["id"], "pipeline_id": uuid::Uuid::new_v4()}),
            "pipeline_id",
        ),
        (
            json!({"name": "x", "customer_id": a["id"], "currency": "BTC"}),
            "currency",
        ),
        (json!({"name": "x"}), "customer_id"),
    ] {
        let err = app
            .post("/api/v1/opportunities", &t.token, body.clone())
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(err["errors"][0]["field"], field, "{body}");
    }
    let ok = app
        .post("/api/v1/opportunities", &t.token, json!({"name": "乙的机会", "customer_id": b["id"], "contact_id": b_contact["id"], "discount_pct": "12.5", "currency": "USD"}))
        .await
        .expect(201);
    assert_eq!(ok["discount_pct"], 12.5);
    // Custom fields work on opportunities like on every object.
    app.post("/api/v1/objects/opportunities/fields", &t.token, json!({"key": "car_model", "label": "意向车型", "type": "select", "options": ["SUV", "轿车"]}))
        .await
        .expect(201);
    let custom = app
        .patch(
            &format!("/api/v1/opportunities/{}", id(&ok)),
            &t.token,
            json!({"custom": {"car_model": "SUV"}}),
        )
        .await
        .expect(200);
    assert_eq!(custom["custom"]["car_model"], "SUV");
}

#[tokio::test]
async fn pipelines_are_configurable_and_protect_stages_in_use() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let stages = json!([
        {"key": "visit", "name": "到店", "probability": 20},
        {"key": "test_drive", "name": "试驾", "probability": 50},
        {"key": "order", "name": "下订", "probability": 90}
    ]);
    let p = app
        .post(
            "/api/v1/pipelines",
            &t.token,
            json!({"name": "4S 店销售", "stages": stages}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/pipelines",
        &t.token,
        json!({"name": "4S 店销售", "stages": [{"key": "a", "name": "A", "probability": 1}]}),
    )
    .await
    .expect_problem(409, "pipeline.exists");
    let bad = app
        .post("/api/v1/pipelines", &t.token, json!({"name": "坏", "stages": [{"key": "won", "name": "x", "probability": 1}, {"key": "Bad Key", "name": "y", "probability": 120}]}))
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"].as_array().map(Vec::len), Some(3));
    app.post(
        "/api/v1/pipelines",
        &t.token,
        json!({"name": "空", "stages": []}),
    )
    .await
    .expect_problem(422, "validation.failed");

    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "王先生"}))
        .await
        .expect(201);
    let opp = app
        .post("/api/v1/opportunities", &t.token, json!({"name": "购车", "customer_id": c["id"], "pipeline_id": p["id"], "stage": "test_drive"}))
        .await
        .expect(201);
    assert_eq!(opp["probability"], 50);
    let pid = id(&p);
    app.patch(
        &format!("/api/v1/pipelines/{pid}"),
        &t.token,
        json!({"stages": [{"key": "visit", "name": "到店", "probability": 20}]}),
    )
    .await
    .expect_problem(409, "pipeline.stage_in_use");
    let renamed = app
        .patch(
            &format!("/api/v1/pipelines/{pid}"),
            &t.token,
            json!({"name": "4S 店"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "4S 店");
    app.delete(&format!("/api/v1/pipelines/{pid}"), &t.token)
        .await
        .expect_problem(409, "pipeline.in_use");
    // Moving an opportunity to another pipeline without a stage starts at its first stage.
    let default_pid = app.get("/api/v1/pipelines", &t.token).await.expect(200)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let moved = app
        .patch(
            &format!("/api/v1/opportunities/{}", id(&opp)),
            &t.token,
            json!({"pipeline_id": default_pid}),
        )
        .await
        .expect(200);
    assert_eq!(
        (moved["stage"].as_str(), moved["probability"].as_i64()),
        (Some("lead"), Some(10))
    );
    // A stage held only by an opportunity in the recycle bin is still protected.
    let binned = app
        .post("/api/v1/opportunities", &t.token, json!({"name": "回收站里的", "customer_id": c["id"], "pipeline_id": pid, "stage": "order"}))
        .await
        .expect(201);
    app.delete(&format!("/api/v1/opportunities/{}", id(&binned)), &t.token)
        .await
        .expect(204);
    app.patch(&format!("/api/v1/pipelines/{pid}"), &t.token, json!({"stages": [{"key": "visit", "name": "到店", "probability": 20}, {"key": "test_drive", "name": "试驾", "probability": 50}]}))
        .await
        .expect_problem(409, "pipeline.stage_in_use");
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.post(
        "/api/v1/pipelines",
        &sales,
        json!({"name": "私有", "stages": stages}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    app.get("/api/v1/pipelines", &sales).await.expect(200);
}

#[tokio::test]
async fn the_board_sums_stages_per_currency_within_scope() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    let pid = app.get("/api/v1/pipelines", &t.token).await.expect(200)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mine = app
        .post("/api/v1/customers", &sales, json!({"name": "销售的客户"}))
        .await
        .expect(201);
    let admins = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "管理员的客户"}),
        )
        .await
        .expect(201);
    for (token, customer, amount, currency, stage) in [
        (&sales, &mine, 1000, "CNY", "lead"),
        (&sales, &mine, 3000, "CNY", "lead"),
        (&sales, &mine, 500, "USD", "proposal"),
        (&t.token, &admins, 7000, "CNY", "lead"),
    ] {
        app.post("/api/v1/opportunities", token, json!({"name": "机会", "customer_id": customer["id"], "amount": amount, "currency": currency, "stage": stage}))
            .await
            .expect(201);
    }
    let board = app
        .get(&format!("/api/v1/pipelines/{pid}/board?limit=1"), &t.token)
        .await
        .expect(200);
    let cols = board["columns"].as_array().expect("columns");
    let keys: Vec<&str> = cols.iter().filter_map(|c| c["key"].as_str()).collect();
    assert_eq!(
        keys,
        [
            "lead",
            "qualified",
            "proposal",
            "negotiation",
            "won",
            "lost"
        ]
    );
    assert_eq!(cols[0]["count"], 3);
    assert_eq!(cols[0]["amount"]["CNY"], 11000.0);
    assert_eq!(cols[0]["weighted_amount"]["CNY"], 1100.0);
    assert_eq!(cols[0]["items"].as_array().map(Vec::len), Some(1));
    assert!(cols[0]["next_cursor"].is_string());
    assert_eq!(cols[2]["amount"]["USD"], 500.0);
    assert_eq!(cols[2]["weighted_amount"]["USD"], 300.0);
    // A salesperson's board shows only their own opportunities.
    let own = app
        .get(&format!("/api/v1/pipelines/{pid}/board"), &sales)
        .await
        .expect(200);
    assert_eq!(own["columns"][0]["count"], 2);
    assert_eq!(own["columns"][0]["amount"]["CNY"], 4000.0);
    // The column's cursor pages on in the opportunity list.
    let next = cols[0]["next_cursor"].as_str().expect("cursor");
    let rest = app
        .get(&format!("/api/v1/opportunities?filter[pipeline_id]={pid}&filter[stage]=lead&limit=1&cursor={next}"), &t.token)
        .await
        .expect(200);
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    let schema = app.schema_of(&t).await;
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".outbox WHERE event = 'opportunity.created'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(events, 4);
}

#[tokio::test]
async fn the_sales_report_on_a_known_data_set() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (sales_id, sales) = app.user_with_roles(&t, &["sales"]).await;
    let fair = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "展会客户", "source": "展会"}),
        )
        .await
        .expect(201);
    let web = app
        .post(
            "/api/v1/customers",
            &sales,
            json!({"name": "官网客户", "source": "官网"}),
        )
        .await
        .expect(201);
    // 4 opportunities: a reaches won, b reaches proposal then lost, c stays at qualified, d stays a lead.
    let mk = |name: &str| json!({"name": name, "customer_id": fair["id"], "amount": 1000, "expected_close": (chrono::Utc::now() + chrono::Duration::days(40)).format("%Y-%m-%d").to_string()});
    let mut ids = Vec::new();
    for n in ["a", "b", "c", "d"] {
        ids.push(id(&app
            .post("/api/v1/opportunities", &t.token, mk(n))
            .await
            .expect(201)));
    }
    for (i, moves) in [
        vec!["qualified", "proposal", "negotiation", "won"],
        vec!["qualified", "proposal", "lost"],
        vec!["qualified"],
        vec![],
    ]
    .iter()
    .enumerate()
    {
        for stage in moves {
            app.patch(
                &format!("/api/v1/opportunities/{}", ids[i]),
                &t.token,
                json!({"stage": stage}),
            )
            .await
            .expect(200);
        }
    }
    let e = app.post("/api/v1/opportunities", &sales, json!({"name": "e", "customer_id": web["id"], "amount": 500, "currency": "USD", "stage": "won"})).await.expect(201);
    assert_eq!(e["status"], "won");

    let report = app.get("/api/v1/reports/sales", &t.token).await.expect(200);
    let funnel = report["funnel"].as_array().expect("funnel");
    let reached: Vec<i64> = funnel
        .iter()
        .map(|s| s["reached"].as_i64().expect("reached"))
        .collect();
    // lead, qualified, proposal, negotiation, won  (e was created straight into won)
    assert_eq!(reached, [5, 4, 3, 2, 2]);
    assert_eq!(funnel[1]["conversion_from_previous"], 0.8);
    assert_eq!(funnel[2]["conversion_from_previous"], 0.75);
    assert_eq!(funnel[0]["amount"]["CNY"], 4000.0);
    assert_eq!(funnel[4]["amount"]["USD"], 500.0);
    assert!(
        funnel[0]["median_days"].is_number(),
        "leads left their stage"
    );
    // Forecast: the two open ones (c at 30 %, d at 10 %) in next month's bucket.
    let month = (chrono::Utc::now() + chrono::Duration::days(40))
        .format("%Y-%m")
        .to_string();
    assert_eq!(report["forecast"][&month]["CNY"], 400.0);
    assert_eq!(report["by_source"]["展会"]["won"], 1);
    assert_eq!(report["by_source"]["展会"]["lost"], 1);
    assert_eq!(report["by_source"]["官网"]["won_amount"]["USD"], 500.0);
    assert_eq!(report["by_owner"][&sales_id]["won"], 1);
    assert_eq!(
        report["by_owner"][&t.admin_id]["lost_amount"]["CNY"],
        1000.0
    );
    // A salesperson's report covers their own opportunities only; a viewer may read reports.
    let own = app.get("/api/v1/reports/sales", &sales).await.expect(200);
    assert_eq!(own["funnel"][0]["reached"], 1);
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.get("/api/v1/reports/sales", &viewer).await.expect(200);
    app.get(
        "/api/v1/reports/sales?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
        &t.token,
    )
    .await
    .expect_problem(422, "validation.failed");
}
