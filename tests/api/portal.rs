//! The customer portal: contacts sign in with a mailed single-use link, see their customer's
//! tickets with public replies only, open tickets, reply and rate; the survey link rates a
//! resolved ticket without signing in. Staff and portal credentials never cross over.

use crate::helpers::{eventually, id, Tenant, TestApp};
use crate::mail::eml_files;
use reqwest::Method;
use serde_json::{json, Value};

/// A customer and one contact of it with `email`; returns (customer id, contact id).
async fn customer_with_contact(
    app: &TestApp,
    t: &Tenant,
    customer: &str,
    contact: &str,
    email: &str,
) -> (String, String) {
    let c = app
        .post("/api/v1/customers", &t.token, json!({"name": customer}))
        .await
        .expect(201);
    let ct = add_contact(app, t, &id(&c), contact, email).await;
    (id(&c), ct)
}

async fn add_contact(app: &TestApp, t: &Tenant, customer: &str, name: &str, email: &str) -> String {
    let ct = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"name": name, "customer_id": customer, "email": email}),
        )
        .await
        .expect(201);
    id(&ct)
}

async fn ask_link(app: &TestApp, tenant: &str, email: &str) {
    let body = app
        .call(
            Method::POST,
            "/portal/api/login-link",
            None,
            Some(json!({"tenant": tenant, "email": email})),
        )
        .await
        .expect(202);
    assert_eq!(body, json!({"status": "sent_if_known"}));
}

/// The tokens (`prefix…`) carried by the mails to `to` so far.
fn mailed_tokens(app: &TestApp, t: &Tenant, to: &str, prefix: &str) -> Vec<String> {
    let mut mails = eml_files(&app.config.data_dir, &t.slug);
    mails.retain(|m| m["to"].as_str().is_some_and(|a| a.contains(to)));
    let mut found = Vec::new();
    for m in mails {
        let body = m["body"].as_str().expect("body");
        let Some(at) = body.find(&format!("token={prefix}")) else {
            continue;
        };
        let token: String = body[at + "token=".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        found.push(token);
    }
    found
}

/// How many mails a tenant has queued (sent or not): enqueueing happens in the request's own
/// transaction, so this proves a negative without waiting.
/// Mail jobs of the tenant, but account mail (the sign-up verification link).
async fn mail_jobs(app: &TestApp, t: &Tenant) -> i64 {
    let schema = app.schema_of(t).await;
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".jobs WHERE kind = 'mail.send' \
         AND payload ->> 'purpose' NOT LIKE 'account.%'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count mail jobs")
}

/// Asks for a link for `email`, waits for its mail and returns the link token.
async fn fresh_link(app: &TestApp, t: &Tenant, email: &str) -> String {
    let before = mailed_tokens(app, t, email, "tcl_");
    ask_link(app, &t.slug, email).await;
    eventually("the sign-in mail", || async {
        let now = mailed_tokens(app, t, email, "tcl_");
        now.into_iter().find(|tok| !before.contains(tok))
    })
    .await
}

async fn exchange(app: &TestApp, link: &str) -> reqwest::StatusCode {
    app.call(
        Method::POST,
        "/portal/api/session",
        None,
        Some(json!({ "token": link })),
    )
    .await
    .status
}

