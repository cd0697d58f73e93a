//! Two-factor authentication end to end. The codes are computed here by an independent TOTP
//! (RFC 6238 with the `hmac` and `sha1` crates), never by the server's own function.
//!
//! A used step is never accepted twice, so each test confirms with the code of the current
//! step and logs in with the next step's (inside the ±1 window whatever the clock does).

use crate::helpers::{Tenant, TestApp, PASSWORD};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha1::Sha1;
use std::time::{SystemTime, UNIX_EPOCH};

/// The TOTP code of `secret` (base32) for the 30-second step `offset` steps from now.
fn totp(secret: &str, offset: i64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32 secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let step = i64::try_from(now / 30).expect("step") + offset;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let at = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([
        digest[at] & 0x7f,
        digest[at + 1],
        digest[at + 2],
        digest[at + 3],
    ]);
    format!("{:06}", word % 1_000_000)
}

/// Enrols the session's user; returns (secret, recovery codes). Uses the current step.
async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let started = app
        .post("/api/v1/account/mfa/enroll", token, json!({}))
        .await
        .expect(200);
    let secret = started["secret"].as_str().expect("secret").to_owned();
    let codes = app
        .post(
            "/api/v1/account/mfa/confirm",
            token,
            json!({ "code": totp(&secret, 0) }),
        )
        .await
        .expect(200);
    let codes = codes["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (secret, codes)
}

/// The password step of a login that must ask for a code; returns the MFA token.
async fn password_step(app: &TestApp, t: &Tenant, email: &str) -> String {
    let step = app.login(&t.slug, email, PASSWORD).await.expect(200);
    assert_eq!(step["mfa_required"], true);
    assert!(step.get("token").is_none(), "no session before the code");
    step["mfa_token"].as_str().expect("mfa token").to_owned()
}

async fn code_step(app: &TestApp, mfa_token: &str, code: &str) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/login/mfa",
        None,
        Some(json!({ "mfa_token": mfa_token, "code": code })),
    )
    .await
}

async fn audit_actions(app: &TestApp, t: &Tenant, prefix: &str) -> Vec<Value> {
    app.items(
        &format!("/api/v1/audit?action={prefix}&limit=200"),
        &t.token,
    )
    .await
}

