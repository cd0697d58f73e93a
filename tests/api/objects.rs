//! Custom objects: defined over the API, served by the same engine as built-in objects under
//! `/api/v1/records/{object}`, isolated per tenant, checked by their own permissions.

use crate::helpers::{id, Tenant, TestApp};
use serde_json::{json, Value};

/// Creates `policies` with a unique searchable policy number, a product select, a premium
/// and start date; returns the object as created.
pub async fn policies(app: &TestApp, t: &Tenant) -> Value {
    let object = app
        .post(
            "/api/v1/objects",
            &t.token,
            json!({"key": "policies", "name": "Policy", "name_plural": "Policies",
                   "labels": {"en": "Policies", "zh-CN": "保单"}, "icon": "file-protect"}),
        )
        .await
        .expect(201);
    for field in [
        json!({"key": "policy_no", "label": "Policy number", "type": "text", "unique": true,
               "required": true, "labels": {"zh-CN": "保单号"}}),
        json!({"key": "product", "label": "Product", "type": "select",
               "options": ["life", "health", "auto"]}),
        json!({"key": "premium", "label": "Premium", "type": "currency"}),
        json!({"key": "start_date", "label": "Start", "type": "date"}),
    ] {
        app.post("/api/v1/objects/policies/fields", &t.token, field)
            .await
            .expect(201);
    }
    object
}

