//! Relations between objects: foreign keys with an index, expansions, related lists,
//! cross-object filters and search, and what deleting a pointed-to record does.

use crate::helpers::{id, Tenant, TestApp};
use serde_json::{json, Value};

pub async fn field(app: &TestApp, t: &Tenant, object: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/objects/{object}/fields"), &t.token, body)
        .await
        .expect(201)
}

/// customers ← policies (customer: restrict, agent → contacts: set_null) ← claims (policy:
/// cascade).
pub async fn insurance(app: &TestApp, t: &Tenant) {
    crate::objects::policies(app, t).await;
    field(
        app,
        t,
        "policies",
        json!({"key": "customer", "label": "Customer", "type": "relation", "target": "customers",
               "labels": {"zh-CN": "投保人"}}),
    )
    .await;
    field(
        app,
        t,
        "policies",
        json!({"key": "agent", "label": "Agent", "type": "relation", "target": "contacts",
               "on_delete": "set_null"}),
    )
    .await;
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "claims", "name": "Claim", "name_plural": "Claims",
               "labels": {"zh-CN": "理赔"}}),
    )
    .await
    .expect(201);
    let policy = field(
        app,
        t,
        "claims",
        json!({"key": "policy", "label": "Policy", "type": "relation", "target": "policies",
               "on_delete": "cascade", "required": true}),
    )
    .await;
    assert_eq!(policy["on_delete"], "cascade");
    field(
        app,
        t,
        "claims",
        json!({"key": "amount", "label": "Amount", "type": "currency"}),
    )
    .await;
}

pub async fn create(app: &TestApp, token: &str, object: &str, body: Value) -> Value {
    app.post(&format!("/api/v1/records/{object}"), token, body)
        .await
        .expect(201)
}

