use crate::helpers::TestApp;
use serde_json::json;

async fn column_type(
    app: &TestApp,
    tenant: &crate::helpers::Tenant,
    column: &str,
) -> Option<String> {
    let schema = app.schema_of(tenant).await;
    sqlx::query_scalar(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'customers' AND a.attname = $2 AND NOT a.attisdropped",
    )
    .bind(schema)
    .bind(column)
    .fetch_optional(&app.pool)
    .await
    .expect("catalog")
}

#[tokio::test]
async fn every_field_type_becomes_a_typed_column_and_validates_values() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let cases = [
        (
            "note_text",
            json!({"type": "text"}),
            "text",
            json!("备注"),
            json!(12),
        ),
        (
            "bio",
            json!({"type": "long_text"}),
            "text",
            json!("多行\n文本"),
            json!(["x"]),
        ),
        (
            "employees",
            json!({"type": "integer"}),
            "bigint",
            json!(250),
            json!("many"),
        ),
        (
            "score",
            json!({"type": "decimal"}),
            "numeric",
            json!("98.125"),
            json!("9,8"),
        ),
        (
            "vip",
            json!({"type": "boolean"}),
            "boolean",
            json!(true),
            json!("yes"),
        ),
        (
            "signed_on",
            json!({"type": "date"}),
            "date",
            json!("2025-03-31"),
            json!("31/03/2025"),
        ),
        (
            "last_call",
            json!({"type": "datetime"}),
            "timestamp with time zone",
            json!("2025-03-31T09:30:00+08:00"),
            json!("2025-03-31"),
        ),
        (
            "billing_email",
            json!({"type": "email"}),
            "text",
            json!("Bill@Acme.cn"),
            json!("bill-at-acme"),
        ),
        (
            "fax",
            json!({"type": "phone"}),
            "text",
            json!("010 6552 9988"),
            json!("12"),
        ),
        (
            "website",
            json!({"type": "url"}),
            "text",
            json!("https://acme.cn"),
            json!("ftp//acme"),
        ),
        (
            "tier",
            json!({"type": "select", "options": ["gold", "silver"]}),
            "text",
            json!("gold"),
            json!("bronze"),
        ),
        (
            "interests",
            json!({"type": "multi_select", "options": ["cars", "golf"]}),
            "text[]",
            json!(["golf"]),
            json!(["chess"]),
        ),
        (
            "budget",
            json!({"type": "currency"}),
            "numeric(20,4)",
            json!(1234.5),
            json!("12.34567"),
        ),
        (
            "account_manager",
            json!({"type": "user"}),
            "uuid",
            json!(t.admin_id),
            json!("someone"),
        ),
        (
            "referrer",
            json!({"type": "relation", "target": "customers"}),
            "uuid",
            serde_json::Value::Null,
            json!(42),
        ),
    ];
    for (key, def, sql_type, _, _) in &cases {
        let mut body = def.clone();
        body["key"] = json!(key);
        body["label"] = json!(format!("{key} 字段"));
        let field = app
            .post("/api/v1/objects/customers/fields", &t.token, body)
            .await
            .expect(201);
        assert_eq!(field["key"], *key);
        assert_eq!(
            column_type(&app, &t, &format!("cf_{key}")).await.as_deref(),
            Some(*sql_type),
            "{key}"
        );
    }
    // Valid values are stored and returned in `custom`.
    let mut custom = serde_json::Map::new();
    for (key, _, _, good, _) in &cases {
        custom.insert((*key).into(), good.clone());
    }
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "全字段客户", "custom": custom}),
        )
        .await
        .expect(201);
    assert_eq!(c["custom"]["billing_email"], "bill@acme.cn");
    assert_eq!(c["custom"]["fax"], "+861065529988");
    assert_eq!(c["custom"]["score"], 98.125);
    assert_eq!(c["custom"]["budget"], 1234.5);
    assert_eq!(c["custom"]["signed_on"], "2025-03-31");
    assert_eq!(c["custom"]["interests"], json!(["golf"]));
    // Each invalid value is refused naming the field.
    for (key, _, _, _, bad) in &cases {
        let body = app
            .post(
                "/api/v1/customers",
                &t.token,
                json!({"name": "坏值", "custom": {*key: bad}}),
            )
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(
            body["errors"][0]["field"],
            format!("custom.{key}"),
            "{key}: {body}"
        );
    }
    // A relation must point at an existing record.
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "x", "custom": {"referrer": uuid::Uuid::new_v4()}}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let referred = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "被推荐", "custom": {"referrer": c["id"]}}),
        )
        .await
        .expect(201);
    assert_eq!(referred["custom"]["referrer"], c["id"]);
}

