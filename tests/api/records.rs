use crate::helpers::{id, TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn customer_crud_with_normalisation_history_and_recycle_bin() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let created = app
        .post("/api/v1/customers", &t.token, json!({
            "name": "北京华夏科技有限公司", "kind": "company", "phone": "138 1234 5678", "email": "Info@HuaXia.CN",
            "address": {"province": "北京市", "city": "北京市", "district": "海淀区", "street": "中关村大街1号", "postcode": "100080"},
            "region": "华北", "industry": "软件", "source": "展会", "level": "A", "stage": "prospect", "tags": ["VIP", "VIP", "重点"]
        }))
        .await;
    let etag = created
        .headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let c = created.expect(201);
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(c["phone"], "+8613812345678");
    assert_eq!(c["email"], "info@huaxia.cn");
    assert_eq!(c["tags"], json!(["VIP", "重点"]));
    assert_eq!(
        c["owner_id"],
        t.admin_id.as_str(),
        "the creator owns it by default"
    );
    assert_eq!(c["created_by"], t.admin_id.as_str());
    assert_eq!(c["address"]["district"], "海淀区");
    assert_eq!(c["custom"], json!({}));
    let cid = id(&c);

    let got = app
        .get(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect(200);
    assert_eq!(got, c);
    let updated = app
        .patch(
            &format!("/api/v1/customers/{cid}"),
            &t.token,
            json!({"stage": "customer", "level": "B"}),
        )
        .await
        .expect(200);
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["stage"], "customer");
    // A no-op update creates no version.
    let same = app
        .patch(
            &format!("/api/v1/customers/{cid}"),
            &t.token,
            json!({"stage": "customer"}),
        )
        .await
        .expect(200);
    assert_eq!(same["version"], 2);

    let history = app
        .get(&format!("/api/v1/customers/{cid}/history"), &t.token)
        .await
        .expect(200);
    let items = history["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "updated");
    assert_eq!(
        items[0]["changes"]["stage"],
        json!({"before": "prospect", "after": "customer"})
    );
    assert_eq!(
        items[0]["changes"]["level"],
        json!({"before": "A", "after": "B"})
    );
    assert_eq!(items[0]["actor_id"], t.admin_id.as_str());
    assert_eq!(items[1]["action"], "created");

    app.delete(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect_problem(404, "record.not_found");
    let live = app.get("/api/v1/customers", &t.token).await.expect(200);
    assert_eq!(live["items"], json!([]));
    let bin = app
        .get("/api/v1/customers?deleted=true", &t.token)
        .await
        .expect(200);
    assert_eq!(bin["items"][0]["id"], cid.as_str());
    app.post(
        &format!("/api/v1/customers/{cid}/restore"),
        &t.token,
        json!({}),
    )
    .await
    .expect(200);
    app.get(&format!("/api/v1/customers/{cid}"), &t.token)
        .await
        .expect(200);

    // Purge needs customers:purge and removes the row; its history stays readable by nobody.
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.delete(&format!("/api/v1/customers/{cid}?purge=true"), &sales)
        .await
        .expect_problem(403, "auth.forbidden");
    app.delete(&format!("/api/v1/customers/{cid}?purge=true"), &t.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/customers/{cid}?deleted=true"), &t.token)
        .await
        .expect_problem(404, "record.not_found");
    let schema = app.schema_of(&t).await;
    let events: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT event FROM \"{schema}\".outbox WHERE record_id = $1 ORDER BY id"
    ))
    .bind(uuid::Uuid::parse_str(&cid).expect("uuid"))
    .fetch_all(&app.pool)
    .await
    .expect("outbox");
    assert_eq!(
        events,
        [
            "customer.created",
            "customer.updated",
            "customer.deleted",
            "customer.restored",
            "customer.purged"
        ]
    );
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let bad = app
        .post("/api/v1/customers", &t.token, json!({
            "name": "", "kind": "alien", "phone": "12", "email": "x@", "level": "Z", "owner": "me",
            "id": "0", "custom": {"nope": 1}, "address": {"planet": "Mars"}, "tags": [""]
        }))
        .await
        .expect_problem(422, "validation.failed");
    let mut fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "address.planet",
            "custom.nope",
            "email",
            "id",
            "kind",
            "level",
            "name",
            "owner",
            "phone",
            "tags[0]"
        ]
    );
    app.post("/api/v1/customers", &t.token, json!({"kind": "person"}))
        .await
        .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/customers",
        &t.token,
        json!(["not", "an", "object"]),
    )
    .await
    .expect_problem(400, "request.invalid");
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "x", "owner_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let count = app
        .get("/api/v1/customers/count", &t.token)
        .await
        .expect(200);
    assert_eq!(count["count"], 0);
}

