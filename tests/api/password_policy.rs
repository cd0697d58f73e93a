//! The tenant's password policy: defaults, every broken rule named, expiry forcing a change
//! at login, no reuse of the last N.

use crate::helpers::{Tenant, TestApp, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

async fn set_policy(app: &TestApp, t: &Tenant, policy: Value) -> Value {
    app.call(
        Method::PUT,
        "/api/v1/settings/security",
        Some(&t.token),
        Some(json!({ "mfa_required_roles": [], "password_policy": policy })),
    )
    .await
    .expect(200)
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> crate::helpers::Resp {
    app.post(
        "/api/v1/me/password",
        token,
        json!({ "current_password": current, "new_password": new }),
    )
    .await
}

#[tokio::test]
async fn defaults_ask_for_ten_characters_and_no_common_password() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let settings = app
        .get("/api/v1/settings/security", &t.token)
        .await
        .expect(200);
    assert_eq!(
        settings["password_policy"],
        json!({
            "min_length": 10, "require_upper": false, "require_lower": false,
            "require_digit": false, "require_symbol": false, "reject_common": true,
            "expiry_days": null, "history": 0
        })
    );
    let create = |password: &'static str| {
        app.post(
            "/api/v1/users",
            &t.token,
            json!({"email": "p@x.com", "name": "P", "password": password}),
        )
    };
    let common = create("Qwertyuiop")
        .await
        .expect_problem(422, "password.policy");
    assert_eq!(
        common["detail"],
        "the password must not be a commonly used password"
    );
    let short = create("nine char")
        .await
        .expect_problem(422, "password.policy");
    assert_eq!(
        short["detail"],
        "the password must be at least 10 characters"
    );
    assert_eq!(short["errors"][0]["field"], "password");
    assert_eq!(short["errors"][0]["code"], "too_short");
    create("ten chars!").await.expect(201);
    // Sign-up has no tenant policy yet: the defaults.
    app.call(
        Method::POST,
        "/api/v1/signup",
        None,
        Some(json!({
            "tenant_slug": crate::helpers::unique_slug("pp"), "tenant_name": "P",
            "admin_email": "a@p.com", "admin_password": "iloveyou2", "admin_name": "A"
        })),
    )
    .await
    .expect_problem(422, "password.policy");
}

#[tokio::test]
async fn a_violation_names_every_rule_it_breaks() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    // The seed documents' policy: 8 characters with upper, lower, digit and symbol.
    let saved = set_policy(
        &app,
        &t,
        json!({
            "min_length": 8, "require_upper": true, "require_lower": true,
            "require_digit": true, "require_symbol": true, "expiry_days": 60, "history": 5
        }),
    )
    .await;
    assert_eq!(saved["password_policy"]["reject_common"], true);
    assert_eq!(saved["password_policy"]["expiry_days"], 60);
    let broken = change(&app, &t.token, PASSWORD, "short")
        .await
        .expect_problem(422, "password.policy");
    assert_eq!(
        broken["detail"],
        "the password must be at least 8 characters and contain an upper-case letter, a digit, and a symbol"
    );
    let codes: Vec<&str> = broken["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert_eq!(codes, ["too_short", "missing_class"]);
    let reused = change(&app, &t.token, PASSWORD, PASSWORD).await.expect(422);
    assert_eq!(reused["errors"][0]["code"], "unchanged");
    // The same rules for an administrator's reset.
    app.post(
        &format!("/api/v1/users/{}/password", t.admin_id),
        &t.token,
        json!({"new_password": "alllowercase"}),
    )
    .await
    .expect_problem(422, "password.policy");
    change(&app, &t.token, PASSWORD, "Tc-crm-8")
        .await
        .expect(204);
    // A policy out of range is refused field by field.
    let bad = app
        .call(
            Method::PUT,
            "/api/v1/settings/security",
            Some(&t.token),
            Some(json!({"mfa_required_roles": [], "password_policy": {
                "min_length": 4, "require_upper": false, "require_lower": false,
                "require_digit": false, "require_symbol": false, "expiry_days": 0, "history": 99
            }})),
        )
        .await
        .expect_problem(422, "validation.failed");
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "password_policy.min_length",
            "password_policy.expiry_days",
            "password_policy.history"
        ]
    );
    let audit = app
        .get("/api/v1/audit?action=settings.security_updated", &t.token)
        .await
        .expect(200);
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_expired_password_must_be_changed_at_login() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    set_policy(
        &app,
        &t,
        json!({"min_length": 10, "require_upper": false, "require_lower": false,
        "require_digit": false, "require_symbol": false, "expiry_days": 60, "history": 0}),
    )
    .await;
    let fresh = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    assert_eq!(fresh["password_change_required"], false);
    let schema = app.schema_of(&t).await;
    sqlx::query(&format!(
        "UPDATE \"{schema}\".users SET password_changed_at = now() - interval '61 days'"
    ))
    .execute(&app.pool)
    .await
    .expect("backdate");
    let login = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    assert_eq!(login["password_change_required"], true);
    let token = login["token"].as_str().expect("session");
    app.get("/api/v1/customers", token)
        .await
        .expect_problem(403, "auth.password_expired");
    app.post("/api/v1/account/mfa/enroll", token, json!({}))
        .await
        .expect_problem(403, "auth.password_expired");
    let me = app.get("/api/v1/me", token).await.expect(200);
    assert_eq!(me["session_restriction"], "password_change");
    // Sessions opened before the expiry stay full ones.
    app.get("/api/v1/customers", &t.token).await.expect(200);
    change(&app, token, PASSWORD, "a fresh password")
        .await
        .expect(204);
    app.get("/api/v1/customers", token).await.expect(200);
    let next = app
        .login(&t.slug, &t.admin_email, "a fresh password")
        .await
        .expect(200);
    assert_eq!(next["password_change_required"], false);
}

#[tokio::test]
async fn the_last_passwords_cannot_be_reused() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    set_policy(
        &app,
        &t,
        json!({"min_length": 10, "require_upper": false, "require_lower": false,
        "require_digit": false, "require_symbol": false, "expiry_days": null, "history": 3}),
    )
    .await;
    let token = t.token.as_str();
    change(&app, token, PASSWORD, "second password")
        .await
        .expect(204);
    change(&app, token, "second password", "third password")
        .await
        .expect(204);
    // The last 3: third (current), second and the first.
    let refused = change(&app, token, "third password", PASSWORD)
        .await
        .expect_problem(422, "password.policy");
    assert_eq!(
        refused["detail"],
        "the password must not be one of your last 3 passwords"
    );
    change(&app, token, "third password", "fourth password")
        .await
        .expect(204);
    // Now the first is 4 passwords back: allowed again.
    change(&app, token, "fourth password", PASSWORD)
        .await
        .expect(204);
}
