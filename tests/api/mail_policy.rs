//! Mail that cannot be forged: the sign-up address verification, the platform sender until a
//! company's own sender is confirmed, the recipient rule of unverified companies, quotas and
//! the SMTP host policy.

use crate::helpers::{eventually, id, Tenant, TestApp};
use crate::mail::{account_mail, eml_files};
use reqwest::Method;
use serde_json::{json, Value};

/// A customer with a contact at `email`, and a ticket of theirs.
async fn ticket_with_contact(app: &TestApp, t: &Tenant, email: &str) -> String {
    let customer = app
        .post("/api/v1/customers", &t.token, json!({"name": "艾克米贸易"}))
        .await
        .expect(201);
    let contact = app
        .post(
            "/api/v1/contacts",
            &t.token,
            json!({"name": "赵敏", "customer_id": customer["id"], "email": email}),
        )
        .await
        .expect(201);
    let tk = app
        .post(
            "/api/v1/tickets",
            &t.token,
            json!({"subject": "退货申请", "customer_id": customer["id"], "contact_id": contact["id"]}),
        )
        .await
        .expect(201);
    id(&tk)
}

async fn reply(app: &TestApp, t: &Tenant, ticket: &str, body: &str) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        &format!("/api/v1/tickets/{ticket}/comments"),
        Some(&t.token),
        Some(json!({"body": body, "public": true})),
    )
    .await
}

async fn put_mail(app: &TestApp, t: &Tenant, body: Value) -> crate::helpers::Resp {
    app.call(
        Method::PUT,
        "/api/v1/settings/mail",
        Some(&t.token),
        Some(body),
    )
    .await
}

/// The mails (not account mail) to `to`, once there are `n`.
async fn mails_to(app: &TestApp, t: &Tenant, to: &str, n: usize) -> Vec<Value> {
    let (dir, slug) = (app.config.data_dir.clone(), t.slug.clone());
    eventually("the mail", || {
        let (dir, slug) = (dir.clone(), slug.clone());
        async move {
            let got: Vec<Value> = eml_files(&dir, &slug)
                .into_iter()
                .filter(|m| m["to"].as_str().is_some_and(|a| a.contains(to)))
                .collect();
            (got.len() >= n).then_some(got)
        }
    })
    .await
}

#[tokio::test]
async fn the_sign_up_address_is_verified_by_a_single_use_link() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let me = app.get("/api/v1/me", &t.token).await.expect(200);
    assert_eq!(me["tenant_verified"], false);
    let token = app.confirmation_token(&t, &t.admin_email).await;
    let mail = account_mail(&app.config.data_dir, &t.slug);
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0]["purpose"], "account.verify_email");
    assert!(mail[0]["subject"]
        .as_str()
        .expect("subject")
        .contains("验证"));
    // Only its SHA-256 is stored.
    let schema = app.schema_of(&t).await;
    let stored: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT token_hash FROM \"{schema}\".mail_confirmations"
    ))
    .fetch_all(&app.pool)
    .await
    .expect("stored");
    assert!(!stored.iter().any(|h| h.contains(&token)));

    let done = app
        .post(
            "/api/v1/auth/verify-email",
            "",
            json!({ "token": token.clone() }),
        )
        .await
        .expect(200);
    assert_eq!(done["purpose"], "signup");
    assert_eq!(done["verified"], true);
    let me = app.get("/api/v1/me", &t.token).await.expect(200);
    assert_eq!(me["tenant_verified"], true);
    let settings = app.get("/api/v1/settings/mail", &t.token).await.expect(200);
    assert_eq!(settings["verified"], true);
    // Single use; a made-up token is refused alike.
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email",
        None,
        Some(json!({ "token": token })),
    )
    .await
    .expect_problem(404, "mail.invalid_token");
    app.call(
        Method::GET,
        "/api/v1/auth/verify-email?token=tce_nonsense",
        None,
        None,
    )
    .await
    .expect_problem(404, "mail.invalid_token");
    app.post("/api/v1/auth/verify-email/resend", &t.token, json!({}))
        .await
        .expect_problem(409, "mail.already_verified");
}

#[tokio::test]
async fn an_admin_can_ask_for_the_link_again() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, sales) = app.user_with_roles(&t, &["sales"]).await;
    app.post("/api/v1/auth/verify-email/resend", &sales, json!({}))
        .await
        .expect_problem(403, "auth.forbidden");
    let sent = app
        .post("/api/v1/auth/verify-email/resend", &t.token, json!({}))
        .await
        .expect(200);
    assert_eq!(sent["sent_to"], t.admin_email.as_str());
    let (dir, slug) = (app.config.data_dir.clone(), t.slug.clone());
    eventually("two verification mails", || {
        let (dir, slug) = (dir.clone(), slug.clone());
        async move { (account_mail(&dir, &slug).len() == 2).then_some(()) }
    })
    .await;
    app.verify(&t).await;
}