/// Signs `email` in through a mailed link; returns the portal token.
async fn sign_in(app: &TestApp, t: &Tenant, email: &str) -> String {
    let link = fresh_link(app, t, email).await;
    let session = app
        .call(
            Method::POST,
            "/portal/api/session",
            None,
            Some(json!({ "token": link })),
        )
        .await
        .expect(201);
    session["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_contact_signs_in_by_link_opens_a_ticket_and_follows_the_public_conversation() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (customer, contact) =
        customer_with_contact(&app, &t, "上海蓝天贸易", "王磊", "wang.lei@example.com").await;

    // The address is matched case-insensitively; the mail carries a one-time link.
    ask_link(&app, &t.slug, "  Wang.Lei@Example.COM ").await;
    let mail = eventually("the sign-in mail", || async {
        eml_files(&app.config.data_dir, &t.slug).into_iter().next()
    })
    .await;
    assert_eq!(mail["subject"], "登录 测试公司 Test Co 客户服务门户");
    assert!(mail["to"]
        .as_str()
        .is_some_and(|a| a.contains("wang.lei@example.com")));
    let body = mail["body"].as_str().expect("body");
    assert!(body.contains("/portal/login?token=tcl_"), "{body}");
    assert!(!body.contains("{{base_url}}"), "{body}");
    let link = mailed_tokens(&app, &t, "wang.lei@example.com", "tcl_")
        .pop()
        .expect("link token");

    let session = app
        .call(
            Method::POST,
            "/portal/api/session",
            None,
            Some(json!({ "token": link })),
        )
        .await
        .expect(201);
    let token = session["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("tcp_"), "{token}");
    assert_eq!(session["contact"], json!({"id": contact, "name": "王磊"}));
    assert_eq!(
        session["customer"],
        json!({"id": customer, "name": "上海蓝天贸易"})
    );
    assert!(session["expires_at"].is_string());
    assert_eq!(session["tenant"]["slug"], t.slug.as_str());
    let me = app.get("/portal/api/me", &token).await.expect(200);
    assert_eq!(me["contact"]["id"], contact.as_str());
    assert_eq!(me["tenant"]["slug"], t.slug.as_str());

    // Opening a ticket: channel, customer and contact come from the session; SLA and the
    // number from the normal hooks.
    let created = app
        .post(
            "/portal/api/tickets",
            &token,
            json!({"subject": "打印机卡纸", "description": "三楼的打印机一直卡纸", "type": "service_request", "priority": "high"}),
        )
        .await
        .expect(201);
    let ticket = id(&created);
    assert_eq!(created["number"], "T-000001");
    assert_eq!(created["status"], "new");
    assert_eq!(created["status_name"], "新建");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["type"], "service_request");
    assert_eq!(created["channel"], "portal");
    assert_eq!(created["contact_id"], contact.as_str());
    assert_eq!(created["contact_name"], "王磊");
    for internal in [
        "assignee_id",
        "team_id",
        "sla_policy_id",
        "tags",
        "customer_id",
    ] {
        assert!(
            created.get(internal).is_none(),
            "{internal} leaked: {created:#}"
        );
    }
    let staff_view = app
        .get(&format!("/api/v1/tickets/{ticket}"), &t.token)
        .await
        .expect(200);
    assert_eq!(staff_view["channel"], "portal");
    assert_eq!(staff_view["customer_id"], customer.as_str());
    assert_eq!(staff_view["contact_id"], contact.as_str());
    assert_eq!(staff_view["number"], "T-000001");
    assert!(staff_view["sla_policy_id"].is_string(), "{staff_view:#}");
    assert!(staff_view["created_by"].is_null());

    // Staff-only fields are refused by name.
    let refused = app
        .post(
            "/portal/api/tickets",
            &token,
            json!({"subject": "x", "status": "resolved", "customer_id": customer}),
        )
        .await
        .expect_problem(422, "validation.failed");
    let mut fields: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert_eq!(e["code"], "not_allowed");
            e["field"].as_str().expect("field")
        })
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["customer_id", "status"]);
    // Custom ticket fields: only those an admin opened to the portal.
    for (key, open) in [("internal_cost", false), ("device_model", true)] {
        app.post(
            "/api/v1/objects/tickets/fields",
            &t.token,
            json!({"key": key, "label": key, "type": "text", "portal_editable": open}),
        )
        .await
        .expect(201);
    }
    let refused = app
        .post(
            "/portal/api/tickets",
            &token,
            json!({"subject": "x", "custom": {"internal_cost": "0", "device_model": "HP 1020"}}),
        )
        .await
        .expect_problem(422, "validation.failed");
    assert_eq!(
        refused["errors"][0]["field"], "custom.internal_cost",
        "{refused:#}"
    );
    assert_eq!(refused["errors"].as_array().map(Vec::len), Some(1));
    let with_model = app
        .post(
            "/portal/api/tickets",
            &token,
            json!({"subject": "打印机型号", "custom": {"device_model": "HP 1020"}}),
        )
        .await
        .expect(201);
    let staff = app
        .get(&format!("/api/v1/tickets/{}", id(&with_model)), &t.token)
        .await
        .expect(200);
    assert_eq!(staff["custom"]["device_model"], "HP 1020");
    app.delete(&format!("/api/v1/tickets/{}", id(&with_model)), &t.token)
        .await
        .expect(204);
    app.post(
        "/api/v1/objects/customers/fields",
        &t.token,
        json!({"key": "portal_x", "label": "x", "type": "text", "portal_editable": true}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        "/portal/api/tickets",
        &token,
        json!({"description": "没有标题"}),
    )
    .await
    .expect_problem(422, "validation.failed");

    // Staff answer: one internal note, one public reply.
    let comments = format!("/api/v1/tickets/{ticket}/comments");
    app.post(
        &comments,
        &t.token,
        json!({"body": "内部：客户上月也报过", "public": false}),
    )
    .await
    .expect(201);
    app.post(
        &comments,
        &t.token,
        json!({"body": "师傅明天上午上门检修", "public": true}),
    )
    .await
    .expect(201);

    let listed = app.get("/portal/api/tickets", &token).await.expect(200);
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], ticket.as_str());
    assert!(listed.get("next_cursor").is_none());
    let detail = app
        .get(&format!("/portal/api/tickets/{ticket}"), &token)
        .await
        .expect(200);
    assert_eq!(detail["number"], "T-000001");
    let seen = detail["comments"].as_array().expect("comments");
    assert_eq!(seen.len(), 1, "{detail:#}");
    assert_eq!(seen[0]["body"], "师傅明天上午上门检修");
    assert_eq!(seen[0]["author_kind"], "staff");
    assert_eq!(seen[0]["author_name"], "张伟");
    assert!(!detail.to_string().contains("客户上月也报过"));

    // The contact replies; staff see it as the contact's.
    let reply = app
        .post(
            &format!("/portal/api/tickets/{ticket}/comments"),
            &token,
            json!({"body": "好的，上午有人在"}),
        )
        .await
        .expect(201);
    assert_eq!(reply["author_kind"], "contact");
    assert_eq!(reply["author_name"], "王磊");
    app.post(
        &format!("/portal/api/tickets/{ticket}/comments"),
        &token,
        json!({"body": "   "}),
    )
    .await
    .expect_problem(422, "validation.failed");
    let staff_comments = app.get(&comments, &t.token).await.expect(200);
    let last = staff_comments["items"]
        .as_array()
        .and_then(|i| i.last())
        .cloned()
        .expect("comments");
    assert_eq!(last["author_kind"], "contact");
    assert_eq!(last["author_id"], contact.as_str());
    assert_eq!(last["author_name"], "王磊");
    assert_eq!(last["public"], true);
    let thread = app
        .get(&format!("/portal/api/tickets/{ticket}/comments"), &token)
        .await
        .expect(200);
    let bodies: Vec<&str> = thread["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["body"].as_str().expect("body"))
        .collect();
    assert_eq!(bodies, ["师傅明天上午上门检修", "好的，上午有人在"]);

    // Newest first, keyset-paged, filtered by status.
    for subject in ["发票抬头错误", "网络断了"] {
        app.post("/portal/api/tickets", &token, json!({"subject": subject}))
            .await
            .expect(201);
    }
    let first = app
        .get("/portal/api/tickets?limit=2", &token)
        .await
        .expect(200);
    let subjects = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["subject"].as_str().expect("subject").to_owned())
            .collect()
    };
    assert_eq!(subjects(&first), ["网络断了", "发票抬头错误"]);
    let cursor = first["next_cursor"].as_str().expect("next cursor");
    let second = app
        .get(
            &format!("/portal/api/tickets?limit=2&cursor={cursor}"),
            &token,
        )
        .await
        .expect(200);
    assert_eq!(subjects(&second), ["打印机卡纸"]);
    assert!(second.get("next_cursor").is_none());
    app.patch(
        &format!("/api/v1/tickets/{ticket}"),
        &t.token,
        json!({"status": "open"}),
    )
    .await
    .expect(200);
    let open = app
        .get("/portal/api/tickets?status=open", &token)
        .await
        .expect(200);
    assert_eq!(subjects(&open), ["打印机卡纸"]);
    assert_eq!(open["items"][0]["status_name"], "处理中");
    app.get("/portal/api/tickets?status=bogus", &token)
        .await
        .expect_problem(422, "validation.failed");
    app.get("/portal/api/tickets?cursor=garbage", &token)
        .await
        .expect_problem(400, "request.invalid_cursor");

    // Logging out ends the session.
    app.call(Method::POST, "/portal/api/logout", Some(&token), None)
        .await
        .expect(204);
    app.get("/portal/api/tickets", &token)
        .await
        .expect_problem(401, "portal.invalid_token");
}