#[tokio::test]
async fn stale_if_match_is_412_and_fresh_one_applies() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "版本"}))
        .await
        .expect(201);
    let path = format!("/api/v1/customers/{}", id(&c));
    let send = |tag: &str, name: &str| {
        app.client
            .patch(format!("{}{path}", app.base))
            .bearer_auth(&t.token)
            .header("if-match", tag.to_owned())
            .json(&json!({"name": name}))
    };
    let first = app.send(send("\"1\"", "版本二")).await;
    assert_eq!(
        first.headers.get("etag").and_then(|v| v.to_str().ok()),
        Some("\"2\"")
    );
    first.expect(200);
    app.send(send("\"1\"", "过期"))
        .await
        .expect_problem(412, "record.version_mismatch");
    app.send(send("W/\"2\"", "版本三")).await.expect(200);
    app.send(send("garbage", "x"))
        .await
        .expect_problem(400, "request.invalid_if_match");
    let now = app.get(&path, &t.token).await.expect(200);
    assert_eq!(now["name"], "版本三");
}

#[tokio::test]
async fn idempotency_key_replays_instead_of_duplicating() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let send = |key: &str, name: &str| {
        app.client
            .post(format!("{}/api/v1/customers", app.base))
            .bearer_auth(&t.token)
            .header("idempotency-key", key.to_owned())
            .json(&json!({"name": name}))
    };
    let a = app.send(send("k-1", "幂等")).await.expect(201);
    let b = app.send(send("k-1", "幂等")).await.expect(201);
    assert_eq!(a["id"], b["id"]);
    app.send(send("k-1", "别的"))
        .await
        .expect_problem(422, "validation.failed");
    app.send(send("k-2", "幂等二")).await.expect(201);
    let count = app
        .get("/api/v1/customers/count", &t.token)
        .await
        .expect(200);
    assert_eq!(count["count"], 2);
}

#[tokio::test]
async fn dedupe_on_entry_points_at_the_existing_customer() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let first = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "王芳", "phone": "13900001111"}),
        )
        .await
        .expect(201);
    let dup = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "王芳2", "phone": "+86 139-0000-1111"}),
        )
        .await
        .expect_problem(409, "customer.duplicate");
    assert_eq!(dup["existing_id"], first["id"]);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "x", "email": "a@b.com"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "y", "email": "A@B.COM"}),
    )
    .await
    .expect_problem(409, "customer.duplicate");
    let second = app
        .post(
            "/api/v1/customers?allow_duplicate=true",
            &t.token,
            json!({"name": "王芳 (分公司)", "phone": "13900001111"}),
        )
        .await
        .expect(201);
    let pairs = app
        .get("/api/v1/customers/duplicates", &t.token)
        .await
        .expect(200);
    let items = pairs["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["reason"], "phone");
    assert_eq!(items[0]["customer_id"], first["id"]);
    assert_eq!(items[0]["other_id"], second["id"]);
}

