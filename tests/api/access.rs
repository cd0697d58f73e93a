//! The access holes an outside review found, each closed: rules act as a role their saver
//! holds (within its scopes and masking), escalation checks cover scopes, every read path
//! applies each object's own permission and scope, masked values are no oracle, keys die with
//! their creator, replays keep no plaintext, dry runs read encrypted records, and the small
//! ones (sensitive flag, self-approval).

use crate::helpers::{eventually, id, Tenant, TestApp, PASSWORD};
use serde_json::{json, Value};

/// A role with `permissions` and `scope` on every built-in record object.
pub(crate) async fn role(app: &TestApp, t: &Tenant, name: &str, permissions: &[&str], scope: &str) {
    let scopes: serde_json::Map<String, Value> = [
        "customers",
        "contacts",
        "tickets",
        "opportunities",
        "activities",
        "tasks",
    ]
    .iter()
    .map(|o| ((*o).to_owned(), json!(scope)))
    .collect();
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": name, "permissions": permissions, "scopes": scopes}),
    )
    .await
    .expect(201);
}

async fn runs(app: &TestApp, t: &Tenant, rule: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/rules/{rule}/runs"), &t.token)
        .await
        .expect(200)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rule_acts_as_a_role_its_saver_holds_within_that_roles_scope_and_masking() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    role(
        &app,
        &t,
        "rule-writer",
        &[
            "workflows:manage",
            "customers:read",
            "customers:create",
            "customers:update",
        ],
        "own",
    )
    .await;
    let (_, writer) = app.user_with_roles(&t, &["rule-writer"]).await;
    let rule = json!({
        "name": "来源写电话",
        "object": "customers",
        "trigger": {"event": "customer.created"},
        "script": "set_field(\"source\", record.phone);",
    });
    // Running as a role with more than the saver holds is refused.
    let mut as_admin = rule.clone();
    as_admin["run_as_role"] = json!("admin");
    app.post("/api/v1/rules", &writer, as_admin)
        .await
        .expect_problem(403, "auth.escalation");
    // By default a rule runs as the saver's own (most powerful) role.
    let saved = app.post("/api/v1/rules", &writer, rule).await.expect(201);
    assert_eq!(saved["run_as_role"], "rule-writer");
    let rule_id = id(&saved);

    // The writer's own customer: the rule reads its phone masked, as the writer would.
    let mine = app
        .post(
            "/api/v1/customers",
            &writer,
            json!({"name": "王芳", "phone": "13812345678"}),
        )
        .await
        .expect(201);
    // Someone else's customer lies outside the role's `own` scope: the rule leaves it alone.
    let theirs = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "李雷", "phone": "13987654321", "source": "展会"}),
        )
        .await
        .expect(201);
    let done = eventually("two runs", || async {
        let r = runs(&app, &t, &rule_id).await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    let of = |c: &Value| {
        done.iter()
            .find(|r| r["record_id"] == c["id"])
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of(&mine)["outcome"], "succeeded", "{done:#?}");
    assert_eq!(of(&theirs)["outcome"], "not_matched", "{done:#?}");
    assert_eq!(of(&theirs)["error"]["code"], "rule.out_of_scope");
    let mine_now = app
        .get(&format!("/api/v1/customers/{}", id(&mine)), &t.token)
        .await
        .expect(200);
    assert_eq!(
        mine_now["source"], "138****5678",
        "the rule saw the phone masked"
    );
    let theirs_now = app
        .get(&format!("/api/v1/customers/{}", id(&theirs)), &t.token)
        .await
        .expect(200);
    assert_eq!(theirs_now["source"], "展会");
}

#[tokio::test]
async fn escalation_checks_cover_scopes_on_every_grant_path() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let manager_perms = [
        "roles:manage",
        "roles:read",
        "users:manage",
        "users:read",
        "api_keys:manage",
        "customers:read",
    ];
    role(&app, &t, "own-manager", &manager_perms, "own").await;
    role(&app, &t, "wide-reader", &["customers:read"], "all").await;
    let (_, m) = app.user_with_roles(&t, &["own-manager"]).await;

    // Widening one's own role.
    app.patch(
        "/api/v1/roles/own-manager",
        &m,
        json!({"scopes": {"customers": "all"}}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    // A new role wider than oneself; the same role within one's scopes is fine.
    app.post(
        "/api/v1/roles",
        &m,
        json!({"name": "wider", "permissions": ["customers:read"]}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    let own_scopes = json!({"customers": "own", "contacts": "own", "tickets": "own",
        "opportunities": "own", "activities": "own", "tasks": "own"});
    app.post(
        "/api/v1/roles",
        &m,
        json!({"name": "narrow", "permissions": ["customers:read"], "scopes": own_scopes}),
    )
    .await
    .expect(201);
    // A user or an API key with a wider-scoped role (same permissions).
    let p = app
        .post(
            "/api/v1/users",
            &m,
            json!({"email": "wide@x.com", "name": "Wide", "password": PASSWORD, "roles": ["wide-reader"]}),
        )
        .await
        .expect_problem(403, "auth.escalation");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("customers: all (yours: own)")),
        "{p}"
    );
    app.post(
        "/api/v1/api-keys",
        &m,
        json!({"name": "k", "role": "wide-reader"}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    // Taking over a peer whose scopes are wider.
    let (peer, _) = app.user_with_roles(&t, &["wide-reader"]).await;
    app.post(
        &format!("/api/v1/users/{peer}/password"),
        &m,
        json!({"new_password": "another-password-1"}),
    )
    .await
    .expect_problem(403, "auth.escalation");

    // Team scope: joining teams widens what one sees.
    role(
        &app,
        &t,
        "team-lead",
        &["users:manage", "users:read", "customers:read"],
        "team",
    )
    .await;
    let (lead_id, lead) = app.user_with_roles(&t, &["team-lead"]).await;
    let team = app
        .post("/api/v1/teams", &t.token, json!({"name": "华东销售"}))
        .await
        .expect(201);
    let team_id = id(&team);
    app.post(
        &format!("/api/v1/teams/{team_id}/members"),
        &lead,
        json!({"user_id": lead_id}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    app.patch(
        &format!("/api/v1/users/{lead_id}"),
        &lead,
        json!({"team_ids": [team_id]}),
    )
    .await
    .expect_problem(403, "auth.escalation");
    // An administrator may.
    app.post(
        &format!("/api/v1/teams/{team_id}/members"),
        &t.token,
        json!({"user_id": lead_id}),
    )
    .await
    .expect(204);
}

#[tokio::test]
async fn the_timeline_and_dry_runs_apply_each_objects_permission_and_scope() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "艾克米贸易"}))
        .await
        .expect(201);
    let cid = id(&c);
    app.post(
        "/api/v1/tickets",
        &t.token,
        json!({"subject": "发票开错了", "customer_id": cid}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/tasks",
        &t.token,
        json!({"title": "回访", "due_at": "2030-01-01T00:00:00Z", "customer_id": cid}),
    )
    .await
    .expect(201);
    let kinds = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect()
    };
    let path = format!("/api/v1/customers/{cid}/timeline");
    let all = app.get(&path, &t.token).await.expect(200);
    assert!(kinds(&all).contains(&"ticket".to_owned()), "{all:#}");
    assert!(kinds(&all).contains(&"task".to_owned()), "{all:#}");

    // Customers readable, tickets not: the ticket is left out.
    role(&app, &t, "no-tickets", &["customers:read"], "all").await;
    let (_, reader) = app.user_with_roles(&t, &["no-tickets"]).await;
    let seen = app.get(&path, &reader).await.expect(200);
    assert!(!kinds(&seen).contains(&"ticket".to_owned()), "{seen:#}");
    assert!(kinds(&seen).contains(&"task".to_owned()), "{seen:#}");

    // Customers all, tickets and tasks own: the admin's ticket and task are left out.
    app.post(
        "/api/v1/roles",
        &t.token,
        json!({"name": "mixed", "permissions": ["customers:read", "tickets:read"],
               "scopes": {"customers": "all", "tickets": "own", "tasks": "own"}}),
    )
    .await
    .expect(201);
    let (_, mixed) = app.user_with_roles(&t, &["mixed"]).await;
    let seen = app.get(&path, &mixed).await.expect(200);
    let k = kinds(&seen);
    assert!(
        !k.contains(&"ticket".to_owned()) && !k.contains(&"task".to_owned()),
        "{seen:#}"
    );
    assert!(k.contains(&"history".to_owned()), "{seen:#}");

    // A dry run reads a stored record only with the object's read permission.
    role(&app, &t, "rules-only", &["workflows:manage"], "all").await;
    let (_, rules_only) = app.user_with_roles(&t, &["rules-only"]).await;
    let body = json!({
        "rule": {"name": "x", "object": "customers", "trigger": {"manual": true},
                 "script": "set_field(\"source\", record.name);"},
        "record_id": cid,
    });
    app.post("/api/v1/rules/dry-run", &rules_only, body.clone())
        .await
        .expect_problem(403, "auth.forbidden");
    let out = app
        .post("/api/v1/rules/dry-run", &t.token, body)
        .await
        .expect(200);
    assert_eq!(out["effects"][0]["value"], "艾克米贸易");
}

#[tokio::test]
async fn a_dry_run_on_a_record_with_an_encrypted_field_sees_it_as_the_caller_does() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "id_card", "label": "身份证", "type": "text", "encrypted": true}),
    )
    .await
    .expect(201);
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "张伟", "custom": {"id_card": "110101199003074514"}}),
        )
        .await
        .expect(201);
    let body = json!({
        "rule": {"name": "x", "object": "customers", "trigger": {"manual": true},
                 "script": "set_field(\"source\", record.custom.id_card);"},
        "record_id": id(&c),
    });
    let out = app
        .post("/api/v1/rules/dry-run", &t.token, body.clone())
        .await
        .expect(200);
    assert_eq!(out["error"], Value::Null, "{out:#}");
    assert_eq!(out["effects"][0]["value"], "110101199003074514");
    let (_, viewer_wf) = {
        role(
            &app,
            &t,
            "masked-rules",
            &["workflows:manage", "customers:read"],
            "all",
        )
        .await;
        app.user_with_roles(&t, &["masked-rules"]).await
    };
    let out = app
        .post("/api/v1/rules/dry-run", &viewer_wf, body)
        .await
        .expect(200);
    let seen = out["effects"][0]["value"].as_str().unwrap_or_default();
    assert_ne!(seen, "110101199003074514", "masked without sensitive:read");
}