#[tokio::test]
async fn link_requests_never_reveal_who_is_a_contact_and_are_throttled() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (customer, _) =
        customer_with_contact(&app, &t, "上海蓝天贸易", "王磊", "wang.lei@example.com").await;
    let gone = add_contact(&app, &t, &customer, "李娜", "li.na@example.com").await;
    app.delete(&format!("/api/v1/contacts/{gone}"), &t.token)
        .await
        .expect(204);

    // Unknown address, unknown company, deleted contact, not an address: the same 202, and
    // nothing is queued.
    ask_link(&app, &t.slug, "nobody@example.com").await;
    ask_link(&app, "no-such-company", "wang.lei@example.com").await;
    ask_link(&app, &t.slug, "li.na@example.com").await;
    ask_link(&app, &t.slug, "not an address").await;
    assert_eq!(mail_jobs(&app, &t).await, 0);
    app.call(
        Method::POST,
        "/portal/api/login-link",
        None,
        Some(json!({"tenant": t.slug})),
    )
    .await
    .expect_problem(400, "request.invalid");

    // A known address gets its mail; only that one is ever written.
    ask_link(&app, &t.slug, "wang.lei@example.com").await;
    let mails = eventually("the sign-in mail", || async {
        let m = eml_files(&app.config.data_dir, &t.slug);
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0]["to"]
        .as_str()
        .is_some_and(|a| a.contains("wang.lei@example.com")));

    // Five links per address, then silence (still 202).
    for _ in 0..6 {
        ask_link(&app, &t.slug, "wang.lei@example.com").await;
    }
    assert_eq!(mail_jobs(&app, &t).await, 5);

    // A suspended company mails nothing either.
    let t2 = app.signup().await;
    customer_with_contact(&app, &t2, "北京远航", "赵敏", "zhao.min@example.com").await;
    crm_tenants::registry::set_active(&app.pool, &t2.slug, false)
        .await
        .expect("suspend");
    ask_link(&app, &t2.slug, "zhao.min@example.com").await;
    assert_eq!(mail_jobs(&app, &t2).await, 0);
}