#[tokio::test]
async fn merge_moves_contacts_and_keeps_both_histories() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let a = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "甲公司", "phone": "13900002222", "tags": ["老客户"]}),
        )
        .await
        .expect(201);
    let b = app
        .post("/api/v1/customers?allow_duplicate=true", &t.token, json!({"name": "甲公司(重复)", "phone": "13900002222", "email": "jia@x.cn", "level": "A", "tags": ["VIP"]}))
        .await
        .expect(201);
    let contact = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"customer_id": b["id"], "name": "联系人", "is_primary": true}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/opportunities",
        &t.token,
        json!({"name": "乙的机会", "customer_id": b["id"]}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/activities",
        &t.token,
        json!({"kind": "call", "customer_id": b["id"]}),
    )
    .await
    .expect(201);
    let merged = app
        .post(
            &format!("/api/v1/customers/{}/merge", id(&a)),
            &t.token,
            json!({"other_id": b["id"], "keep": {"level": "other"}}),
        )
        .await
        .expect(200);
    assert_eq!(merged["name"], "甲公司");
    assert_eq!(
        merged["email"], "jia@x.cn",
        "gaps are filled from the other"
    );
    assert_eq!(merged["level"], "A");
    assert_eq!(merged["tags"], json!(["老客户", "VIP"]));
    let moved = app
        .get(&format!("/api/v1/contacts/{}", id(&contact)), &t.token)
        .await
        .expect(200);
    let opps = app
        .get(
            &format!("/api/v1/opportunities?filter[customer_id]={}", id(&a)),
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(
        opps["items"].as_array().map(Vec::len),
        Some(1),
        "opportunities move too"
    );
    let merged_now = app
        .get(&format!("/api/v1/customers/{}", id(&a)), &t.token)
        .await
        .expect(200);
    assert!(
        merged_now["last_activity_at"].is_string(),
        "follow-up status follows the moved activity"
    );
    assert_eq!(moved["customer_id"], a["id"]);
    let contacts = app
        .get(&format!("/api/v1/customers/{}/contacts", id(&a)), &t.token)
        .await
        .expect(200);
    assert_eq!(contacts["items"].as_array().map(Vec::len), Some(1));
    app.get(&format!("/api/v1/customers/{}", id(&b)), &t.token)
        .await
        .expect_problem(404, "record.not_found");
    let bin = app
        .get("/api/v1/customers?deleted=true", &t.token)
        .await
        .expect(200);
    assert_eq!(bin["items"][0]["merged_into"], a["id"]);
    let ha = app
        .get(&format!("/api/v1/customers/{}/history", id(&a)), &t.token)
        .await
        .expect(200);
    assert_eq!(ha["items"][0]["action"], "merged");
    let hb = app
        .get(
            &format!("/api/v1/customers/{}/history?deleted=true", id(&b)),
            &t.token,
        )
        .await
        .expect(200);
    let actions: Vec<&str> = hb["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, ["merged", "created"]);
    app.post(
        &format!("/api/v1/customers/{}/merge", id(&a)),
        &t.token,
        json!({"other_id": a["id"]}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        &format!("/api/v1/customers/{}/merge", id(&a)),
        &t.token,
        json!({"other_id": b["id"], "keep": {"level": "theirs"}}),
    )
    .await
    .expect_problem(422, "validation.failed");
}

#[tokio::test]
async fn scopes_own_team_all_filter_reads_lists_counts_and_writes() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (s1, s1_token) = app.user_with_roles(&t, &["sales"]).await;
    let (s2, s2_token) = app.user_with_roles(&t, &["sales"]).await;
    let (_, s3_token) = app.user_with_roles(&t, &["sales"]).await;
    let mine = app
        .post(
            "/api/v1/customers",
            &s1_token,
            json!({"name": "一号的客户"}),
        )
        .await
        .expect(201);
    let theirs = app
        .post(
            "/api/v1/customers",
            &s2_token,
            json!({"name": "二号的客户"}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "管理员的客户"}),
    )
    .await
    .expect(201);

    let list = app.get("/api/v1/customers", &s1_token).await.expect(200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["一号的客户"]);
    assert_eq!(
        app.get("/api/v1/customers/count", &s1_token)
            .await
            .expect(200)["count"],
        1
    );
    assert_eq!(
        app.get("/api/v1/customers/count", &t.token)
            .await
            .expect(200)["count"],
        3
    );
    let other = format!("/api/v1/customers/{}", id(&theirs));
    app.get(&other, &s1_token)
        .await
        .expect_problem(404, "record.not_found");
    app.patch(&other, &s1_token, json!({"name": "改别人的"}))
        .await
        .expect_problem(404, "record.not_found");
    app.get(&format!("/api/v1/customers/{}", id(&mine)), &s1_token)
        .await
        .expect(200);

    // Team scope: s1 and s2 share a team; s3 does not.
    app.patch(
        "/api/v1/roles/sales",
        &t.token,
        json!({"scopes": {"customers": "team"}}),
    )
    .await
    .expect(200);
    let team = app
        .post("/api/v1/teams", &t.token, json!({"name": "华东组"}))
        .await
        .expect(201);
    for u in [&s1, &s2] {
        app.post(
            &format!("/api/v1/teams/{}/members", id(&team)),
            &t.token,
            json!({"user_id": u}),
        )
        .await
        .expect(204);
    }
    assert_eq!(
        app.get("/api/v1/customers/count", &s1_token)
            .await
            .expect(200)["count"],
        2
    );
    app.get(&other, &s1_token).await.expect(200);
    assert_eq!(
        app.get("/api/v1/customers/count", &s3_token)
            .await
            .expect(200)["count"],
        0
    );

    // Reassigning ownership moves visibility.
    app.patch(
        &format!("/api/v1/customers/{}", id(&mine)),
        &t.token,
        json!({"owner_id": s1}),
    )
    .await
    .expect(200);
    app.patch(
        "/api/v1/roles/sales",
        &t.token,
        json!({"scopes": {"customers": "own"}}),
    )
    .await
    .expect(200);
    app.patch(&other, &t.token, json!({"owner_id": s1}))
        .await
        .expect(200);
    assert_eq!(
        app.get("/api/v1/customers/count", &s1_token)
            .await
            .expect(200)["count"],
        2
    );
    assert_eq!(
        app.get("/api/v1/customers/count", &s2_token)
            .await
            .expect(200)["count"],
        0
    );
}

