//! Roll-up fields: aggregates of related records kept exact by the engine in the writing
//! transaction, filterable and sortable, rebuilt on demand.

use crate::helpers::{id, TestApp};
use crate::objects_relations::{create, field, insurance};
use serde_json::{json, Value};

async fn customer(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/api/v1/records/customers/{id}"), token)
        .await
        .expect(200)
}

#[tokio::test]
async fn rollups_follow_every_write_of_the_related_records() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    let zhang = create(&app, &t.token, "customers", json!({"name": "张伟"})).await;
    let li = create(&app, &t.token, "customers", json!({"name": "李娜"})).await;
    // A policy that exists before the roll-ups are defined is counted at once.
    let p1 = create(
        &app,
        &t.token,
        "policies",
        json!({"name": "寿险", "policy_no": "P-1", "product": "life", "premium": "1000.50",
               "customer": id(&zhang)}),
    )
    .await;
    let count = field(
        &app,
        &t,
        "customers",
        json!({"key": "policy_count", "label": "Policies", "type": "rollup",
               "labels": {"zh-CN": "保单数"},
               "rollup": {"relation": "policies.customer", "fn": "count"}}),
    )
    .await;
    assert_eq!(count["type"], "rollup");
    field(
        &app,
        &t,
        "customers",
        json!({"key": "premium_total", "label": "Premium total", "type": "rollup",
               "rollup": {"relation": "policies.customer", "fn": "sum", "field": "premium"}}),
    )
    .await;
    field(
        &app,
        &t,
        "customers",
        json!({"key": "life_policies", "label": "Life policies", "type": "rollup",
               "rollup": {"relation": "policies.customer", "fn": "count",
                          "filter": {"product": "life"}}}),
    )
    .await;
    let c = customer(&app, &t.token, &id(&zhang)).await;
    assert_eq!(c["custom"]["policy_count"], 1.0, "{c:#}");
    assert_eq!(c["custom"]["premium_total"], 1000.5);
    assert_eq!(c["custom"]["life_policies"], 1.0);

    // Create, change, move, delete, restore, purge: each keeps the totals exact.
    let p2 = create(
        &app,
        &t.token,
        "policies",
        json!({"name": "车险", "policy_no": "P-2", "product": "auto", "premium": "200",
               "customer": id(&zhang)}),
    )
    .await;
    let c = customer(&app, &t.token, &id(&zhang)).await;
    assert_eq!(c["custom"]["policy_count"], 2.0);
    assert_eq!(c["custom"]["premium_total"], 1200.5);
    assert_eq!(c["custom"]["life_policies"], 1.0);
    app.patch(
        &format!("/api/v1/records/policies/{}", id(&p2)),
        &t.token,
        json!({"premium": "300", "product": "life"}),
    )
    .await
    .expect(200);
    let c = customer(&app, &t.token, &id(&zhang)).await;
    assert_eq!(c["custom"]["premium_total"], 1300.5);
    assert_eq!(c["custom"]["life_policies"], 2.0);
    app.patch(
        &format!("/api/v1/records/policies/{}", id(&p2)),
        &t.token,
        json!({"customer": id(&li)}),
    )
    .await
    .expect(200);
    assert_eq!(
        customer(&app, &t.token, &id(&zhang)).await["custom"]["policy_count"],
        1.0
    );
    assert_eq!(
        customer(&app, &t.token, &id(&li)).await["custom"]["premium_total"],
        300.0
    );
    app.delete(&format!("/api/v1/records/policies/{}", id(&p1)), &t.token)
        .await
        .expect(204);
    let c = customer(&app, &t.token, &id(&zhang)).await;
    assert_eq!(c["custom"]["policy_count"], 0.0);
    assert_eq!(c["custom"]["premium_total"], 0.0);
    app.post(
        &format!("/api/v1/records/policies/{}/restore", id(&p1)),
        &t.token,
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(
        customer(&app, &t.token, &id(&zhang)).await["custom"]["policy_count"],
        1.0
    );
    app.delete(
        &format!("/api/v1/records/policies/{}?purge=true", id(&p1)),
        &t.token,
    )
    .await
    .expect(204);
    assert_eq!(
        customer(&app, &t.token, &id(&zhang)).await["custom"]["policy_count"],
        0.0
    );

    // Read-only, filterable and sortable like any number.
    let refused = app
        .patch(
            &format!("/api/v1/records/customers/{}", id(&li)),
            &t.token,
            json!({"custom": {"policy_count": 9}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(refused["errors"][0]["code"], "read_only", "{refused:#}");
    let with_policies = app
        .items(
            "/api/v1/records/customers?filter[custom.policy_count][gte]=1&sort=-custom.premium_total",
            &t.token,
        )
        .await;
    assert_eq!(with_policies.len(), 1);
    assert_eq!(with_policies[0]["name"], "李娜");

    // What a roll-up uses cannot go from under it.
    app.delete(
        "/api/v1/objects/policies/fields/customer?confirm=true",
        &t.token,
    )
    .await
    .expect_problem(409, "field.in_use");
    app.delete("/api/v1/objects/policies?purge=true", &t.token)
        .await
        .expect_problem(409, "object.referenced");

    // Rebuild: a total tampered with behind the engine's back is put right.
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".customers SET cf_policy_count = 42"
    ))
    .execute(&app.pool)
    .await
    .unwrap();
    let rebuilt = app
        .post(
            "/api/v1/objects/customers/fields/policy_count/rebuild",
            &t.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(rebuilt["updated"], 2);
    assert_eq!(
        customer(&app, &t.token, &id(&li)).await["custom"]["policy_count"],
        1.0
    );
}

#[tokio::test]
async fn concurrent_writes_never_lose_a_count() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    field(
        &app,
        &t,
        "customers",
        json!({"key": "policy_count", "label": "Policies", "type": "rollup",
               "rollup": {"relation": "policies.customer", "fn": "count"}}),
    )
    .await;
    let zhang = create(&app, &t.token, "customers", json!({"name": "张伟"})).await;
    let writes = (0..20).map(|i| {
        let (app, token, customer) = (&app, t.token.clone(), id(&zhang));
        async move {
            app.post(
                "/api/v1/records/policies",
                &token,
                json!({"name": format!("保单{i}"), "policy_no": format!("P-{i}"),
                       "customer": customer}),
            )
            .await
            .expect(201)
        }
    });
    futures::future::join_all(writes).await;
    assert_eq!(
        customer(&app, &t.token, &id(&zhang)).await["custom"]["policy_count"],
        20.0
    );
}

#[tokio::test]
async fn rollup_definitions_are_checked() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    insurance(&app, &t).await;
    for (rollup, hint) in [
        (
            json!({"relation": "policies", "fn": "count"}),
            "relation must be",
        ),
        (
            json!({"relation": "policies.agent", "fn": "count"}),
            "pointing to customers",
        ),
        (
            json!({"relation": "policies.customer", "fn": "avg"}),
            "fn must be",
        ),
        (
            json!({"relation": "policies.customer", "fn": "sum", "field": "policy_no"}),
            "no number field",
        ),
        (
            json!({"relation": "policies.customer", "fn": "count", "field": "premium"}),
            "leave field out",
        ),
    ] {
        let problem = app
            .post(
                "/api/v1/objects/customers/fields",
                &t.token,
                json!({"key": "bad", "label": "Bad", "type": "rollup", "rollup": rollup}),
            )
            .await
            .expect_problem(422, "validation.failed");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(hint),
            "{hint}: {problem:#}"
        );
    }
    let bad_filter = app
        .post(
            "/api/v1/objects/customers/fields",
            &t.token,
            json!({"key": "bad", "label": "Bad", "type": "rollup",
                   "rollup": {"relation": "policies.customer", "fn": "count",
                              "filter": {"product": "pet"}}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(
        bad_filter["errors"][0]["field"], "rollup.filter.product",
        "{bad_filter:#}"
    );
}