#[tokio::test]
async fn links_work_once_and_expire() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    customer_with_contact(&app, &t, "上海蓝天贸易", "王磊", "wang.lei@example.com").await;

    let link = fresh_link(&app, &t, "wang.lei@example.com").await;
    assert_eq!(exchange(&app, &link).await, 201);
    app.call(
        Method::POST,
        "/portal/api/session",
        None,
        Some(json!({ "token": link })),
    )
    .await
    .expect_problem(401, "portal.invalid_link");

    // Expired (as if 30 minutes had passed).
    let stale = fresh_link(&app, &t, "wang.lei@example.com").await;
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".portal_links SET expires_at = now() - interval '1 minute' WHERE used_at IS NULL"
    ))
    .execute(&app.pool)
    .await
    .expect("expire links");
    app.call(
        Method::POST,
        "/portal/api/session",
        None,
        Some(json!({ "token": stale })),
    )
    .await
    .expect_problem(401, "portal.invalid_link");

    // Signing in with one link spends the contact's other unused links.
    let a = fresh_link(&app, &t, "wang.lei@example.com").await;
    let b = fresh_link(&app, &t, "wang.lei@example.com").await;
    assert_eq!(exchange(&app, &b).await, 201);
    assert_eq!(exchange(&app, &a).await, 401);

    // Not a link at all, or a staff credential: the same 401.
    for bogus in ["garbage", t.token.as_str()] {
        app.call(
            Method::POST,
            "/portal/api/session",
            None,
            Some(json!({ "token": bogus })),
        )
        .await
        .expect_problem(401, "portal.invalid_link");
    }
}