#[tokio::test]
async fn enrol_with_a_code_then_log_in_in_two_steps() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let started = app
        .post("/api/v1/account/mfa/enroll", &t.token, json!({}))
        .await
        .expect(200);
    let secret = started["secret"].as_str().expect("secret");
    let uri = started["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains(&t.slug), "{uri}");
    assert!(uri.contains("algorithm=SHA1&digits=6&period=30"), "{uri}");
    // Not on until confirmed: the password alone still logs in.
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200)["token"]
        .as_str()
        .expect("a session");
    app.post(
        "/api/v1/account/mfa/confirm",
        &t.token,
        json!({ "code": "000000x" }),
    )
    .await
    .expect_problem(422, "mfa.invalid_code");
    let confirmed = app
        .post(
            "/api/v1/account/mfa/confirm",
            &t.token,
            json!({ "code": totp(secret, 0) }),
        )
        .await
        .expect(200);
    let mut codes: Vec<&str> = confirmed["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(codes.len(), 10);
    codes.dedup();
    assert_eq!(codes.len(), 10, "all different");
    let me = app.get("/api/v1/me", &t.token).await.expect(200);
    assert_eq!(me["mfa_enabled"], true);
    app.post("/api/v1/account/mfa/enroll", &t.token, json!({}))
        .await
        .expect_problem(409, "mfa.already_enrolled");

    let mfa_token = password_step(&app, &t, &t.admin_email).await;
    // The challenge is no credential.
    app.get("/api/v1/me", &mfa_token)
        .await
        .expect_problem(401, "auth.invalid_token");
    let next = totp(secret, 1);
    let done = code_step(&app, &mfa_token, &next).await.expect(200);
    assert_eq!(done["mfa_required"], false);
    assert_eq!(done["user"]["email"], t.admin_email.as_str());
    let token = done["token"].as_str().expect("session");
    app.get("/api/v1/customers", token).await.expect(200);
    // The challenge is spent, and the code too (replay), even with a new challenge.
    code_step(&app, &mfa_token, &next)
        .await
        .expect_problem(401, "auth.mfa_token_invalid");
    let again = password_step(&app, &t, &t.admin_email).await;
    code_step(&app, &again, &next)
        .await
        .expect_problem(401, "auth.invalid_code");

    let logins = audit_actions(&app, &t, "auth.login").await;
    assert!(
        logins
            .iter()
            .any(|e| e["action"] == "auth.login" && e["detail"]["mfa"] == "totp"),
        "{logins:?}"
    );
    let enrolled = audit_actions(&app, &t, "user.mfa_enrolled").await;
    assert_eq!(enrolled.len(), 1);
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_passwords() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (secret, _) = enrol(&app, &t.token).await;
    let mfa_token = password_step(&app, &t, &t.admin_email).await;
    let right = totp(&secret, 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..5 {
        code_step(&app, &mfa_token, wrong)
            .await
            .expect_problem(401, "auth.invalid_code");
    }
    // Locked: even the right code is not checked, and neither is the password.
    let locked = code_step(&app, &mfa_token, &right)
        .await
        .expect_problem(429, "auth.throttled");
    assert!(locked["retry_after"].as_u64().is_some_and(|s| s > 0));
    app.login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect_problem(429, "auth.throttled");
    sqlx::query("DELETE FROM platform.login_throttle")
        .execute(&app.pool)
        .await
        .expect("unlock");
    // A right password does not wipe the wrong codes: they keep counting for the account.
    let mfa_token = password_step(&app, &t, &t.admin_email).await;
    for _ in 0..4 {
        code_step(&app, &mfa_token, wrong).await.expect(401);
    }
    let fresh = password_step(&app, &t, &t.admin_email).await;
    code_step(&app, &fresh, wrong).await.expect(401);
    code_step(&app, &fresh, &right)
        .await
        .expect_problem(429, "auth.throttled");
}

#[tokio::test]
async fn a_recovery_code_logs_in_once() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, codes) = enrol(&app, &t.token).await;
    let first = password_step(&app, &t, &t.admin_email).await;
    code_step(&app, &first, &codes[0]).await.expect(200)["token"]
        .as_str()
        .expect("session");
    let second = password_step(&app, &t, &t.admin_email).await;
    code_step(&app, &second, &codes[0])
        .await
        .expect_problem(401, "auth.invalid_code");
    // Case and dashes do not matter.
    let typed = codes[1].to_uppercase().replace('-', " ");
    code_step(&app, &second, &typed).await.expect(200);
    let logins = audit_actions(&app, &t, "auth.login").await;
    assert!(logins.iter().any(|e| e["detail"]["mfa"] == "recovery_code"));
}

#[tokio::test]
async fn an_admin_resets_a_users_mfa_and_it_is_audited() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (uid, token) = app.user_with_roles(&t, &["sales"]).await;
    let me = app.get("/api/v1/me", &token).await.expect(200);
    let email = me["user"]["email"].as_str().expect("email").to_owned();
    enrol(&app, &token).await;
    password_step(&app, &t, &email).await;
    // Someone without users:manage cannot.
    app.post(
        &format!("/api/v1/users/{}/mfa/reset", t.admin_id),
        &token,
        json!({}),
    )
    .await
    .expect_problem(403, "auth.forbidden");
    // Another company's administrator cannot reach this user at all.
    let other = app.signup().await;
    app.post(
        &format!("/api/v1/users/{uid}/mfa/reset"),
        &other.token,
        json!({}),
    )
    .await
    .expect(404);
    app.post(
        &format!("/api/v1/users/{uid}/mfa/reset"),
        &t.token,
        json!({}),
    )
    .await
    .expect(204);
    let back = app.login(&t.slug, &email, PASSWORD).await.expect(200);
    assert_eq!(back["mfa_required"], false);
    back["token"].as_str().expect("password alone is enough");
    let resets = audit_actions(&app, &t, "user.mfa_reset").await;
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0]["target_id"], uid.as_str());
    assert_eq!(resets[0]["actor_id"], t.admin_id.as_str());
    assert_eq!(resets[0]["detail"]["was_enrolled"], true);
}

