//! Rules, approvals and dry runs on custom objects, over the API: the insurance walk-through
//! (a claim creates a task for its policy's owner), `set_field` and `create_record` on custom
//! records, the run-as role's permissions, an approval locking a claim, and what deleting an
//! object does to its rules and approvals.

use crate::helpers::{eventually, id, Tenant, TestApp};
use crate::objects::policies;
use serde_json::{json, Value};

/// `policies` (from the objects tests) with a `customer` relation, and `claims`: a `policy`
/// relation, an `amount` and a `status`.
async fn insurance(app: &TestApp, t: &Tenant) {
    policies(app, t).await;
    let fields = [
        (
            "policies",
            json!({"key": "customer", "label": "Customer", "type": "relation", "target": "customers"}),
        ),
        (
            "claims",
            json!({"key": "policy", "label": "Policy", "type": "relation", "target": "policies"}),
        ),
        (
            "claims",
            json!({"key": "amount", "label": "Amount", "type": "currency"}),
        ),
        (
            "claims",
            json!({"key": "status", "label": "Status", "type": "select",
                          "options": ["open", "review", "approved", "paid"]}),
        ),
    ];
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "claims", "name": "Claim", "name_plural": "Claims",
               "labels": {"zh-CN": "理赔"}}),
    )
    .await
    .expect(201);
    for (object, field) in fields {
        app.post(&format!("/api/v1/objects/{object}/fields"), &t.token, field)
            .await
            .expect(201);
    }
}

async fn rule(app: &TestApp, t: &Tenant, body: Value) -> Value {
    app.post("/api/v1/rules", &t.token, body).await.expect(201)
}

/// Waits for the rule's first run and returns it.
async fn first_run(app: &TestApp, t: &Tenant, rule_id: &str) -> Value {
    eventually(&format!("a run of rule {rule_id}"), || async {
        let runs = app
            .items(&format!("/api/v1/rules/{rule_id}/runs"), &t.token)
            .await;
        runs.last().cloned()
    })
    .await
}

/// Runs a manual rule on a record now and returns the run.
async fn run_now(app: &TestApp, t: &Tenant, rule_id: &str, record: &str) -> Value {
    app.post(
        &format!("/api/v1/rules/{rule_id}/run"),
        &t.token,
        json!({"record_id": record}),
    )
    .await
    .expect(200)
}

const REVIEW_TASK: &str = r#"
    let policy = get_record("policies", record.policy);
    if type_of(policy) == "map" {
        create_task(#{
            title: "Review claim " + record.name + " on " + policy.policy_no,
            due_in: "1d",
            assignee: policy.owner_id
        });
    }
"#;

