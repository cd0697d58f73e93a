//! Record types and layouts: role-dependent forms whose required fields the API enforces,
//! and roles limited to some record types of an object.

use crate::helpers::{id, TestApp};
use crate::objects_relations::{create, field};
use serde_json::{json, Value};

#[tokio::test]
async fn record_types_require_default_and_limit_by_role() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects",
        &t.token,
        json!({"key": "students", "name": "Student", "name_plural": "Students",
               "labels": {"zh-CN": "学员"}}),
    )
    .await
    .expect(201);
    field(
        &app,
        &t,
        "students",
        json!({"key": "company", "label": "公司", "type": "text"}),
    )
    .await;
    field(
        &app,
        &t,
        "students",
        json!({"key": "guardian_phone", "label": "监护人电话", "type": "phone"}),
    )
    .await;
    field(
        &app,
        &t,
        "students",
        json!({"key": "level", "label": "级别", "type": "select", "options": ["beginner", "advanced"]}),
    )
    .await;
    let adult = app
        .post(
            "/api/v1/objects/students/record-types",
            &t.token,
            json!({"key": "adult", "name": "Adult", "labels": {"zh-CN": "成人"},
                   "fields": ["name", "company", "level"], "required": ["company"],
                   "defaults": {"level": "beginner"}}),
        )
        .await
        .expect(201);
    assert_eq!(adult["required"], json!(["company"]));
    app.post(
        "/api/v1/objects/students/record-types",
        &t.token,
        json!({"key": "child", "name": "Child", "labels": {"zh-CN": "少儿"},
               "fields": ["name", "guardian_phone", "level"], "required": ["guardian_phone"]}),
    )
    .await
    .expect(201);
    // Definitions are checked against the object's fields.
    let bad = app
        .post(
            "/api/v1/objects/students/record-types",
            &t.token,
            json!({"key": "odd", "name": "Odd", "required": ["nope"], "defaults": {"level": "expert"}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["required[0]", "defaults.level"], "{bad:#}");

    // Required per type, enforced by the API; defaults applied.
    let missing = app
        .post(
            "/api/v1/records/students",
            &t.token,
            json!({"name": "王强", "record_type": "adult"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(missing["errors"][0]["field"], "company", "{missing:#}");
    let wang = create(
        &app,
        &t.token,
        "students",
        json!({"name": "王强", "record_type": "adult", "company": "蓝天贸易"}),
    )
    .await;
    assert_eq!(wang["record_type"], "adult");
    assert_eq!(wang["level"], "beginner");
    let cleared = app
        .patch(
            &format!("/api/v1/records/students/{}", id(&wang)),
            &t.token,
            json!({"company": null}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(cleared["errors"][0]["field"], "company");
    // Moving a record to a type checks the new type's requirements.
    app.patch(
        &format!("/api/v1/records/students/{}", id(&wang)),
        &t.token,
        json!({"record_type": "child"}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/api/v1/records/students",
        &t.token,
        json!({"name": "x", "record_type": "teen"}),
    )
    .await
    .expect_problem(422, "validation.failed");

    // A coach limited to children: their forms, their records, nothing else.
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "child_coach",
               "permissions": ["students:read", "students:create", "students:update"],
               "scopes": {"students": "all"}, "record_types": {"students": ["child"]}}),
    )
    .await
    .expect(201);
    let role = app
        .get("/api/v1/roles/child_coach", &t.token)
        .await
        .expect(200);
    assert_eq!(role["record_types"], json!({"students": ["child"]}));
    let (_, coach) = app.user_with_roles(&t, &["child_coach"]).await;
    let layouts = app
        .get("/api/v1/objects/students/layouts", &coach)
        .await
        .expect(200);
    let layouts = layouts.as_array().unwrap();
    assert_eq!(layouts.len(), 1, "{layouts:?}");
    assert_eq!(layouts[0]["record_type"]["key"], "child");
    assert_eq!(
        layouts[0]["fields"],
        json!(["name", "guardian_phone", "level"])
    );
    assert!(layouts[0]["required"]
        .as_array()
        .unwrap()
        .contains(&json!("guardian_phone")));
    let admin_layouts = app
        .get("/api/v1/objects/students/layouts", &t.token)
        .await
        .expect(200);
    let kinds: Vec<Value> = admin_layouts
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["record_type"]["key"].clone())
        .collect();
    assert_eq!(kinds, [Value::Null, json!("adult"), json!("child")]);

    // The only type they may use is chosen for them; its requirements hold.
    app.post("/api/v1/records/students", &coach, json!({"name": "小明"}))
        .await
        .expect_problem(422, "validation.failed");
    let ming = create(
        &app,
        &coach,
        "students",
        json!({"name": "小明", "guardian_phone": "13800138000"}),
    )
    .await;
    assert_eq!(ming["record_type"], "child");
    let refused = app
        .post(
            "/api/v1/records/students",
            &coach,
            json!({"name": "李雷", "record_type": "adult", "company": "x"}),
        )
        .await
        .expect_problem(403, "record_type.forbidden");
    assert!(
        refused["detail"].as_str().unwrap().contains("child"),
        "{refused:#}"
    );
    // They see the adult's record (scope all) but cannot edit it.
    app.get(&format!("/api/v1/records/students/{}", id(&wang)), &coach)
        .await
        .expect(200);
    app.patch(
        &format!("/api/v1/records/students/{}", id(&wang)),
        &coach,
        json!({"level": "advanced"}),
    )
    .await
    .expect_problem(403, "record_type.forbidden");
    app.patch(
        &format!("/api/v1/records/students/{}", id(&ming)),
        &coach,
        json!({"record_type": "adult", "company": "x"}),
    )
    .await
    .expect_problem(403, "record_type.forbidden");

    // Roles can only name types that exist.
    let unknown = app
        .patch(
            "/api/v1/roles/child_coach",
            &t.token,
            json!({"record_types": {"students": ["toddler"]}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(unknown["errors"][0]["code"], "unknown_record_type");
    // A type in use cannot be deleted; an unused one can.
    app.delete("/api/v1/objects/students/record-types/child", &t.token)
        .await
        .expect_problem(409, "record_type.in_use");
    app.post(
        "/api/v1/objects/students/record-types",
        &t.token,
        json!({"key": "trial", "name": "Trial"}),
    )
    .await
    .expect(201);
    app.delete("/api/v1/objects/students/record-types/trial", &t.token)
        .await
        .expect(204);
}

#[tokio::test]
async fn built_in_objects_have_record_types_too() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/record-types",
        &t.token,
        json!({"key": "enterprise", "name": "Enterprise", "labels": {"zh-CN": "企业客户"},
               "required": ["industry"], "defaults": {"kind": "company", "level": "A"}}),
    )
    .await
    .expect(201);
    let missing = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "蓝天贸易", "record_type": "enterprise"}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(missing["errors"][0]["field"], "industry");
    let made = create(
        &app,
        &t.token,
        "customers",
        json!({"name": "蓝天贸易", "record_type": "enterprise", "industry": "贸易"}),
    )
    .await;
    assert_eq!(made["level"], "A");
    assert_eq!(made["record_type"], "enterprise");
    // A customer without a type is still fine for an unlimited role.
    create(&app, &t.token, "customers", json!({"name": "个人客户"})).await;
}