#[tokio::test]
async fn an_api_key_stops_working_when_its_creator_is_deactivated() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (creator_id, creator) = app.user_with_roles(&t, &["admin"]).await;
    let key = app
        .post(
            "/api/v1/api-keys",
            &creator,
            json!({"name": "ERP", "role": "viewer"}),
        )
        .await
        .expect(201);
    let secret = key["secret"].as_str().expect("secret").to_owned();
    app.get("/api/v1/customers", &secret).await.expect(200);
    app.delete(&format!("/api/v1/users/{creator_id}"), &t.token)
        .await
        .expect(204);
    let p = app
        .get("/api/v1/customers", &secret)
        .await
        .expect_problem(401, "auth.api_key_creator_inactive");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deactivated")),
        "{p}"
    );
    // Reactivating the creator brings the key back.
    app.patch(
        &format!("/api/v1/users/{creator_id}"),
        &t.token,
        json!({"active": true}),
    )
    .await
    .expect(200);
    app.get("/api/v1/customers", &secret).await.expect(200);
}

#[tokio::test]
async fn idempotent_replays_keep_no_decrypted_values_and_read_the_record_afresh() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "id_card", "label": "身份证", "type": "text", "encrypted": true}),
    )
    .await
    .expect(201);
    let send = || {
        app.client
            .post(format!("{}/api/v1/customers", app.base))
            .bearer_auth(&t.token)
            .header("idempotency-key", "import-7")
            .json(&json!({"name": "张伟", "custom": {"id_card": "110101199003074514"}}))
    };
    let first = app.send(send()).await.expect(201);
    let schema = app.schema_of(&t).await;
    let stored: Vec<Value> =
        sqlx::query_scalar(&format!("SELECT body FROM \"{schema}\".idempotency_keys"))
            .fetch_all(&app.pool)
            .await
            .expect("stored replays");
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].to_string().contains("110101199003074514"),
        "{:?}",
        stored[0]
    );
    let again = app.send(send()).await.expect(201);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["custom"]["id_card"], "110101199003074514");
    // Keys expire after a day.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".idempotency_keys SET created_at = now() - interval '25 hours'"
    ))
    .execute(&app.pool)
    .await
    .expect("age the key");
    let fresh = app.send(send()).await.expect(201);
    assert_ne!(fresh["id"], first["id"], "an expired key no longer replays");
}