#[tokio::test]
async fn relations_expand_list_filter_and_search_across_objects() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;

    // The relation column has a real foreign key and an index.
    let schema = app.schema_of(&t).await;
    let indexed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND tablename = 'o_claims' \
         AND indexdef LIKE '%(cf_policy)%'",
    )
    .bind(&schema)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(indexed, 1);

    let zhang = create(&app, &t.token, "customers", json!({"name": "张伟"})).await;
    let li = create(&app, &t.token, "customers", json!({"name": "李娜"})).await;
    let p1 = create(
        &app,
        &t.token,
        "policies",
        json!({"name": "张伟寿险", "policy_no": "P-2024-001", "product": "life",
               "customer": id(&zhang)}),
    )
    .await;
    create(
        &app,
        &t.token,
        "policies",
        json!({"name": "张伟车险", "policy_no": "P-2024-002", "product": "auto",
               "customer": id(&zhang)}),
    )
    .await;
    create(
        &app,
        &t.token,
        "policies",
        json!({"name": "李娜健康险", "policy_no": "P-2024-003", "product": "health",
               "customer": id(&li)}),
    )
    .await;
    let claim = create(
        &app,
        &t.token,
        "claims",
        json!({"name": "住院理赔", "policy": id(&p1), "amount": 8800}),
    )
    .await;

    // A relation to a record that does not exist is refused naming the field.
    let dangling = app
        .post(
            "/api/v1/records/claims",
            &t.token,
            json!({"name": "x", "policy": uuid::Uuid::now_v7()}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(dangling["errors"][0]["field"], "policy", "{dangling:#}");
    assert_eq!(dangling["errors"][0]["code"], "unknown_reference");

    // Find a customer by policy number (the generic path and the fixed one).
    for path in [
        "/api/v1/records/customers?filter[policies.policy_no]=P-2024-001",
        "/api/v1/customers?filter[policies.policy_no][eq]=P-2024-001",
    ] {
        let found = app.items(path, &t.token).await;
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert_eq!(found[0]["name"], "张伟");
    }
    let count = app
        .get(
            "/api/v1/records/customers/count?filter[policies.product][in]=life,health",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(count["count"], 2);
    // Following a record's own relation: claims of life policies.
    let life_claims = app
        .items(
            "/api/v1/records/claims?filter[policy.product]=life",
            &t.token,
        )
        .await;
    assert_eq!(life_claims.len(), 1);
    app.get(
        "/api/v1/records/customers?filter[policies.nonexistent]=1",
        &t.token,
    )
    .await
    .expect_problem(422, "validation.failed");
    // q can opt in to searching related records' searchable fields.
    assert!(app
        .items("/api/v1/records/customers?q=P-2024-003", &t.token)
        .await
        .is_empty());
    let by_policy = app
        .items(
            "/api/v1/records/customers?q=P-2024-003&search_related=policies",
            &t.token,
        )
        .await;
    assert_eq!(by_policy.len(), 1);
    assert_eq!(by_policy[0]["name"], "李娜");

    // A customer's policies.
    let related = app
        .items(
            &format!(
                "/api/v1/records/customers/{}/related/policies?sort=policy_no",
                id(&zhang)
            ),
            &t.token,
        )
        .await;
    let numbers: Vec<&str> = related
        .iter()
        .filter_map(|p| p["policy_no"].as_str())
        .collect();
    assert_eq!(numbers, ["P-2024-001", "P-2024-002"]);
    app.get(
        &format!(
            "/api/v1/records/customers/{}/related/policies",
            uuid::Uuid::now_v7()
        ),
        &t.token,
    )
    .await
    .expect_problem(404, "record.not_found");

    // A claim with its policy and the policy's customer expanded.
    let got = app
        .get(
            &format!(
                "/api/v1/records/claims/{}?expand=policy,policy.customer",
                id(&claim)
            ),
            &t.token,
        )
        .await
        .expect(200);
    let policy = &got["expanded"]["policy"];
    assert_eq!(policy["name"], "张伟寿险", "{got:#}");
    assert_eq!(policy["object"], "policies");
    assert_eq!(policy["expanded"]["customer"]["name"], "张伟", "{got:#}");
    let listed = app
        .items("/api/v1/records/claims?expand=policy", &t.token)
        .await;
    assert_eq!(listed[0]["expanded"]["policy"]["id"], p1["id"]);
    let not_relation = app
        .get(
            &format!("/api/v1/records/claims/{}?expand=amount", id(&claim)),
            &t.token,
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(not_relation["errors"][0]["code"], "unknown_relation");

    // Someone who sees the claim but not its policy gets the policy as hidden, and cannot
    // point a claim at a policy out of their sight.
    let (sales_id, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.patch(
        &format!("/api/v1/records/claims/{}", id(&claim)),
        &t.token,
        json!({"owner_id": sales_id}),
    )
    .await
    .expect(200);
    let seen = app
        .get(
            &format!("/api/v1/records/claims/{}?expand=policy", id(&claim)),
            &sales,
        )
        .await
        .expect(200);
    assert_eq!(
        seen["expanded"]["policy"],
        json!({"id": id(&p1), "hidden": true})
    );
    let refused = app
        .post(
            "/api/v1/records/claims",
            &sales,
            json!({"name": "x", "policy": id(&p1)}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(refused["errors"][0]["code"], "unknown_reference");
    // Nor can they find customers through policies they cannot see.
    assert!(app
        .items(
            "/api/v1/records/customers?filter[policies.policy_no]=P-2024-001",
            &sales
        )
        .await
        .is_empty());
}

#[tokio::test]
async fn deleting_a_pointed_to_record_follows_on_delete() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    let zhang = create(&app, &t.token, "customers", json!({"name": "张伟"})).await;
    let agent = create(
        &app,
        &t.token,
        "contacts",
        json!({"name": "王经纪", "customer_id": id(&zhang)}),
    )
    .await;
    let p1 = create(
        &app,
        &t.token,
        "policies",
        json!({"name": "寿险", "policy_no": "P-1", "customer": id(&zhang), "agent": id(&agent)}),
    )
    .await;
    let c1 = create(
        &app,
        &t.token,
        "claims",
        json!({"name": "理赔一", "policy": id(&p1)}),
    )
    .await;
    let c2 = create(
        &app,
        &t.token,
        "claims",
        json!({"name": "理赔二", "policy": id(&p1)}),
    )
    .await;

    // restrict: the customer cannot go while a policy points to it.
    let blocked = app
        .delete(
            &format!("/api/v1/records/customers/{}", id(&zhang)),
            &t.token,
        )
        .await
        .expect_problem(409, "record.referenced");
    assert!(
        blocked["detail"]
            .as_str()
            .unwrap()
            .contains("policies.customer: 1"),
        "{blocked:#}"
    );

    // set_null: deleting the agent empties the policy's agent, with history.
    app.delete(&format!("/api/v1/contacts/{}", id(&agent)), &t.token)
        .await
        .expect(204);
    let policy = app
        .get(&format!("/api/v1/records/policies/{}", id(&p1)), &t.token)
        .await
        .expect(200);
    assert_eq!(policy["agent"], Value::Null);
    assert_eq!(policy["version"], 2);
    let history = app
        .items(
            &format!("/api/v1/records/policies/{}/history", id(&p1)),
            &t.token,
        )
        .await;
    assert_eq!(history[0]["changes"]["agent"]["after"], Value::Null);

    // cascade: deleting the policy takes its claims to the recycle bin.
    app.delete(&format!("/api/v1/records/policies/{}", id(&p1)), &t.token)
        .await
        .expect(204);
    for c in [&c1, &c2] {
        app.get(&format!("/api/v1/records/claims/{}", id(c)), &t.token)
            .await
            .expect_problem(404, "record.not_found");
    }
    let binned = app
        .items("/api/v1/records/claims?deleted=true", &t.token)
        .await;
    assert_eq!(binned.len(), 2);
    // With the policy in the bin, the customer may go.
    app.delete(
        &format!("/api/v1/records/customers/{}", id(&zhang)),
        &t.token,
    )
    .await
    .expect(204);

    // Purging the policy purges its claims (no foreign key left pointing).
    app.post(
        &format!("/api/v1/records/customers/{}/restore", id(&zhang)),
        &t.token,
        json!({}),
    )
    .await
    .expect(200);
    app.delete(
        &format!("/api/v1/records/policies/{}?purge=true", id(&p1)),
        &t.token,
    )
    .await
    .expect(204);
    let schema = app.schema_of(&t).await;
    let left: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".o_claims"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn several_relations_to_one_object_are_named() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    field(
        &app,
        &t,
        "policies",
        json!({"key": "beneficiary", "label": "Beneficiary", "type": "relation",
               "target": "customers", "on_delete": "set_null"}),
    )
    .await;
    let zhang = create(&app, &t.token, "customers", json!({"name": "张伟"})).await;
    let wang = create(&app, &t.token, "customers", json!({"name": "王芳"})).await;
    create(
        &app,
        &t.token,
        "policies",
        json!({"name": "寿险", "policy_no": "P-9", "customer": id(&zhang),
               "beneficiary": id(&wang)}),
    )
    .await;
    let ambiguous = app
        .get(
            "/api/v1/records/customers?filter[policies.policy_no]=P-9",
            &t.token,
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(ambiguous["errors"][0]["code"], "ambiguous_relation");
    assert!(
        ambiguous["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("customer, beneficiary"),
        "{ambiguous:#}"
    );
    let beneficiaries = app
        .items(
            "/api/v1/records/customers?filter[policies.beneficiary.policy_no]=P-9",
            &t.token,
        )
        .await;
    assert_eq!(beneficiaries.len(), 1);
    assert_eq!(beneficiaries[0]["name"], "王芳");
    app.get(
        &format!("/api/v1/records/customers/{}/related/policies", id(&zhang)),
        &t.token,
    )
    .await
    .expect_problem(422, "validation.failed");
    let via = app
        .items(
            &format!(
                "/api/v1/records/customers/{}/related/policies?via=customer",
                id(&zhang)
            ),
            &t.token,
        )
        .await;
    assert_eq!(via.len(), 1);
}
