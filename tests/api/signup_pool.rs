//! Sign-up from the warm pool (`crm_tenants::pool`, `signup_pool_size`): a sign-up takes a
//! pooled schema whose id becomes the tenant's, the pool is refilled, an unclaimed schema is
//! unreachable, a taken slug consumes nothing, and with nothing claimable sign-up provisions
//! inline. Each test has its own database, so its pool is its own.

use crate::helpers::{eventually, unique_slug, TestApp, PASSWORD};
use crm_core::db::{Db, SchemaName, TenantCtx};
use crm_core::domain::{DisplayName, Email};
use crm_tenants::pool;
use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use uuid::Uuid;

async fn pooled_ids(app: &TestApp) -> BTreeSet<Uuid> {
    sqlx::query_scalar("SELECT id FROM platform.tenant_pool")
        .fetch_all(&app.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Waits until the server's refill task has `n` entries ready; returns their ids.
async fn pool_of(app: &TestApp, n: usize) -> BTreeSet<Uuid> {
    eventually(&format!("{n} pooled tenants"), || async {
        let ids = pooled_ids(app).await;
        (ids.len() == n).then_some(ids)
    })
    .await
}

async fn sign_up(app: &TestApp, slug: &str) -> crate::helpers::Resp {
    app.call(
        Method::POST,
        "/api/v1/signup",
        None,
        Some(json!({
            "tenant_slug": slug,
            "tenant_name": "池子公司 Pool Co",
            "admin_email": format!("admin@{slug}.example.com"),
            "admin_password": PASSWORD,
            "admin_name": "王芳",
        })),
    )
    .await
}

#[tokio::test]
async fn a_signup_takes_a_pooled_schema_and_the_pool_is_refilled() {
    let mut app = TestApp::spawn_with(|c| c.signup_pool_size = 3).await;
    let before = pool_of(&app, 3).await;

    let tenant = app.signup().await;
    let id: Uuid = tenant.id.parse().unwrap();
    assert!(before.contains(&id), "{id} was not one of {before:?}");
    assert!(!pooled_ids(&app).await.contains(&id), "claimed entry left");
    assert_eq!(
        app.schema_of(&tenant).await,
        SchemaName::for_tenant(id).as_str()
    );

    // A whole tenant: its default roles (written when pooled) and its administrator work.
    let roles = app.get("/api/v1/roles", &tenant.token).await.expect(200);
    let names: Vec<&str> = roles
        .as_array()
        .or_else(|| roles["items"].as_array())
        .expect("role list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for role in ["admin", "sales", "service", "finance", "viewer"] {
        assert!(names.contains(&role), "{role} missing from {names:?}");
    }
    app.login(&tenant.slug, &tenant.admin_email, PASSWORD)
        .await
        .expect(200);
    let customer = app
        .post(
            "/api/v1/customers",
            &tenant.token,
            json!({ "name": "第一位客户" }),
        )
        .await
        .expect(201);
    assert!(customer["id"].is_string());
    let audit: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".audit_log WHERE action = 'tenant.created'",
        SchemaName::for_tenant(id)
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audit, 1);

    // The claim woke the refill task: back to three, the claimed one not among them.
    let after = pool_of(&app, 3).await;
    assert!(!after.contains(&id));
    assert_eq!(after.intersection(&before).count(), 2);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_signups_take_distinct_entries() {
    let mut app = TestApp::spawn_with(|c| c.signup_pool_size = 3).await;
    let before = pool_of(&app, 3).await;
    let (a, b, c) = tokio::join!(app.signup(), app.signup(), app.signup());
    let ids: BTreeSet<Uuid> = [a, b, c].iter().map(|t| t.id.parse().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.is_subset(&before), "{ids:?} not all from {before:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_taken_slug_is_409_and_consumes_no_entry() {
    let mut app = TestApp::spawn_with(|c| c.signup_pool_size = 2).await;
    pool_of(&app, 2).await;
    let slug = unique_slug("taken");
    sign_up(&app, &slug).await.expect(201);
    let before = pool_of(&app, 2).await;

    sign_up(&app, &slug)
        .await
        .expect_problem(409, "tenant.slug_taken");
    assert_eq!(
        pooled_ids(&app).await,
        before,
        "the entry went back to the pool"
    );
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tenants, 1);
    app.stop().await;
}

#[tokio::test]
async fn with_nothing_claimable_signup_provisions_inline() {
    let mut app = TestApp::spawn_with(|c| c.signup_pool_size = 1).await;
    let pooled = pool_of(&app, 1).await;
    let entry = *pooled.first().unwrap();

    // Another transaction holds the only entry (as a concurrent claim would): SKIP LOCKED
    // passes it over and the sign-up provisions a schema of its own.
    let url = app.config.database_url.clone().unwrap();
    let mut holder = PgConnection::connect(&url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM platform.tenant_pool WHERE id = $1 FOR UPDATE")
        .bind(entry)
        .execute(&mut *held)
        .await
        .unwrap();
    let tenant = app.signup().await;
    assert_ne!(tenant.id, entry.to_string());
    app.get("/api/v1/roles", &tenant.token).await.expect(200);
    held.rollback().await.unwrap();
    assert_eq!(
        pooled_ids(&app).await,
        pooled,
        "the held entry is still pooled"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_the_pool_off_signup_provisions_inline_and_pools_nothing() {
    let app = TestApp::spawn_with(|c| c.signup_pool_size = 0).await;
    let tenant = app.signup().await;
    app.get("/api/v1/roles", &tenant.token).await.expect(200);
    assert!(pooled_ids(&app).await.is_empty());
}

#[tokio::test]
async fn an_unclaimed_schema_cannot_be_reached_by_any_credential() {
    let mut app = TestApp::spawn_with(|c| c.signup_pool_size = 1).await;
    let entry = *pool_of(&app, 1).await.first().unwrap();

    // Even a real user with a real session inside the pooled schema is refused: credentials
    // name their tenant, and the registry has no such tenant until a sign-up claims it.
    let db = Db::new(app.pool.clone(), app.config.tenant_isolation);
    let ctx = TenantCtx {
        id: entry,
        slug: "unclaimed".into(),
        schema: SchemaName::for_tenant(entry),
    };
    let mut tx = db.tenant_tx(&ctx).await.unwrap();
    let user = crm_core::users::create(
        &mut tx,
        crm_core::users::NewUser {
            email: Email::parse("email", "intruder@example.com").unwrap(),
            name: DisplayName::parse("name", "Intruder").unwrap(),
            password_hash: crm_core::identity::hash_password(PASSWORD).await.unwrap(),
            roles: vec!["admin".into()],
            team_ids: Vec::new(),
            locale: None,
        },
    )
    .await
    .unwrap();
    let session = crm_core::identity::sessions::create(
        &mut tx,
        user.id,
        chrono::Duration::hours(1),
        None,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    app.get("/api/v1/users", &session.token)
        .await
        .expect_problem(401, "auth.invalid_token");
    let forged = format!("tcs_{}_{}", entry.simple(), "A".repeat(43));
    app.get("/api/v1/customers", &forged)
        .await
        .expect_problem(401, "auth.invalid_token");
    // Login names a tenant by slug, which only the registry row carries.
    for name in [
        entry.to_string(),
        entry.simple().to_string(),
        "unclaimed".into(),
    ] {
        let refused = app.login(&name, "intruder@example.com", PASSWORD).await;
        assert!(
            matches!(refused.status.as_u16(), 401 | 404 | 422),
            "login into an unclaimed schema as '{name}': {:?}",
            refused.body
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn entries_behind_the_schema_version_are_upgraded_not_claimed() {
    let app = TestApp::spawn_with(|c| c.signup_pool_size = 0).await;
    let db = Db::new(app.pool.clone(), app.config.tenant_isolation);
    let latest = crm_tenants::migrations::latest_tenant_version();
    let old = pool::fill_at(&db, 1, latest - 1).await.unwrap();
    assert_eq!(old, 1);
    assert_eq!(
        pool::available(&db.pool).await.unwrap(),
        0,
        "an old entry is not ready"
    );

    // Not claimable while behind: sign-up provisions inline.
    let pooled = pooled_ids(&app).await;
    let (tenant, _) = crm_tenants::signup::sign_up(
        &db,
        crm_tenants::signup::SignupForm {
            tenant_slug: &unique_slug("behind"),
            tenant_name: "Behind Co",
            admin_email: "admin@behind.example.com",
            admin_name: "Admin",
            admin_password: PASSWORD,
        },
        chrono::Duration::hours(1),
        &crm_core::context::RequestMeta::default(),
        50,
        true,
    )
    .await
    .unwrap();
    assert!(!pooled.contains(&tenant.tenant.id));

    assert_eq!(pool::upgrade(&db).await.unwrap(), 1);
    let entry = *pooled.first().unwrap();
    let version: i32 = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{}\"._schema_version",
        SchemaName::for_tenant(entry)
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(version, latest);
    assert_eq!(pool::available(&db.pool).await.unwrap(), 1);
    let claimed = crm_tenants::signup::create_tenant(
        &db,
        crm_tenants::NewTenant {
            slug: crm_tenants::TenantSlug::parse("slug", &unique_slug("upgraded")).unwrap(),
            name: DisplayName::parse("name", "Upgraded Co").unwrap(),
        },
        crm_tenants::NewAdmin {
            email: Email::parse("email", "admin@upgraded.example.com").unwrap(),
            name: DisplayName::parse("name", "Admin").unwrap(),
            password_hash: crm_core::identity::hash_password(PASSWORD).await.unwrap(),
        },
        true,
    )
    .await
    .unwrap();
    assert_eq!(claimed.tenant.id, entry);
    assert_eq!(claimed.tenant.schema_version, latest);
}