#[tokio::test]
async fn clearing_sensitive_needs_sensitive_read_and_nobody_approves_their_own_request() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "salary", "label": "收入", "type": "text", "sensitive": true}),
    )
    .await
    .expect(201);
    role(
        &app,
        &t,
        "designer",
        &["fields:manage", "customers:read"],
        "all",
    )
    .await;
    let (_, designer) = app.user_with_roles(&t, &["designer"]).await;
    app.patch(
        "/api/v1/objects/customers/fields/salary",
        &designer,
        json!({"sensitive": false}),
    )
    .await
    .expect_problem(403, "field.sensitive");
    app.patch(
        "/api/v1/objects/customers/fields/salary",
        &designer,
        json!({"label": "月收入"}),
    )
    .await
    .expect(200);
    app.patch(
        "/api/v1/objects/customers/fields/salary",
        &t.token,
        json!({"sensitive": false}),
    )
    .await
    .expect(200);

    // The requester is also the record's owner, an approver: they still cannot approve.
    // (Approvers are resolved when the approval is requested.)
    let (_, other_admin) = app.user_with_roles(&t, &["admin"]).await;
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": "折扣客户"}))
        .await
        .expect(201);
    let a = app
        .post(
            "/api/v1/approvals",
            &t.token,
            json!({"object": "customers", "record_id": id(&c), "title": "八折",
                   "steps": [{"approvers": ["owner", "role:admin"]}]}),
        )
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/approvals/{}/approve", id(&a)),
        &t.token,
        json!({}),
    )
    .await
    .expect_problem(403, "approval.own_request");
    let approved = app
        .post(
            &format!("/api/v1/approvals/{}/approve", id(&a)),
            &other_admin,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(approved["status"], "approved");
}