#[tokio::test]
async fn a_claim_creates_a_task_for_its_policys_owner_and_rules_set_its_fields() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    let (agent, _) = app.user_with_roles(&t, &["sales"]).await;
    let task_rule = rule(
        &app,
        &t,
        json!({"name": "理赔复核任务", "object": "claims",
               "trigger": {"event": "claims.created"}, "script": REVIEW_TASK}),
    )
    .await;
    assert_eq!(task_rule["object"], "claims");
    let triage = rule(
        &app,
        &t,
        json!({"name": "大额理赔", "object": "claims",
               "trigger": {"event": "claims.created"},
               "condition": "record.amount != () && record.amount > 10000",
               "script": "set_field(\"status\", \"review\");"}),
    )
    .await;
    // A customer-created event is not a claim's.
    app.post(
        "/api/v1/rules",
        &t.token,
        json!({"name": "x", "object": "claims", "trigger": {"event": "customer.created"},
               "script": "set_field(\"status\", \"open\");"}),
    )
    .await
    .expect_problem(422, "validation.failed");

    let customer = app
        .post("/api/v1/customers", &t.token, json!({"name": "张伟"}))
        .await
        .expect(201);
    let policy = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "张伟的车险", "policy_no": "P-77", "customer": id(&customer),
                   "owner_id": agent}),
        )
        .await
        .expect(201);
    let claim = app
        .post(
            "/api/v1/records/claims",
            &t.token,
            json!({"name": "C-1", "policy": id(&policy), "amount": 25000, "status": "open"}),
        )
        .await
        .expect(201);

    // The task rule read the policy and gave its owner a task naming the claim.
    let run = first_run(&app, &t, &id(&task_rule)).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert_eq!(run["record_id"], id(&claim).as_str());
    let task_id = run["effects"][0]["result"]["task_id"]
        .as_str()
        .expect("task id");
    let task = app
        .get(&format!("/api/v1/records/tasks/{task_id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(task["assignee_id"], agent.as_str(), "{task:#}");
    assert_eq!(task["title"], "Review claim C-1 on P-77");
    let tasks = app.items("/api/v1/records/tasks", &t.token).await;
    assert!(tasks.iter().any(|x| x["id"] == task_id), "{tasks:#?}");

    // The triage rule set the claim's own (top-level) field.
    let run = first_run(&app, &t, &id(&triage)).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    let path = format!("/api/v1/records/claims/{}", id(&claim));
    let stored = eventually("the claim in review", || async {
        let c = app.get(&path, &t.token).await.expect(200);
        (c["status"] == "review").then_some(c)
    })
    .await;
    assert!(stored.get("custom").is_none(), "{stored:#}");

    // Dry run of the saved rule on the stored claim: the same task, nothing written.
    let out = app
        .post(
            "/api/v1/rules/dry-run",
            &t.token,
            json!({"rule_id": id(&task_rule), "record_id": id(&claim)}),
        )
        .await
        .expect(200);
    assert_eq!(out["matched"], true, "{out:#}");
    assert_eq!(
        out["effects"],
        json!([{"action": "create_task", "title": "Review claim C-1 on P-77", "due_in": "1d",
                "due_in_seconds": 86400, "assignee": agent}])
    );
    // A draft rule on an inline claim whose policy is gone reads () and does nothing.
    let out = app
        .post(
            "/api/v1/rules/dry-run",
            &t.token,
            json!({"rule": {"name": "x", "object": "claims", "trigger": {"manual": true},
                            "script": REVIEW_TASK},
                   "record": {"name": "C-9", "policy": uuid::Uuid::now_v7().to_string()}}),
        )
        .await
        .expect(200);
    assert_eq!(out["matched"], true, "{out:#}");
    assert_eq!(out["effects"], json!([]));
    assert_eq!(
        app.items("/api/v1/records/tasks", &t.token).await.len(),
        tasks.len(),
        "the dry runs wrote nothing"
    );
}

#[tokio::test]
async fn create_record_makes_custom_and_builtin_records_as_the_run_as_role() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    let policy = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "李娜的寿险", "policy_no": "P-1"}),
        )
        .await
        .expect(201);
    let pid = id(&policy);
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "policy_ref", "label": "Policy", "type": "text"}),
    )
    .await
    .expect(201);
    let maker = rule(
        &app,
        &t,
        json!({"name": "建理赔与客户", "object": "policies", "trigger": {"manual": true},
               "script": r#"
                   create_record("claims", #{name: "Auto " + record.policy_no, policy: record.id,
                                             amount: 100, status: "open"});
                   create_record("customers", #{name: "投保人 " + record.policy_no,
                                                custom: #{policy_ref: record.policy_no}});
               "#}),
    )
    .await;
    let run = run_now(&app, &t, &id(&maker), &pid).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert_eq!(run["effects"][0]["result"]["object"], "claims");
    let claim_id = run["effects"][0]["result"]["record_id"].as_str().unwrap();
    let claim = app
        .get(&format!("/api/v1/records/claims/{claim_id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(claim["policy"], pid.as_str(), "{claim:#}");
    assert_eq!(claim["amount"], 100.0);
    let customer_id = run["effects"][1]["result"]["record_id"].as_str().unwrap();
    let customer = app
        .get(&format!("/api/v1/customers/{customer_id}"), &t.token)
        .await
        .expect(200);
    assert_eq!(customer["name"], "投保人 P-1");
    assert_eq!(customer["custom"]["policy_ref"], "P-1", "{customer:#}");

    // Invalid fields fail the effect with the API's codes; nothing of the run stays.
    let invalid = rule(
        &app,
        &t,
        json!({"name": "坏理赔", "object": "policies", "trigger": {"manual": true},
               "script": r#"create_record("claims", #{name: "Bad", status: "lost"});"#}),
    )
    .await;
    let run = run_now(&app, &t, &id(&invalid), &pid).await;
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["error"]["code"], "validation.failed", "{run:#}");
    assert_eq!(run["error"]["errors"][0]["field"], "status", "{run:#}");
    assert_eq!(
        run["error"]["errors"][0]["code"], "invalid_option",
        "{run:#}"
    );
    let ghost = rule(
        &app,
        &t,
        json!({"name": "无对象", "object": "policies", "trigger": {"manual": true},
               "script": r#"create_record("ghosts", #{name: "x"});"#}),
    )
    .await;
    let run = run_now(&app, &t, &id(&ghost), &pid).await;
    assert_eq!(run["error"]["code"], "object.not_found", "{run:#}");

    // A run-as role without claims:create cannot create claims from a rule.
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "claims_viewer", "permissions": ["policies:read", "claims:read"],
               "scopes": {"policies": "all", "claims": "all"}}),
    )
    .await
    .expect(201);
    let weak = rule(
        &app,
        &t,
        json!({"name": "越权建理赔", "object": "policies", "trigger": {"event": "policies.created"},
               "run_as_role": "claims_viewer",
               "script": r#"create_record("claims", #{name: "From " + record.policy_no});"#}),
    )
    .await;
    app.post(
        "/api/v1/records/policies",
        &t.token,
        json!({"name": "王芳的健康险", "policy_no": "P-2"}),
    )
    .await
    .expect(201);
    let run = first_run(&app, &t, &id(&weak)).await;
    assert_eq!(run["outcome"], "failed", "{run:#}");
    assert_eq!(run["error"]["code"], "auth.forbidden", "{run:#}");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claims:create"),
        "{run:#}"
    );
    let claims = app.items("/api/v1/records/claims", &t.token).await;
    assert_eq!(claims.len(), 1, "only the admin rule's claim: {claims:#?}");
}

#[tokio::test]
async fn an_approval_locks_a_claim_until_it_is_approved() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    let (_, finance) = app.user_with_roles(&t, &["finance"]).await;
    let claim = app
        .post(
            "/api/v1/records/claims",
            &t.token,
            json!({"name": "C-5", "amount": 80000, "status": "review"}),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/records/claims/{}", id(&claim));
    let unknown = app
        .post(
            "/api/v1/approvals",
            &t.token,
            json!({"object": "ghosts", "record_id": id(&claim),
                   "steps": [{"approvers": ["role:finance"]}]}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(unknown["errors"][0]["field"], "object", "{unknown:#}");
    assert_eq!(
        unknown["errors"][0]["code"], "unknown_object",
        "{unknown:#}"
    );
    let approval = app
        .post(
            "/api/v1/approvals",
            &t.token,
            json!({"object": "claims", "record_id": id(&claim), "title": "大额理赔审批",
                   "steps": [{"approvers": ["role:finance"]}]}),
        )
        .await
        .expect(201);
    assert_eq!(approval["object"], "claims");
    let locked = app
        .patch(&path, &t.token, json!({"status": "approved"}))
        .await
        .expect_problem(409, "record.pending_approval");
    assert_eq!(locked["approval_id"], id(&approval).as_str());
    let decided = app
        .post(
            &format!("/api/v1/approvals/{}/approve", id(&approval)),
            &finance,
            json!({"comment": "同意赔付"}),
        )
        .await
        .expect(200);
    assert_eq!(decided["status"], "approved");
    let claim = app
        .patch(&path, &t.token, json!({"status": "approved"}))
        .await
        .expect(200);
    assert_eq!(claim["status"], "approved");

    // A rule on the claim asks for the approval itself.
    let asker = rule(
        &app,
        &t,
        json!({"name": "理赔审批", "object": "claims", "trigger": {"manual": true},
               "script": r#"request_approval(#{approvers: ["role:finance"]});"#}),
    )
    .await;
    let run = run_now(&app, &t, &id(&asker), &id(&claim)).await;
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    app.patch(&path, &t.token, json!({"status": "paid"}))
        .await
        .expect_problem(409, "record.pending_approval");
}

#[tokio::test]
async fn rules_need_an_object_and_deleting_it_turns_them_off() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let refused = app
        .post(
            "/api/v1/rules",
            &t.token,
            json!({"name": "x", "object": "claims", "trigger": {"event": "claims.created"},
                   "script": "set_field(\"status\", \"open\");"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(refused["errors"][0]["field"], "object", "{refused:#}");
    assert_eq!(
        refused["errors"][0]["code"], "unknown_object",
        "{refused:#}"
    );
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("GET /api/v1/objects"),
        "{refused:#}"
    );
    app.post(
        "/api/v1/rules/dry-run",
        &t.token,
        json!({"rule": {"name": "x", "object": "claims", "trigger": {"manual": true},
                        "script": "set_field(\"status\", \"open\");"},
               "record": {"name": "C"}}),
    )
    .await
    .expect_problem(422, "validation.failed");

    insurance(&app, &t).await;
    let r = rule(
        &app,
        &t,
        json!({"name": "新理赔", "object": "claims", "trigger": {"event": "claims.created"},
               "script": "set_field(\"status\", \"open\");"}),
    )
    .await;
    let claim = app
        .post("/api/v1/records/claims", &t.token, json!({"name": "C-1"}))
        .await
        .expect(201);
    first_run(&app, &t, &id(&r)).await;
    let approval = app
        .post(
            "/api/v1/approvals",
            &t.token,
            json!({"object": "claims", "record_id": id(&claim),
                   "steps": [{"approvers": ["owner"]}]}),
        )
        .await
        .expect(201);

    app.delete("/api/v1/objects/claims?purge=true", &t.token)
        .await
        .expect(204);
    let off = app
        .get(&format!("/api/v1/rules/{}", id(&r)), &t.token)
        .await
        .expect(200);
    assert_eq!(off["enabled"], false, "{off:#}");
    assert!(
        off["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("'claims' was deleted"),
        "{off:#}"
    );
    app.get(&format!("/api/v1/approvals/{}", id(&approval)), &t.token)
        .await
        .expect_problem(404, "approval.not_found");

    // A new object of the same key starts clean: no rule fires, no approval lists.
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "claims", "name": "Claim", "name_plural": "Claims"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/records/claims", &t.token, json!({"name": "C-2"}))
        .await
        .expect(201);
    let approvals = app.items("/api/v1/approvals?object=claims", &t.token).await;
    assert!(approvals.is_empty(), "{approvals:#?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let runs = app
        .items(&format!("/api/v1/rules/{}/runs", id(&r)), &t.token)
        .await;
    assert_eq!(runs.len(), 1, "the rule stayed off: {runs:#?}");
}