#[tokio::test]
async fn an_unverified_company_mails_only_its_own_people() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    // A contact of its own records gets ticket replies, from the platform sender.
    let tk = ticket_with_contact(&app, &t, "zhao@customer.example").await;
    reply(&app, &t, &tk, "已为您办理退货").await.expect(201);
    let got = mails_to(&app, &t, "zhao@customer.example", 1).await;
    assert_eq!(
        got[0]["from"],
        format!("{} via TC CRM <no-reply@tc-crm.localhost>", t.slug)
    );
    // A rule mailing any other address fails its effect.
    let rule = app
        .post(
            "/api/v1/rules",
            &t.token,
            json!({
                "name": "通知外部",
                "object": "customers",
                "trigger": {"event": "customer.created"},
                "script": "send_email(\"新客户 {{name}}\\n\\n请跟进。\", \"partner@elsewhere.example\");",
            }),
        )
        .await
        .expect(201);
    app.post("/api/v1/customers", &t.token, json!({"name": "新客户"}))
        .await
        .expect(201);
    let rule_id = id(&rule);
    let run = eventually("the rule run", || {
        let app = &app;
        let (rule_id, token) = (rule_id.clone(), t.token.clone());
        async move {
            let runs = app
                .get(&format!("/api/v1/rules/{rule_id}/runs"), &token)
                .await
                .expect(200);
            runs["items"]
                .as_array()?
                .iter()
                .find(|r| r["outcome"] != "pending" && !r["outcome"].is_null())
                .cloned()
        }
    })
    .await;
    assert_eq!(run["error"]["code"], "mail.unverified_tenant", "{run}");
    // Asking for a sender outside the company is refused the same way.
    put_mail(&app, &t, json!({"from": "security@bank.example"}))
        .await
        .expect_problem(403, "mail.unverified_tenant");
    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    let text = metrics.as_str().expect("text");
    assert!(
        text.contains("crm_mail_refused_total{reason=\"unverified_tenant\"}"),
        "{text}"
    );
    // Once verified, the same rule reaches the address.
    app.verify(&t).await;
    app.post("/api/v1/customers", &t.token, json!({"name": "又一个客户"}))
        .await
        .expect(201);
    mails_to(&app, &t, "partner@elsewhere.example", 1).await;
}

#[tokio::test]
async fn a_spoofed_sender_is_never_used() {
    let app = TestApp::spawn().await;
    let t = app.signup_verified().await;
    let tk = ticket_with_contact(&app, &t, "zhao@customer.example").await;
    let saved = put_mail(
        &app,
        &t,
        json!({"from": "Bank Security <security@bank.example>"}),
    )
    .await
    .expect(200);
    assert!(saved["from"].is_null(), "{saved}");
    assert_eq!(
        saved["from_pending"],
        "Bank Security <security@bank.example>"
    );
    reply(&app, &t, &tk, "第一次回复").await.expect(201);
    let got = mails_to(&app, &t, "zhao@customer.example", 1).await;
    let from = got[0]["from"].as_str().expect("from");
    assert!(!from.contains("bank.example"), "{from}");
    assert!(from.contains("no-reply@tc-crm.localhost"), "{from}");
    // The confirmation went to the wanted address, not to the company.
    let confirm = account_mail(&app.config.data_dir, &t.slug);
    assert!(confirm
        .iter()
        .any(|m| m["purpose"] == "account.confirm_sender"
            && m["to"]
                .as_str()
                .is_some_and(|a| a.contains("security@bank.example"))));

    // An address the company controls: confirmed through its link, then used.
    let own = format!("service@{}.example", t.slug);
    put_mail(&app, &t, json!({"from": format!("客服中心 <{own}>")}))
        .await
        .expect(200);
    let token = app.confirmation_token(&t, &own).await;
    let done = app
        .call(
            Method::GET,
            &format!("/api/v1/auth/verify-email?token={token}"),
            None,
            None,
        )
        .await
        .expect(200);
    assert_eq!(done["purpose"], "sender");
    let settings = app.get("/api/v1/settings/mail", &t.token).await.expect(200);
    assert_eq!(settings["from"], format!("客服中心 <{own}>"));
    assert!(settings["from_pending"].is_null(), "{settings}");
    reply(&app, &t, &tk, "第二次回复").await.expect(201);
    let got = mails_to(&app, &t, "zhao@customer.example", 2).await;
    assert!(
        got.iter()
            .any(|m| m["from"].as_str().is_some_and(|f| f.contains(&own))),
        "{got:#?}"
    );
    // The bank's link, used late, no longer names the wanted sender.
    let bank = app.confirmation_token(&t, "security@bank.example").await;
    app.call(
        Method::POST,
        "/api/v1/auth/verify-email",
        None,
        Some(json!({ "token": bank })),
    )
    .await
    .expect_problem(409, "mail.sender_changed");
}