#[tokio::test]
async fn field_keys_are_validated_and_fields_can_change_and_go() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    for bad in [
        "x; DROP TABLE customers; --",
        "Vip",
        "1st",
        "select",
        "id",
        "名字",
    ] {
        let body = app
            .post(
                "/api/v1/objects/customers/fields",
                &t.token,
                json!({"key": bad, "label": "x", "type": "text"}),
            )
            .await
            .expect_problem(422, "validation.failed");
        assert_eq!(body["errors"][0]["field"], "key", "{bad}");
    }
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "x", "label": "x", "type": "blob"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "tier", "label": "x", "type": "select"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/objects/planets/fields",
        &t.token,
        json!({"key": "x", "label": "x", "type": "text"}),
    )
    .await
    .expect_problem(404, "object.not_found");

    let tier = app
        .post("/api/v1/objects/customers/fields", &t.token, json!({
            "key": "tier", "label": "Tier", "labels": {"zh-CN": "等级", "en": "Tier"}, "type": "select",
            "options": ["gold", "silver"], "option_labels": {"gold": {"zh-CN": "金牌"}}, "default": "silver"
        }))
        .await
        .expect(201);
    assert_eq!(tier["labels"]["zh-CN"], "等级");
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "tier", "label": "again", "type": "text"}),
    )
    .await
    .expect_problem(409, "field.exists");
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "默认值"}))
        .await
        .expect(201);
    assert_eq!(c["custom"]["tier"], "silver", "default applies");

    let patched = app
        .patch(
            "/api/v1/objects/customers/fields/tier",
            &t.token,
            json!({"options": ["gold", "silver", "bronze"], "required": true, "label": "等级"}),
        )
        .await
        .expect(200);
    assert_eq!(patched["options"], json!(["gold", "silver", "bronze"]));
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "铜", "custom": {"tier": "bronze"}}),
    )
    .await
    .expect(201);
    app.patch(
        &format!("/api/v1/customers/{}", c["id"].as_str().expect("id")),
        &t.token,
        json!({"custom": {"tier": null}}),
    )
    .await
    .expect_problem(422, "validation.failed");

    let fields = app
        .get("/api/v1/objects/customers/fields", &t.token)
        .await
        .expect(200);
    let keys: Vec<&str> = fields
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert!(keys.contains(&"name") && keys.contains(&"tier"));

    app.delete("/api/v1/objects/customers/fields/tier", &t.token)
        .await
        .expect_problem(400, "field.confirm_required");
    app.delete(
        "/api/v1/objects/customers/fields/tier?confirm=true",
        &t.token,
    )
    .await
    .expect(204);
    assert_eq!(
        column_type(&app, &t, "cf_tier").await,
        None,
        "column dropped"
    );
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "x", "custom": {"tier": "gold"}}),
    )
    .await
    .expect_problem(422, "validation.failed");

    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.post(
        "/api/v1/objects/customers/fields",
        &sales,
        json!({"key": "y", "label": "y", "type": "text"}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn the_501st_custom_field_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let schema = app.schema_of(&t).await;
    // Fill the metadata up to the limit directly (creating 500 columns over HTTP is slow).
    sqlx::query(&format!(
        "INSERT INTO \"{schema}\".field_defs (object, key, label, type) \
         SELECT 'contacts', 'f' || g, 'f' || g, 'text' FROM generate_series(1, 500) g"
    ))
    .execute(&app.pool)
    .await
    .expect("fill");
    let body = app
        .post(
            "/api/v1/objects/contacts/fields",
            &t.token,
            json!({"key": "one_more", "label": "x", "type": "text"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(body["errors"][0]["code"], "field.limit_reached");
    assert!(body["detail"].as_str().unwrap_or_default().contains("500"));
}