#[tokio::test]
async fn a_tenant_defines_an_object_and_works_its_records_like_customers() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let object = policies(&app, &t).await;
    assert_eq!(object["key"], "policies");
    assert_eq!(object["builtin"], false);
    assert_eq!(object["labels"]["zh-CN"], "保单");
    let keys: Vec<&str> = object["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert_eq!(keys, ["name", "owner_id", "team_id", "tags"], "{object:#}");
    // Built-in fields come with their labels in both languages.
    assert_eq!(object["fields"][0]["labels"]["zh-CN"], "名称", "{object:#}");
    assert_eq!(object["fields"][0]["label"], "Name");
    let customer_fields = app
        .get("/api/v1/objects/customers/fields", &t.token)
        .await
        .expect(200);
    let stage = customer_fields
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "stage")
        .cloned()
        .unwrap_or_default();
    assert_eq!(stage["labels"]["zh-CN"], "阶段");
    assert_eq!(
        stage["option_labels"]["churned"]["zh-CN"], "流失",
        "{stage:#}"
    );

    // The table is real, in the tenant's schema, owned like every other table there.
    let schema = app.schema_of(&t).await;
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'o_policies'",
    )
    .bind(&schema)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(owner, schema);
    let premium_type: String = sqlx::query_scalar(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'o_policies' AND a.attname = 'cf_premium'",
    )
    .bind(&schema)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(premium_type, "numeric(20,4)");

    // GET /objects lists built-in objects first, then this one with its fields.
    let all = app.get("/api/v1/objects", &t.token).await.expect(200);
    let listed: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    assert_eq!(listed.first(), Some(&"customers"));
    assert_eq!(listed.last(), Some(&"policies"));
    let fields = all.as_array().unwrap().last().unwrap()["fields"].clone();
    assert_eq!(fields.as_array().map(Vec::len), Some(8), "{fields:#}");

    // Records carry their fields at the top level, beside the system fields.
    let created = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "张伟的寿险", "policy_no": "P-2024-001", "product": "life",
                   "premium": "1200.50", "start_date": "2024-03-01", "tags": ["vip"]}),
        )
        .await;
    assert_eq!(created.headers["etag"], "\"1\"");
    let p1 = created.expect(201);
    assert_eq!(p1["policy_no"], "P-2024-001");
    assert_eq!(p1["premium"], 1200.5);
    assert_eq!(p1["owner_id"], t.admin_id.as_str(), "the creator owns it");
    assert!(p1.get("custom").is_none(), "{p1:#}");
    let p1_id = id(&p1);
    app.post(
        "/api/v1/records/policies",
        &t.token,
        json!({"name": "李娜的车险", "policy_no": "P-2024-002", "product": "auto"}),
    )
    .await
    .expect(201);

    // The custom wrapper and unknown fields are refused, naming the field.
    let wrapped = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "x", "custom": {"policy_no": "P-9"}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(wrapped["errors"][0]["field"], "custom", "{wrapped:#}");
    let missing = app
        .post("/api/v1/records/policies", &t.token, json!({"name": "x"}))
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(missing["errors"][0]["field"], "policy_no", "{missing:#}");
    let bad = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "x", "policy_no": "P-3", "product": "pet"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"][0]["field"], "product", "{bad:#}");

    // Unique fields: a second P-2024-001 is 409 naming the field.
    let dup = app
        .post(
            "/api/v1/records/policies",
            &t.token,
            json!({"name": "重复", "policy_no": "P-2024-001"}),
        )
        .await
        .expect_problem(409, "record.duplicate_value");
    assert!(
        dup["detail"].as_str().unwrap().contains("policy_no"),
        "{dup:#}"
    );

    // Filter, sort, search (Chinese names), count.
    let by_no = app
        .items(
            "/api/v1/records/policies?filter[policy_no]=P-2024-001",
            &t.token,
        )
        .await;
    assert_eq!(by_no.len(), 1);
    assert_eq!(by_no[0]["id"], p1["id"]);
    let autos = app
        .items(
            "/api/v1/records/policies?filter[product][in]=auto,health",
            &t.token,
        )
        .await;
    assert_eq!(autos.len(), 1);
    assert_eq!(autos[0]["name"], "李娜的车险");
    let found = app.items("/api/v1/records/policies?q=寿险", &t.token).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let sorted = app
        .items("/api/v1/records/policies?sort=-policy_no", &t.token)
        .await;
    assert_eq!(sorted[0]["policy_no"], "P-2024-002");
    let count = app
        .get("/api/v1/records/policies/count?tag=vip", &t.token)
        .await
        .expect(200);
    assert_eq!(count["count"], 1);

    // ETag / If-Match, history.
    let stale = app
        .send(
            app.client
                .patch(format!("{}/api/v1/records/policies/{p1_id}", app.base))
                .bearer_auth(&t.token)
                .header("If-Match", "\"7\"")
                .json(&json!({"premium": "1300"})),
        )
        .await;
    assert_eq!(stale.status.as_u16(), 412, "{:#}", stale.body);
    let updated = app
        .patch(
            &format!("/api/v1/records/policies/{p1_id}"),
            &t.token,
            json!({"premium": "1300", "product": "health"}),
        )
        .await
        .expect(200);
    assert_eq!(updated["version"], 2);
    let history = app
        .items(
            &format!("/api/v1/records/policies/{p1_id}/history"),
            &t.token,
        )
        .await;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["action"], "updated");
    assert_eq!(history[0]["changes"]["product"]["after"], "health");

    // Tags, recycle bin, restore.
    app.post(
        &format!("/api/v1/records/policies/{p1_id}/tags"),
        &t.token,
        json!({"tags": ["续保"]}),
    )
    .await
    .expect(200);
    app.delete(&format!("/api/v1/records/policies/{p1_id}"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/records/policies/{p1_id}"), &t.token)
        .await
        .expect_problem(404, "record.not_found");
    let bin = app
        .items("/api/v1/records/policies?deleted=true", &t.token)
        .await;
    assert_eq!(bin.len(), 1);
    let restored = app
        .post(
            &format!("/api/v1/records/policies/{p1_id}/restore"),
            &t.token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(restored["tags"], json!(["vip", "续保"]));

    // The generic path serves built-in objects too.
    let customer = app
        .post(
            "/api/v1/records/customers",
            &t.token,
            json!({"name": "上海蓝天贸易"}),
        )
        .await
        .expect(201);
    app.get(&format!("/api/v1/customers/{}", id(&customer)), &t.token)
        .await
        .expect(200);
    app.get("/api/v1/records/nothings", &t.token)
        .await
        .expect_problem(404, "object.not_found");
    app.get("/api/v1/records/Bad-Key", &t.token)
        .await
        .expect_problem(404, "object.not_found");
}

#[tokio::test]
async fn object_definitions_are_validated_and_limited() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for (body, field, code) in [
        (
            json!({"key": "Policies", "name": "P", "name_plural": "Ps"}),
            "key",
            "invalid_key",
        ),
        (
            json!({"key": "customers", "name": "C", "name_plural": "Cs"}),
            "key",
            "reserved_key",
        ),
        (
            json!({"key": "claims", "name": " ", "name_plural": "Claims"}),
            "name",
            "invalid",
        ),
    ] {
        let problem = app
            .post("/api/v1/objects", &t.token, body)
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(problem["errors"][0]["field"], field, "{problem:#}");
        assert_eq!(problem["errors"][0]["code"], code, "{problem:#}");
    }
    policies(&app, &t).await;
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "policies", "name": "P", "name_plural": "Ps"}),
    )
    .await
    .expect_problem(409, "object.exists");
    // A custom object's own fields cannot shadow its built-in ones.
    let shadow = app
        .post(
            "/api/v1/objects/policies/fields",
            &t.token,
            json!({"key": "name", "label": "Name", "type": "text"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(shadow["errors"][0]["code"], "reserved_key", "{shadow:#}");
    // Built-in objects cannot be renamed or deleted.
    app.delete("/api/v1/objects/customers", &t.token)
        .await
        .expect_problem(409, "object.builtin");

    // Renaming keeps the key.
    let renamed = app
        .patch(
            "/api/v1/objects/policies",
            &t.token,
            json!({"name": "Insurance policy", "labels": {"zh-CN": "保险单"}, "icon": null}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["key"], "policies");
    assert_eq!(renamed["name"], "Insurance policy");
    assert_eq!(renamed["labels"]["zh-CN"], "保险单");
    assert!(renamed.get("icon").is_none(), "{renamed:#}");
}

#[tokio::test]
async fn deleting_an_object_needs_purge_when_it_has_records_and_is_audited() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    policies(&app, &t).await;
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "claims", "name": "Claim", "name_plural": "Claims"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/claims/fields",
        &t.token,
        json!({"key": "policy", "label": "Policy", "type": "relation", "target": "policies"}),
    )
    .await
    .expect(201);
    let referenced = app
        .delete("/api/v1/objects/policies?purge=true", &t.token)
        .await
        .expect_problem(409, "object.referenced");
    assert!(
        referenced["detail"]
            .as_str()
            .unwrap()
            .contains("claims.policy"),
        "{referenced:#}"
    );
    app.delete("/api/v1/objects/claims", &t.token)
        .await
        .expect(204);

    app.post(
        "/api/v1/records/policies",
        &t.token,
        json!({"name": "A", "policy_no": "P-1"}),
    )
    .await
    .expect(201);
    let busy = app
        .delete("/api/v1/objects/policies", &t.token)
        .await
        .expect_problem(409, "object.has_records");
    assert!(
        busy["detail"].as_str().unwrap().contains("1 record"),
        "{busy:#}"
    );

    // Someone without objects:manage cannot, even with purge.
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.delete("/api/v1/objects/policies?purge=true", &sales)
        .await
        .expect_problem(403, "auth.forbidden");

    app.delete("/api/v1/objects/policies?purge=true", &t.token)
        .await
        .expect(204);
    app.get("/api/v1/records/policies", &t.token)
        .await
        .expect_problem(404, "object.not_found");
    let schema = app.schema_of(&t).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'o\\_%'",
    )
    .bind(&schema)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let audit = app
        .items("/api/v1/audit?action=object.deleted", &t.token)
        .await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0]["detail"]["records_purged"], 1, "{audit:?}");
    // The key is free again, with no permission left over from before.
    let roles = app.get("/api/v1/roles/sales", &t.token).await.expect(200);
    assert!(
        !roles["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("policies:"))),
        "{roles:#}"
    );
    policies(&app, &t).await;
}