#[tokio::test]
async fn the_hourly_quota_refuses_the_third_mail() {
    let app = TestApp::spawn_with(|c| {
        c.mail.quota_per_hour = 2;
    })
    .await;
    let t = app.signup().await;
    let tk = ticket_with_contact(&app, &t, "zhao@customer.example").await;
    reply(&app, &t, &tk, "一").await.expect(201);
    reply(&app, &t, &tk, "二").await.expect(201);
    let refused = reply(&app, &t, &tk, "三")
        .await
        .expect_problem(429, "mail.quota_exceeded");
    let detail = refused["detail"].as_str().expect("detail");
    assert!(detail.contains("2 messages per hour"), "{detail}");
    assert!(detail.contains("resets at"), "{detail}");
    // The refused reply left nothing behind.
    let comments = app
        .get(&format!("/api/v1/tickets/{tk}/comments"), &t.token)
        .await
        .expect(200);
    assert_eq!(comments["items"].as_array().map(Vec::len), Some(2));
    // Another company has its own quota.
    let other = app.signup().await;
    let tk2 = ticket_with_contact(&app, &other, "li@customer.example").await;
    reply(&app, &other, &tk2, "一").await.expect(201);
    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
    let text = metrics.as_str().expect("text");
    assert!(
        text.contains(&format!(
            "crm_mail_quota_refused_total{{tenant=\"{}\"}} 1",
            t.slug
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!("tenant=\"{}\"", other.slug)),
        "{text}"
    );
    assert!(text.contains("crm_mail_enqueued_total"), "{text}");
}

#[tokio::test]
async fn a_company_smtp_server_must_be_a_public_mail_host() {
    let app = TestApp::spawn().await;
    let t = app.signup_verified().await;
    for (url, why) in [
        ("smtp://127.0.0.1:2525", "port not allowed"),
        ("smtp://127.0.0.1:25", "internal address"),
        ("smtp://localhost:587", "resolves to an internal address"),
        ("smtps://169.254.169.254:465", "internal address"),
        ("smtp://10.1.2.3:25", "internal address"),
    ] {
        let refused = put_mail(&app, &t, json!({ "smtp_url": url }))
            .await
            .expect_problem(422, "validation.failed");
        let error = &refused["errors"][0];
        assert_eq!(error["field"], "smtp_url", "{refused}");
        assert_eq!(error["code"], "host_refused", "{refused}");
        let message = error["message"].as_str().expect("message");
        assert!(
            message.contains("refused") && message.contains(why),
            "{url}: {message}"
        );
    }
}

/// A company one schema version behind (no verification columns, no quota table yet) keeps
/// mailing its contacts, from the platform sender, unverified.
#[tokio::test]
async fn a_company_one_version_behind_still_mails_its_contacts() {
    use crm_core::db::Db;
    use crm_core::domain::{DisplayName, Email};
    use crm_tenants::{provision_tenant_at, NewAdmin, NewTenant, TenantSlug};
    let app = TestApp::spawn_with(|c| c.auto_migrate_tenants = false).await;
    let slug = crate::helpers::unique_slug("v11");
    let email = format!("admin@{slug}.example.com");
    let db = Db::new(app.pool.clone(), app.config.tenant_isolation);
    provision_tenant_at(
        &db,
        NewTenant {
            slug: TenantSlug::parse("slug", &slug).expect("slug"),
            name: DisplayName::parse("name", "老版本公司").expect("name"),
        },
        NewAdmin {
            email: Email::parse("email", &email).expect("email"),
            name: DisplayName::parse("name", "管理员").expect("name"),
            password_hash: crm_core::identity::hash_password(crate::helpers::PASSWORD)
                .await
                .expect("hash"),
        },
        11,
    )
    .await
    .expect("provision at v11");
    let login = app
        .login(&slug, &email, crate::helpers::PASSWORD)
        .await
        .expect(200);
    let t = Tenant {
        id: String::new(),
        slug: slug.clone(),
        admin_id: login["user"]["id"].as_str().expect("id").to_owned(),
        admin_email: email,
        token: login["token"].as_str().expect("token").to_owned(),
    };
    let settings = app.get("/api/v1/settings/mail", &t.token).await.expect(200);
    assert_eq!(settings["verified"], false);
    let tk = ticket_with_contact(&app, &t, "zhao@customer.example").await;
    reply(&app, &t, &tk, "已为您办理退货").await.expect(201);
    let got = mails_to(&app, &t, "zhao@customer.example", 1).await;
    assert!(
        got[0]["from"]
            .as_str()
            .is_some_and(|f| f.contains("no-reply@tc-crm.localhost")),
        "{got:#?}"
    );
}