#[tokio::test]
async fn a_contact_sees_only_its_customers_tickets_and_credentials_never_cross_over() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (customer_a, contact_a) =
        customer_with_contact(&app, &t, "上海蓝天贸易", "王磊", "wang.lei@example.com").await;
    add_contact(&app, &t, &customer_a, "陈静", "chen.jing@example.com").await;
    let (customer_b, contact_b) =
        customer_with_contact(&app, &t, "北京远航", "赵敏", "zhao.min@example.com").await;

    let theirs = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "远航的机密工单", "customer_id": customer_b, "contact_id": contact_b, "channel": "phone"}),
        )
        .await
        .expect(201);
    let theirs = id(&theirs);
    app.post(
        &format!("/api/v1/tickets/{theirs}/comments"),
        &t.token,
        json!({"body": "内部备注：远航欠款", "public": false}),
    )
    .await
    .expect(201);
    // A ticket of customer A opened by staff, without a contact: A's contacts see it too.
    let staff_opened = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "蓝天的电话工单", "customer_id": customer_a, "channel": "phone"}),
        )
        .await
        .expect(201);

    let wang = sign_in(&app, &t, "wang.lei@example.com").await;
    let mine = app
        .post(
            "/portal/api/tickets",
            &wang,
            json!({"subject": "打印机卡纸"}),
        )
        .await
        .expect(201);
    let chen = sign_in(&app, &t, "chen.jing@example.com").await;
    let seen_by_chen = app.get("/portal/api/tickets", &chen).await.expect(200);
    let ids: Vec<&str> = seen_by_chen["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [id(&mine), id(&staff_opened)]);
    let listed = app.get("/portal/api/tickets", &wang).await.expect(200);
    assert!(!listed.to_string().contains(&theirs));
    assert!(!listed.to_string().contains("远航"));
    app.get(&format!("/portal/api/tickets/{theirs}"), &wang)
        .await
        .expect_problem(404, "ticket.not_found");
    app.get(&format!("/portal/api/tickets/{theirs}/comments"), &wang)
        .await
        .expect_problem(404, "ticket.not_found");
    app.post(
        &format!("/portal/api/tickets/{theirs}/comments"),
        &wang,
        json!({"body": "我能看到吗"}),
    )
    .await
    .expect_problem(404, "ticket.not_found");
    app.post(
        &format!("/portal/api/tickets/{theirs}/rating"),
        &wang,
        json!({"rating": 1}),
    )
    .await
    .expect_problem(404, "ticket.not_found");
    let zhao = sign_in(&app, &t, "zhao.min@example.com").await;
    let detail = app
        .get(&format!("/portal/api/tickets/{theirs}"), &zhao)
        .await
        .expect(200);
    assert_eq!(detail["comments"], json!([]));
    app.get(&format!("/portal/api/tickets/{}", id(&mine)), &zhao)
        .await
        .expect_problem(404, "ticket.not_found");

    // Staff credentials are refused on the portal, portal tokens on the staff API.
    let refused = app
        .get("/portal/api/tickets", &t.token)
        .await
        .expect_problem(401, "portal.invalid_token");
    assert!(refused["detail"]
        .as_str()
        .is_some_and(|d| d.contains("staff credentials are not accepted on the portal")));
    let key = app
        .post(
            "/api/v1/api-keys",
            &t.token,
            json!({"name": "集成", "role": "admin"}),
        )
        .await
        .expect(201);
    app.get("/portal/api/me", key["secret"].as_str().expect("api key"))
        .await
        .expect_problem(401, "portal.invalid_token");
    app.call(Method::GET, "/portal/api/tickets", None, None)
        .await
        .expect_problem(401, "portal.invalid_token");
    app.get("/api/v1/tickets", &wang)
        .await
        .expect_problem(401, "auth.invalid_token");
    app.get(&format!("/api/v1/customers/{customer_a}"), &wang)
        .await
        .expect_problem(401, "auth.invalid_token");

    // A contact moved to another customer, or deleted, loses its session.
    app.patch(
        &format!("/api/v1/contacts/{contact_a}"),
        &t.token,
        json!({"customer_id": customer_b}),
    )
    .await
    .expect(200);
    app.get("/portal/api/tickets", &wang)
        .await
        .expect_problem(401, "portal.invalid_token");
    app.delete(&format!("/api/v1/contacts/{contact_b}"), &t.token)
        .await
        .expect(204);
    app.get("/portal/api/me", &zhao)
        .await
        .expect_problem(401, "portal.invalid_token");
}