#[tokio::test]
async fn customers_export_needs_customers_export_and_keeps_scope_and_masking() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    role(
        &app,
        &t,
        "exporter",
        &["customers:read", "customers:create", "customers:export"],
        "own",
    )
    .await;
    let (_, exporter) = app.user_with_roles(&t, &["exporter"]).await;
    app.post(
        "/api/v1/customers",
        &exporter,
        json!({"name": "=HYPERLINK(\"http://x\")", "phone": "13812345678", "level": "A"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/customers",
        &t.token,
        json!({"name": "别人的客户", "phone": "13900001111", "level": "A"}),
    )
    .await
    .expect(201);
    let (_, viewer) = app.user_with_roles(&t, &["viewer"]).await;
    app.get("/api/v1/customers/export", &viewer)
        .await
        .expect_problem(403, "auth.forbidden");

    let csv = |token: &str, query: &str| {
        let req = app
            .client
            .get(format!("{}/api/v1/customers/export{query}", app.base))
            .bearer_auth(token.to_owned());
        async move {
            let resp = req.send().await.expect("export answers");
            assert_eq!(resp.status(), 200);
            assert!(resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/csv")));
            resp.text().await.expect("csv text")
        }
    };
    let mine = csv(&exporter, "?filter[level]=A").await;
    assert!(
        mine.starts_with('\u{feff}'),
        "a BOM for spreadsheet programs"
    );
    let lines: Vec<&str> = mine.trim_end().split("\r\n").collect();
    assert_eq!(
        lines.len(),
        2,
        "header + the exporter's own customer: {mine}"
    );
    // Headers in the company's language (zh-CN) when neither the user nor the client asks.
    assert!(
        lines[0].contains("名称") && lines[0].contains("电话"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("138****5678"), "masked: {}", lines[1]);
    assert!(
        lines[1].contains("\"'=HYPERLINK"),
        "formula defused: {}",
        lines[1]
    );
    let all = csv(&t.token, "").await;
    assert_eq!(all.trim_end().split("\r\n").count(), 3, "{all}");
    assert!(all.contains("13900001111"), "the admin sees values: {all}");
    // Another company's administrator exports its own customers only, never these.
    let other = app.signup().await;
    let theirs = csv(&other.token, "").await;
    assert_eq!(
        theirs.trim_end().split("\r\n").count(),
        1,
        "header only: {theirs}"
    );
    // A bad filter is a 422 problem naming it, as on the list.
    let bad = app
        .get("/api/v1/customers/export?filter[planet]=x", &t.token)
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(bad["errors"][0]["field"], "filter[planet]");
    let audit = app
        .get("/api/v1/audit?action=customers.exported", &t.token)
        .await
        .expect(200);
    assert!(audit.to_string().contains("customers.exported"), "{audit}");
}
