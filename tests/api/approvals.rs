//! Approvals over the API: modes (all, quorum), the record lock, recall, escalation to the
//! approver's manager after business time, and the "waiting for me" list.

use crate::helpers::{eventually, id, TestApp};
use serde_json::{json, Value};

#[tokio::test]
async fn approval_modes_lock_recall_and_escalation() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let mut finance = Vec::new();
    for _ in 0..3 {
        finance.push(app.user_with_roles(&t, &["finance"]).await);
    }
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "华东物流"}))
        .await
        .expect(201);
    let cid = id(&c);
    let request = |steps: Value| json!({"object": "customers", "record_id": cid, "title": "信用额度", "steps": steps});

    // Nobody to ask, or a quorum larger than the approvers: refused.
    app.post(
        "/api/v1/approvals",
        &t.token,
        request(json!([{"approvers": ["role:ghost"]}])),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/approvals",
        &t.token,
        request(json!([{"approvers": ["role:finance"], "mode": "quorum", "quorum": 5}])),
    )
    .await
    .expect_problem(422, "validation.failed");

    // all: every finance user must approve; the record is locked meanwhile.
    let a = app
        .post(
            "/api/v1/approvals",
            &t.token,
            request(json!([{"approvers": ["role:finance"], "mode": "all"}])),
        )
        .await
        .expect(201);
    let aid = id(&a);
    assert_eq!(a["steps"][0]["users"].as_array().expect("users").len(), 3);
    let p = app
        .patch(
            &format!("/api/v1/customers/{cid}"),
            &t.token,
            json!({"level": "A"}),
        )
        .await
        .expect_problem(409, "record.pending_approval");
    assert_eq!(p["approval_id"], aid.as_str());
    // A second approval on a locked record is refused.
    app.post(
        "/api/v1/approvals",
        &t.token,
        request(json!([{"approvers": ["role:finance"]}])),
    )
    .await
    .expect_problem(409, "approval.already_pending");
    let mine = app
        .get("/api/v1/approvals?mine=true", &finance[0].1)
        .await
        .expect(200);
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    let step = |token: &str, verb: &str| {
        let path = format!("/api/v1/approvals/{aid}/{verb}");
        let token = token.to_owned();
        let app = &app;
        async move { app.post(&path, &token, json!({"comment": "ok"})).await }
    };
    assert_eq!(
        step(&finance[0].1, "approve").await.expect(200)["status"],
        "pending"
    );
    step(&finance[0].1, "approve")
        .await
        .expect_problem(409, "approval.already_decided");
    let mine = app
        .get("/api/v1/approvals?mine=true", &finance[0].1)
        .await
        .expect(200);
    assert!(mine["items"].as_array().expect("items").is_empty());
    // The admin is not an approver of this step.
    step(&t.token, "approve")
        .await
        .expect_problem(403, "approval.not_an_approver");
    assert_eq!(
        step(&finance[1].1, "approve").await.expect(200)["status"],
        "pending"
    );
    let done = step(&finance[2].1, "approve").await.expect(200);
    assert_eq!(done["status"], "approved");
    assert_eq!(done["decisions"].as_array().expect("decisions").len(), 3);
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"level": "A"}),
    )
    .await
    .expect(200);

    // quorum 2 of 3.
    let q = app
        .post(
            "/api/v1/approvals",
            &t.token,
            request(json!([{"approvers": ["role:finance"], "mode": "quorum", "quorum": 2}])),
        )
        .await
        .expect(201);
    let qid = id(&q);
    let approve = |token: String, aid: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/v1/approvals/{aid}/approve"),
                &token,
                json!({}),
            )
            .await
            .expect(200)
        }
    };
    assert_eq!(
        approve(finance[2].1.clone(), qid.clone()).await["status"],
        "pending"
    );
    assert_eq!(
        approve(finance[0].1.clone(), qid.clone()).await["status"],
        "approved"
    );

    // Recall: only the requester (or a workflow manager); it unlocks the record.
    let r = app
        .post(
            "/api/v1/approvals",
            &t.token,
            request(json!([{"approvers": ["role:finance"]}])),
        )
        .await
        .expect(201);
    let rid = id(&r);
    app.post(
        &format!("/api/v1/approvals/{rid}/recall"),
        &finance[0].1,
        json!({}),
    )
    .await
    .expect_problem(403, "approval.not_requester");
    let recalled = app
        .post(
            &format!("/api/v1/approvals/{rid}/recall"),
            &t.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(recalled["status"], "recalled");
    app.post(
        &format!("/api/v1/approvals/{rid}/approve"),
        &finance[0].1,
        json!({}),
    )
    .await
    .expect_problem(409, "approval.not_pending");
    app.patch(
        &format!("/api/v1/customers/{cid}"),
        &t.token,
        json!({"level": "B"}),
    )
    .await
    .expect(200);

    // Escalation: the approver's manager (the admin) is added once the business-time delay
    // passes, is told, and can decide.
    let (rep, _) = app.user_with_roles(&t, &["sales"]).await;
    app.patch(
        &format!("/api/v1/users/{rep}"),
        &t.token,
        json!({"manager_id": t.admin_id}),
    )
    .await
    .expect(200);
    // Requested by another administrator: nobody approves their own request.
    let (_, requester) = app.user_with_roles(&t, &["admin"]).await;
    let e = app
        .post(
            "/api/v1/approvals",
            &requester,
            request(json!([{"approvers": [rep], "escalate_after": "2h"}])),
        )
        .await
        .expect(201);
    let eid = id(&e);
    let schema = app.schema_of(&t).await;
    let run_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(&format!(
        "SELECT run_at FROM \"{schema}\".jobs WHERE kind = 'approval.escalate' AND status = 'pending'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("the escalation is armed");
    assert!(run_at >= chrono::Utc::now() + chrono::Duration::minutes(110));
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET run_at = now() WHERE kind = 'approval.escalate'"
    ))
    .execute(&app.pool)
    .await
    .expect("due");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("hint");
    eventually("the escalation notice", || async {
        let n = app.get("/api/v1/notifications", &t.token).await.expect(200);
        n["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|x| x["kind"] == "approval.escalated")
            .then_some(())
    })
    .await;
    let e = app
        .get(&format!("/api/v1/approvals/{eid}"), &t.token)
        .await
        .expect(200);
    assert_eq!(e["steps"][0]["escalated_to"], json!([t.admin_id]));
    let done = app
        .post(
            &format!("/api/v1/approvals/{eid}/approve"),
            &t.token,
            json!({"comment": "代批"}),
        )
        .await
        .expect(200);
    assert_eq!(done["status"], "approved");
    // The decisions are events on the record.
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".outbox WHERE event = 'customer.approval_decided'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(events, 3);
}