#[tokio::test]
async fn custom_objects_have_their_own_permissions_and_scopes() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    policies(&app, &t).await;

    // Every role got on policies what it holds on customers; admin everything.
    let sales_role = app.get("/api/v1/roles/sales", &t.token).await.expect(200);
    let perms: Vec<&str> = sales_role["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|p| p.starts_with("policies:"))
        .collect();
    assert_eq!(
        perms,
        ["policies:read", "policies:create", "policies:update"],
        "{sales_role:#}"
    );
    assert_eq!(sales_role["scopes"]["policies"], "own");
    let catalogue = app.get("/api/v1/permissions", &t.token).await.expect(200);
    assert!(catalogue
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "policies:purge"));

    // Own scope: a salesperson sees their own policies only.
    let (_, ann) = app.user_with_roles(&t, &["sales"]).await;
    let (_, bob) = app.user_with_roles(&t, &["sales"]).await;
    let anns = app
        .post(
            "/api/v1/records/policies",
            &ann,
            json!({"name": "Ann's", "policy_no": "A-1"}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/records/policies",
        &bob,
        json!({"name": "Bob's", "policy_no": "B-1"}),
    )
    .await
    .expect(201);
    let seen = app.items("/api/v1/records/policies", &ann).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["policy_no"], "A-1");
    app.get(&format!("/api/v1/records/policies/{}", id(&anns)), &bob)
        .await
        .expect_problem(404, "record.not_found");
    // No delete permission on customers, so none on policies.
    app.delete(&format!("/api/v1/records/policies/{}", id(&anns)), &ann)
        .await
        .expect_problem(403, "auth.forbidden");

    // A role granted only policies:read reads them all and cannot write.
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "policy_reader", "permissions": ["policies:read"],
               "scopes": {"policies": "all"}}),
    )
    .await
    .expect(201);
    let (_, reader) = app.user_with_roles(&t, &["policy_reader"]).await;
    assert_eq!(
        app.items("/api/v1/records/policies", &reader).await.len(),
        2
    );
    let refused = app
        .post(
            "/api/v1/records/policies",
            &reader,
            json!({"name": "x", "policy_no": "X-1"}),
        )
        .await
        .expect_problem(403, "auth.forbidden");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("policies:create"),
        "{refused:#}"
    );
    app.get("/api/v1/customers", &reader)
        .await
        .expect_problem(403, "auth.forbidden");
    // The objects list shows what the reader may read.
    let visible: Vec<String> = app
        .get("/api/v1/objects", &reader)
        .await
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(visible, ["policies"]);

    // Roles naming objects the tenant lacks are refused, naming the entry.
    let typo = app
        .post(
            "/api/v1/roles",
            &t.token,
            json!({"name": "typo", "permissions": ["polices:read"]}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(typo["errors"][0]["field"], "permissions[0]", "{typo:#}");
    assert_eq!(typo["errors"][0]["code"], "unknown_object", "{typo:#}");
}

#[tokio::test]
async fn objects_are_private_to_their_tenant_even_with_the_same_key() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    policies(&app, &a).await;
    let a_policy = app
        .post(
            "/api/v1/records/policies",
            &a.token,
            json!({"name": "A's", "policy_no": "P-1", "premium": "10"}),
        )
        .await
        .expect(201);

    // Tenant B does not see A's object, its fields or its records.
    app.get("/api/v1/records/policies", &b.token)
        .await
        .expect_problem(404, "object.not_found");
    app.get(
        &format!("/api/v1/records/policies/{}", id(&a_policy)),
        &b.token,
    )
    .await
    .expect_problem(404, "object.not_found");
    app.get("/api/v1/objects/policies/fields", &b.token)
        .await
        .expect_problem(404, "object.not_found");

    // B defines its own `policies` with a premium of another type; each tenant's stays its own.
    app.post(
        "/api/v1/objects",
        &b.token,
        json!({"key": "policies", "name": "Policy", "name_plural": "Policies"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/policies/fields",
        &b.token,
        json!({"key": "premium", "label": "Premium band", "type": "select",
               "options": ["low", "high"]}),
    )
    .await
    .expect(201);
    let b_policy = app
        .post(
            "/api/v1/records/policies",
            &b.token,
            json!({"name": "B's", "premium": "high"}),
        )
        .await
        .expect(201);
    assert_eq!(b_policy["premium"], "high");
    app.post(
        "/api/v1/records/policies",
        &b.token,
        json!({"name": "B's", "premium": "10"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.get(
        &format!("/api/v1/records/policies/{}", id(&a_policy)),
        &b.token,
    )
    .await
    .expect_problem(404, "record.not_found");
    let mine = app.items("/api/v1/records/policies", &b.token).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["name"], "B's");
    let a_list = app.items("/api/v1/records/policies", &a.token).await;
    assert_eq!(a_list.len(), 1);
    assert_eq!(a_list[0]["premium"], 10.0);
}

#[tokio::test]
async fn custom_objects_mask_encrypt_replay_and_document_their_fields() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    policies(&app, &t).await;
    app.post(
        "/api/v1/objects/policies/fields",
        &t.token,
        json!({"key": "id_card", "label": "身份证", "type": "text", "encrypted": true}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/policies/fields",
        &t.token,
        json!({"key": "bank_account", "label": "账户", "type": "text", "sensitive": true}),
    )
    .await
    .expect(201);

    // Idempotency-Key replays the first answer.
    let send = || {
        app.send(
            app.client
                .post(format!("{}/api/v1/records/policies", app.base))
                .bearer_auth(&t.token)
                .header("Idempotency-Key", "policy-import-1")
                .json(&json!({"name": "张伟寿险", "policy_no": "P-1",
                              "id_card": "110101199003071234", "bank_account": "6222020200112233"})),
        )
    };
    let first = send().await.expect(201);
    let again = send().await.expect(201);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["id_card"], "110101199003071234");

    // Encrypted at rest, exact-match filter through the blind index.
    let schema = app.schema_of(&t).await;
    let stored: Vec<u8> =
        sqlx::query_scalar(&format!("SELECT cf_id_card FROM \"{schema}\".o_policies"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("110101"));
    let found = app
        .items(
            "/api/v1/records/policies?filter[id_card]=110101199003071234",
            &t.token,
        )
        .await;
    assert_eq!(found.len(), 1);

    // A viewer (no sensitive:read) sees both masked and cannot filter on them.
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    let seen = app
        .get(&format!("/api/v1/records/policies/{}", id(&first)), &viewer)
        .await
        .expect(200);
    assert_ne!(seen["id_card"], "110101199003071234");
    assert_ne!(seen["bank_account"], "6222020200112233");
    app.get(
        "/api/v1/records/policies?filter[bank_account]=6222020200112233",
        &viewer,
    )
    .await
    .expect_problem(403, "field.sensitive");

    // The tenant's API document has the object with its real field types.
    let spec = app.get("/api/v1/openapi.json", &t.token).await.expect(200);
    let record = &spec["components"]["schemas"]["Record_policies"]["properties"];
    assert_eq!(record["premium"]["type"], "number", "{record:#}");
    assert_eq!(record["product"]["enum"], json!(["life", "health", "auto"]));
    assert_eq!(record["start_date"]["format"], "date");
    let input = &spec["components"]["schemas"]["Record_policiesInput"];
    assert!(input["required"]
        .as_array()
        .unwrap()
        .contains(&json!("policy_no")));
    let post = &spec["paths"]["/records/policies"]["post"];
    assert_eq!(
        post["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
        "#/components/schemas/Record_policiesInput",
        "{post:#}"
    );
    assert!(spec["paths"]["/records/policies/{id}"]["get"].is_object());
    // Another tenant's document does not mention it.
    let other = app.signup().await;
    let theirs = app
        .get("/api/v1/openapi.json", &other.token)
        .await
        .expect(200);
    assert!(theirs["components"]["schemas"]["Record_policies"].is_null());
}

#[tokio::test]
async fn object_and_field_limits_are_configurable_and_stated() {
    let app = TestApp::spawn_with(|c| {
        c.objects.max_per_tenant = 2;
        c.objects.max_fields = 1;
    })
    .await;
    let t = app.signup().await;
    for key in ["policies", "claims"] {
        app.post(
            "/api/v1/objects",
            &t.token,
            json!({"key": key, "name": key, "name_plural": key}),
        )
        .await
        .expect(201);
    }
    let over = app
        .post(
            "/api/v1/objects",
            &t.token,
            json!({"key": "vehicles", "name": "Vehicle", "name_plural": "Vehicles"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(over["errors"][0]["code"], "object.limit_reached");
    assert!(
        over["detail"].as_str().unwrap().contains("maximum of 2"),
        "{over:#}"
    );
    app.post(
        "/api/v1/objects/claims/fields",
        &t.token,
        json!({"key": "amount", "label": "Amount", "type": "currency"}),
    )
    .await
    .expect(201);
    let fields = app
        .post(
            "/api/v1/objects/claims/fields",
            &t.token,
            json!({"key": "status", "label": "Status", "type": "text"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert!(
        fields["detail"].as_str().unwrap().contains("maximum of 1"),
        "{fields:#}"
    );
}

#[tokio::test]
async fn a_custom_objects_records_export_under_its_own_permission() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    policies(&app, &t).await;
    app.post(
        "/api/v1/records/policies",
        &t.token,
        json!({"name": "张伟寿险", "policy_no": "P-1", "product": "life"}),
    )
    .await
    .expect(201);
    let resp = app
        .send(
            app.client
                .get(format!("{}/api/v1/records/policies/export", app.base))
                .bearer_auth(&t.token),
        )
        .await;
    assert_eq!(resp.status.as_u16(), 200);
    let csv = resp.body.as_str().unwrap_or_default();
    // Headers are the fields' labels in the company's language (zh-CN).
    assert!(csv.contains("保单号") && csv.contains("张伟寿险"), "{csv}");
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    let refused = app
        .get("/api/v1/records/policies/export", &sales)
        .await
        .expect_problem(403, "auth.forbidden");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("policies:export"),
        "{refused:#}"
    );
    let audit = app
        .items("/api/v1/audit?action=policies.exported", &t.token)
        .await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["detail"]["rows"], 1);
}

#[tokio::test]
async fn searchable_fields_are_chosen_per_field() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    policies(&app, &t).await;
    let contact = app
        .post(
            "/api/v1/objects/policies/fields",
            &t.token,
            json!({"key": "agent_email", "label": "代理人邮箱", "type": "email", "searchable": true}),
        )
        .await
        .expect(201);
    assert_eq!(contact["searchable"], true);
    app.post(
        "/api/v1/objects/policies/fields",
        &t.token,
        json!({"key": "copies", "label": "份数", "type": "integer", "searchable": true}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/records/policies",
        &t.token,
        json!({"name": "寿险", "policy_no": "P-2024-001", "agent_email": "wang.fang@agency.example"}),
    )
    .await
    .expect(201);
    let by_email = app
        .items("/api/v1/records/policies?q=agency.example", &t.token)
        .await;
    assert_eq!(by_email.len(), 1);
    assert_eq!(
        app.items("/api/v1/records/policies?q=P-2024", &t.token)
            .await
            .len(),
        1
    );
    // Turning search off drops the field from q (and its trigram index).
    let off = app
        .patch(
            "/api/v1/objects/policies/fields/policy_no",
            &t.token,
            json!({"searchable": false}),
        )
        .await
        .expect(200);
    assert_eq!(off["searchable"], false);
    assert!(app
        .items("/api/v1/records/policies?q=P-2024", &t.token)
        .await
        .is_empty());
    let schema = app.schema_of(&t).await;
    let trgm: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'o_policies_cf_policy_no_trgm'",
    )
    .bind(&schema)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(trgm, 0);
}