#[tokio::test]
async fn sensitive_values_are_masked_without_sensitive_read() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "bank_account", "label": "银行账号", "type": "text", "sensitive": true}),
    )
    .await
    .expect(201);
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "张伟", "phone": "13812345678", "email": "zhang.wei@x.com", "custom": {"bank_account": "6222020200001234567"}}))
        .await
        .expect(201);
    assert_eq!(c["phone"], "+8613812345678");
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    let seen = app
        .get(&format!("/api/v1/customers/{}", id(&c)), &viewer)
        .await
        .expect(200);
    assert_eq!(seen["phone"], "138****5678");
    assert_eq!(seen["email"], "z***@x.com");
    assert_eq!(seen["custom"]["bank_account"], "6***7");
    let listed = app.get("/api/v1/customers", &viewer).await.expect(200);
    assert_eq!(listed["items"][0]["phone"], "138****5678");
    app.patch(
        &format!("/api/v1/customers/{}", id(&c)),
        &t.token,
        json!({"phone": "13900009999"}),
    )
    .await
    .expect(200);
    let history = app
        .get(&format!("/api/v1/customers/{}/history", id(&c)), &viewer)
        .await
        .expect(200);
    assert_eq!(
        history["items"][0]["changes"]["phone"],
        json!({"before": "138****5678", "after": "139****9999"})
    );
    let (_, finance) = app.user_with_roles(&t, &["finance"]).await;
    let clear = app
        .get(&format!("/api/v1/customers/{}", id(&c)), &finance)
        .await
        .expect(200);
    assert_eq!(clear["phone"], "+8613900009999");
}