#[tokio::test]
async fn a_role_can_make_mfa_mandatory() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, before) = app.user_with_roles(&t, &["sales"]).await;
    let me = app.get("/api/v1/me", &before).await.expect(200);
    let email = me["user"]["email"].as_str().expect("email").to_owned();
    let mut settings = app
        .get("/api/v1/settings/security", &t.token)
        .await
        .expect(200);
    assert_eq!(settings["mfa_required_roles"], json!([]));
    settings["mfa_required_roles"] = json!(["no-such-role"]);
    app.call(
        Method::PUT,
        "/api/v1/settings/security",
        Some(&t.token),
        Some(settings.clone()),
    )
    .await
    .expect_problem(422, "validation.failed");
    settings["mfa_required_roles"] = json!(["sales"]);
    let saved = app
        .call(
            Method::PUT,
            "/api/v1/settings/security",
            Some(&t.token),
            Some(settings),
        )
        .await
        .expect(200);
    assert_eq!(saved["mfa_required_roles"], json!(["sales"]));

    // Asked at the next login: the session reaches only the account endpoints.
    let login = app.login(&t.slug, &email, PASSWORD).await.expect(200);
    assert_eq!(login["mfa_enrollment_required"], true);
    assert_eq!(login["password_change_required"], false);
    let token = login["token"].as_str().expect("session");
    app.get("/api/v1/customers", token)
        .await
        .expect_problem(403, "auth.mfa_enrollment_required");
    app.post("/api/v1/customers", token, json!({"name": "x"}))
        .await
        .expect_problem(403, "auth.mfa_enrollment_required");
    let me = app.get("/api/v1/me", token).await.expect(200);
    assert_eq!(me["session_restriction"], "mfa_enrollment");
    let (secret, codes) = enrol(&app, token).await;
    app.get("/api/v1/customers", token).await.expect(200);
    // The admin (not a sales user) is not asked.
    let admin = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    assert_eq!(admin["mfa_enrollment_required"], false);
    // A required MFA cannot be turned off by its user.
    app.call(
        Method::DELETE,
        "/api/v1/account/mfa",
        Some(token),
        Some(json!({"password": PASSWORD, "code": codes[0]})),
    )
    .await
    .expect_problem(409, "mfa.required_by_role");
    // Enrolled: the next login asks for the code and gives a full session.
    let mfa_token = password_step(&app, &t, &email).await;
    let done = code_step(&app, &mfa_token, &totp(&secret, 1))
        .await
        .expect(200);
    assert_eq!(done["mfa_enrollment_required"], false);
}

#[tokio::test]
async fn one_turns_mfa_off_with_password_and_code() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let (_, codes) = enrol(&app, &t.token).await;
    let off = |password: &str, code: &str| {
        app.call(
            Method::DELETE,
            "/api/v1/account/mfa",
            Some(&t.token),
            Some(json!({"password": password, "code": code})),
        )
    };
    off("not my password", &codes[0])
        .await
        .expect_problem(422, "validation.failed");
    off(PASSWORD, "nope-nope-nope-nope")
        .await
        .expect_problem(422, "mfa.invalid_code");
    off(PASSWORD, &codes[0]).await.expect(204);
    let back = app
        .login(&t.slug, &t.admin_email, PASSWORD)
        .await
        .expect(200);
    assert_eq!(back["mfa_required"], false);
    assert_eq!(audit_actions(&app, &t, "user.mfa_disabled").await.len(), 1);
}