#[tokio::test]
async fn resolved_tickets_are_rated_once_by_survey_link_or_in_the_portal() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (customer, contact) =
        customer_with_contact(&app, &t, "上海蓝天贸易", "王磊", "wang.lei@example.com").await;
    let tk = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "打印机卡纸", "customer_id": customer, "contact_id": contact, "channel": "phone"}),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/tickets/{}", id(&tk));
    app.patch(&path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    app.patch(&path, &t.token, json!({"status": "resolved"}))
        .await
        .expect(200);

    let survey_mail = eventually("the survey mail", || async {
        eml_files(&app.config.data_dir, &t.slug)
            .into_iter()
            .find(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("满意度调查"))
            })
    })
    .await;
    assert!(survey_mail["body"]
        .as_str()
        .is_some_and(|b| b.contains("/portal/survey?token=tcv_")));
    let survey_token = mailed_tokens(&app, &t, "wang.lei@example.com", "tcv_")
        .pop()
        .expect("survey token");

    let query = format!("/portal/api/survey?token={survey_token}");
    let before = app.call(Method::GET, &query, None, None).await.expect(200);
    assert_eq!(
        before,
        json!({"ticket": {"number": "T-000001", "subject": "打印机卡纸"}, "rated": false})
    );
    let rate = |rating: i64| {
        app.call(
            Method::POST,
            "/portal/api/survey",
            None,
            Some(json!({"token": survey_token, "rating": rating, "comment": " 师傅很专业 "})),
        )
    };
    let rated = rate(5).await.expect(201);
    assert_eq!(rated["rating"], 5);
    assert_eq!(rated["comment"], "师傅很专业");
    assert_eq!(rated["ticket_id"], id(&tk).as_str());
    rate(4).await.expect_problem(409, "csat.already_rated");
    rate(6).await.expect_problem(422, "validation.failed");
    let after = app.call(Method::GET, &query, None, None).await.expect(200);
    assert_eq!(after["rated"], true);
    assert_eq!(after["rating"], 5);
    let schema = app.schema_of(&t).await;
    let stored: Option<i16> = sqlx::query_scalar(&format!(
        "SELECT rating FROM \"{schema}\".csat_surveys WHERE ticket_id = $1::uuid"
    ))
    .bind(id(&tk))
    .fetch_one(&app.pool)
    .await
    .expect("survey row");
    assert_eq!(stored, Some(5));
    let bogus = survey_token.replace("tcv_", "tcl_");
    app.call(
        Method::GET,
        &format!("/portal/api/survey?token={bogus}"),
        None,
        None,
    )
    .await
    .expect_problem(401, "survey.invalid_token");
    let unknown = format!("{}AAAA", &survey_token[..survey_token.len() - 4]);
    app.call(
        Method::POST,
        "/portal/api/survey",
        None,
        Some(json!({"token": unknown, "rating": 3})),
    )
    .await
    .expect_problem(401, "survey.invalid_token");

    // In the portal: an unresolved ticket cannot be rated; a resolved one once.
    let portal = sign_in(&app, &t, "wang.lei@example.com").await;
    let own = app
        .post(
            "/portal/api/tickets",
            &portal,
            json!({"subject": "网络断了"}),
        )
        .await
        .expect(201);
    let rating_path = format!("/portal/api/tickets/{}/rating", id(&own));
    app.post(&rating_path, &portal, json!({"rating": 4}))
        .await
        .expect_problem(409, "csat.not_resolved");
    let staff_path = format!("/api/v1/tickets/{}", id(&own));
    app.patch(&staff_path, &t.token, json!({"status": "open"}))
        .await
        .expect(200);
    app.patch(&staff_path, &t.token, json!({"status": "resolved"}))
        .await
        .expect(200);
    app.post(&rating_path, &portal, json!({"rating": 0}))
        .await
        .expect_problem(422, "validation.failed");
    let in_portal = app
        .post(&rating_path, &portal, json!({"rating": 4}))
        .await
        .expect(201);
    assert_eq!(in_portal["rating"], 4);
    assert!(in_portal.get("comment").is_none());
    app.post(&rating_path, &portal, json!({"rating": 5}))
        .await
        .expect_problem(409, "csat.already_rated");
    let shown = app
        .get(&format!("/portal/api/tickets/{}", id(&own)), &portal)
        .await
        .expect(200);
    assert_eq!(shown["rating"], 4);
    assert_eq!(shown["status"], "resolved");
    assert_eq!(shown["status_name"], "已解决");
    assert!(shown["resolved_at"].is_string());
    // The mailed survey of that ticket was answered through the portal.
    let survey_count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema}\".csat_surveys WHERE rating IS NOT NULL"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(survey_count, 2);
}

#[tokio::test]
async fn the_portal_has_its_own_openapi_document() {
    let app = TestApp::spawn().await;
    let spec = app
        .call(Method::GET, "/portal/api/openapi.json", None, None)
        .await
        .expect(200);
    let paths = spec["paths"].as_object().expect("paths");
    for p in [
        "/login-link",
        "/session",
        "/tickets",
        "/tickets/{id}",
        "/tickets/{id}/comments",
        "/tickets/{id}/rating",
        "/survey",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert_eq!(spec["servers"][0]["url"], "/portal/api");
    let staff = app
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .expect(200);
    assert!(!staff["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .any(|p| p.contains("login-link")));
}