#[tokio::test]
async fn encrypted_fields_store_ciphertext_and_still_filter_exactly() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post("/api/v1/objects/customers/fields", &t.token, json!({"key": "id_card", "label": "身份证号", "type": "text", "encrypted": true, "unique": true}))
        .await
        .expect(201);
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "李娜", "custom": {"id_card": "110101199003077777"}}),
        )
        .await
        .expect(201);
    assert_eq!(c["custom"]["id_card"], "110101199003077777");
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "重复证件", "custom": {"id_card": "110101199003077777"}}),
    )
    .await
    .expect_problem(409, "record.duplicate_value");
    let schema = app.schema_of(&t).await;
    let raw: Vec<u8> =
        sqlx::query_scalar(&format!("SELECT cf_id_card FROM \"{schema}\".customers"))
            .fetch_one(&app.pool)
            .await
            .expect("raw column");
    assert!(
        !String::from_utf8_lossy(&raw).contains("110101199003077777"),
        "no plaintext at rest"
    );
    let found = app
        .get(
            "/api/v1/customers?filter[custom.id_card]=110101199003077777",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    let none = app
        .get(
            "/api/v1/customers?filter[id_card]=110101199003070000",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(none["items"], json!([]));
    app.get("/api/v1/customers?filter[id_card][contains]=1101", &t.token)
        .await
        .expect_problem(422, "validation.failed");
    let history = app
        .get(&format!("/api/v1/customers/{}/history", id(&c)), &t.token)
        .await
        .expect(200);
    assert_eq!(
        history["items"][0]["changes"]["custom.id_card"]["after"],
        "[encrypted]"
    );
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    let masked = app
        .get(&format!("/api/v1/customers/{}", id(&c)), &viewer)
        .await
        .expect(200);
    assert_eq!(masked["custom"]["id_card"], "1***7");
}

#[tokio::test]
async fn contacts_belong_to_visible_customers_and_tags_work() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "上海某贸易公司"}),
        )
        .await
        .expect(201);
    app.post("/api/v1/contacts", &t.token, json!({"name": "无主"}))
        .await
        .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/contacts",
        &t.token,
        json!({"name": "孤儿", "customer_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let contact = app
        .post("/api/v1/contacts", &t.token, json!({"customer_id": c["id"], "name": "赵敏", "title": "采购经理", "phone": "021-6279 8888", "is_primary": true}))
        .await
        .expect(201);
    assert_eq!(contact["phone"], "+862162798888");
    assert_eq!(contact["owner_id"], t.admin_id.as_str());

    let tagged = app
        .post(
            &format!("/api/v1/customers/{}/tags", id(&c)),
            &t.token,
            json!({"tags": ["潜在", "VIP"]}),
        )
        .await
        .expect(200);
    assert_eq!(tagged["tags"], json!(["潜在", "VIP"]));
    app.post(
        "/api/v1/tags",
        &t.token,
        json!({"name": "流失风险", "color": "#ff4d4f"}),
    )
    .await
    .expect(201);
    app.post("/api/v1/tags", &t.token, json!({"name": "流失风险"}))
        .await
        .expect_problem(409, "tag.exists");
    app.post(
        "/api/v1/tags",
        &t.token,
        json!({"name": "x", "color": "red"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let tags = app.get("/api/v1/tags", &t.token).await.expect(200);
    let vip = tags
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["name"] == "VIP")
        .expect("VIP listed");
    assert_eq!(vip["customers"], 1);
    let by_tag = app
        .get("/api/v1/customers?tag=VIP", &t.token)
        .await
        .expect(200);
    assert_eq!(by_tag["items"].as_array().map(Vec::len), Some(1));
    let untagged = app
        .delete(&format!("/api/v1/customers/{}/tags/VIP", id(&c)), &t.token)
        .await
        .expect(200);
    assert_eq!(untagged["tags"], json!(["潜在"]));
    app.delete(&format!("/api/v1/customers/{}/tags/VIP", id(&c)), &t.token)
        .await
        .expect_problem(404, "tag.not_on_record");
    assert_eq!(
        app.get("/api/v1/customers?tag=VIP", &t.token)
            .await
            .expect(200)["items"],
        json!([])
    );
}

#[tokio::test]
async fn another_tenant_sees_404_for_records_and_fields() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let c = app
        .post(
            "/api/v1/customers",
            &b.token,
            json!({"name": "B 的客户", "phone": "13700001234"}),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/customers/{}", id(&c));
    app.get(&path, &a.token)
        .await
        .expect_problem(404, "record.not_found");
    app.patch(&path, &a.token, json!({"name": "x"}))
        .await
        .expect_problem(404, "record.not_found");
    app.delete(&path, &a.token)
        .await
        .expect_problem(404, "record.not_found");
    app.get(&format!("{path}/history"), &a.token)
        .await
        .expect_problem(404, "record.not_found");
    assert_eq!(
        app.get("/api/v1/customers/count", &a.token)
            .await
            .expect(200)["count"],
        0
    );
    // Dedupe is per tenant: A may have the same phone.
    app.post(
        "/api/v1/customers",
        &a.token,
        json!({"name": "A 的客户", "phone": "13700001234"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/customers/fields",
        &b.token,
        json!({"key": "b_only", "label": "x", "type": "text"}),
    )
    .await
    .expect(201);
    app.get("/api/v1/objects/customers/fields/b_only", &a.token)
        .await
        .expect_problem(404, "field.not_found");
    app.post(
        "/api/v1/customers",
        &a.token,
        json!({"name": "x", "custom": {"b_only": "y"}}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let _ = PASSWORD;
}

#[tokio::test]
async fn masked_fields_cannot_be_filtered_sorted_or_counted_by_those_who_see_them_masked() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "id_card", "label": "身份证", "type": "text", "encrypted": true}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "张伟", "phone": "13812345678", "custom": {"id_card": "110101199003074514"}}),
    )
    .await
    .expect(201);
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    // Even an exact match would answer "is this the number?" through lists and counts.
    for query in [
        "filter[phone]=13812345678",
        "filter[phone][in]=13812345678,13900000000",
        "filter[phone][is_null]=false",
        "filter[phone][contains]=1381",
        "filter[phone][gt]=%2B861",
        "filter[custom.id_card]=110101199003074514",
        "sort=phone",
        "sort=-email",
    ] {
        app.get(&format!("/api/v1/customers?{query}"), &viewer)
            .await
            .expect_problem(403, "field.sensitive");
        if !query.starts_with("sort") {
            app.get(&format!("/api/v1/customers/count?{query}"), &viewer)
                .await
                .expect_problem(403, "field.sensitive");
        }
    }
    // With sensitive:read the same filters work.
    let found = app
        .get(
            "/api/v1/customers/count?filter[phone]=13812345678",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(found["count"], 1);
    let found = app
        .get(
            "/api/v1/customers?filter[custom.id_card]=110101199003074514",
            &t.token,
        )
        .await
        .expect(200);
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    let by_digits = app
        .get("/api/v1/customers?q=12345678", &viewer)
        .await
        .expect(200);
    assert_eq!(
        by_digits["items"],
        json!([]),
        "masked phones are not searchable"
    );
    let admin_digits = app
        .get("/api/v1/customers?q=12345678", &t.token)
        .await
        .expect(200);
    assert_eq!(admin_digits["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn referenced_records_cannot_be_purged_and_encrypted_parents_list_contacts() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "referrer", "label": "推荐人", "type": "relation", "target": "customers"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "tax_id", "label": "税号", "type": "text", "encrypted": true}),
    )
    .await
    .expect(201);
    let a = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "推荐方", "custom": {"tax_id": "91110000MA01"}}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "被推荐方", "custom": {"referrer": a["id"]}}),
    )
    .await
    .expect(201);
    // A relation field restricts deleting what it points to (its default on_delete).
    let referenced = app
        .delete(
            &format!("/api/v1/customers/{}?purge=true", id(&a)),
            &t.token,
        )
        .await
        .expect_problem(409, "record.referenced");
    assert!(
        referenced["detail"]
            .as_str()
            .is_some_and(|d| d.contains("customers.referrer: 1")),
        "{referenced:#}"
    );
    app.post(
        "/api/v1/contacts",
        &t.token,
        json!({"customer_id": a["id"], "name": "联系人"}),
    )
    .await
    .expect(201);
    let contacts = app
        .get(&format!("/api/v1/customers/{}/contacts", id(&a)), &t.token)
        .await
        .expect(200);
    assert_eq!(contacts["items"].as_array().map(Vec::len), Some(1));
    app.get(
        &format!("/api/v1/customers/{}/contacts", uuid::Uuid::new_v4()),
        &t.token,
    )
    .await
    .expect_problem(404, "record.not_found");
}

#[tokio::test]
async fn a_changed_option_list_must_keep_the_default() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post("/api/v1/objects/customers/fields", &t.token, json!({"key": "tier", "label": "x", "type": "select", "options": ["gold", "silver"], "default": "silver"}))
        .await
        .expect(201);
    app.patch(
        "/api/v1/objects/customers/fields/tier",
        &t.token,
        json!({"options": ["gold"]}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.patch(
        "/api/v1/objects/customers/fields/tier",
        &t.token,
        json!({"options": ["gold"], "default": "gold"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn the_same_field_key_with_different_types_in_two_tenants_never_mixes_plans() {
    // Two tenants, same key, different column types: their record queries have the same
    // text; a prepared statement reused across schemas would fail ("cached plan must not
    // change result type"). The pool has few connections, so they are shared.
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &a.token,
        json!({"key": "code", "label": "x", "type": "text"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/objects/customers/fields",
        &b.token,
        json!({"key": "code", "label": "x", "type": "integer"}),
    )
    .await
    .expect(201);
    for round in 0..6 {
        let ca = app
            .post(
                "/api/v1/customers",
                &a.token,
                json!({"name": format!("A{round}"), "custom": {"code": format!("c{round}")}}),
            )
            .await
            .expect(201);
        let cb = app
            .post(
                "/api/v1/customers",
                &b.token,
                json!({"name": format!("B{round}"), "custom": {"code": round}}),
            )
            .await
            .expect(201);
        app.get(&format!("/api/v1/customers/{}", id(&ca)), &a.token)
            .await
            .expect(200);
        app.get(&format!("/api/v1/customers/{}", id(&cb)), &b.token)
            .await
            .expect(200);
        app.get("/api/v1/customers?sort=custom.code", &a.token)
            .await
            .expect(200);
        app.get("/api/v1/customers?sort=custom.code", &b.token)
            .await
            .expect(200);
        app.patch(
            &format!("/api/v1/customers/{}", id(&ca)),
            &a.token,
            json!({"custom": {"code": "z"}}),
        )
        .await
        .expect(200);
        app.patch(
            &format!("/api/v1/customers/{}", id(&cb)),
            &b.token,
            json!({"custom": {"code": 99}}),
        )
        .await
        .expect(200);
    }
    // The same within one tenant when a field is dropped and re-created with another type.
    app.delete(
        "/api/v1/objects/customers/fields/code?confirm=true",
        &a.token,
    )
    .await
    .expect(204);
    app.post(
        "/api/v1/objects/customers/fields",
        &a.token,
        json!({"key": "code", "label": "x", "type": "integer"}),
    )
    .await
    .expect(201);
    for _ in 0..6 {
        app.get("/api/v1/customers", &a.token).await.expect(200);
    }
}

#[tokio::test]
async fn null_clears_an_address_and_tags_instead_of_failing() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "清空测试", "address": {"city": "上海"}, "tags": ["重点"]}),
        )
        .await
        .expect(201);
    let patched = app
        .patch(
            &format!("/api/v1/customers/{}", id(&c)),
            &t.token,
            json!({"address": null, "tags": null}),
        )
        .await
        .expect(200);
    assert_eq!(patched["address"], json!({}));
    assert_eq!(patched["tags"], json!([]));
}
