//! Tenant schema upgrades: a tenant provisioned at schema v1 (as an older server would have)
//! keeps working for what v1 has, gets a clear 503 for newer features, and is brought to the
//! latest version by `crm migrate` and by the server's background upgrade.

use crate::helpers::{unique_slug, TestApp, PASSWORD};
use crm_core::db::{Db, TenantIsolation};
use crm_core::domain::{DisplayName, Email};
use crm_tenants::migrations::{latest_tenant_version, migrate_tenants};
use crm_tenants::{provision_tenant_at, NewAdmin, NewTenant, TenantSlug};
use serde_json::json;

async fn old_tenant(app: &TestApp) -> (String, String) {
    let slug = unique_slug("old");
    let email = format!("admin@{slug}.example.com");
    let db = Db::new(app.pool.clone(), TenantIsolation::Role);
    provision_tenant_at(
        &db,
        NewTenant {
            slug: TenantSlug::parse("slug", &slug).expect("slug"),
            name: DisplayName::parse("name", "老版本公司").expect("name"),
        },
        NewAdmin {
            email: Email::parse("email", &email).expect("email"),
            name: DisplayName::parse("name", "管理员").expect("name"),
            password_hash: crm_core::identity::hash_password(PASSWORD)
                .await
                .expect("hash"),
        },
        1,
    )
    .await
    .expect("provision at v1");
    (slug, email)
}

async fn versions(app: &TestApp, slug: &str) -> (i32, i32) {
    let (schema, registry): (String, i32) =
        sqlx::query_as("SELECT schema_name, schema_version FROM platform.tenants WHERE slug = $1")
            .bind(slug)
            .fetch_one(&app.pool)
            .await
            .expect("registry");
    let own: i32 = sqlx::query_scalar(&format!("SELECT version FROM \"{schema}\"._schema_version"))
        .fetch_one(&app.pool)
        .await
        .expect("schema version");
    (registry, own)
}

#[tokio::test]
async fn crm_migrate_upgrades_a_tenant_that_is_behind() {
    assert!(
        latest_tenant_version() >= 2,
        "this test needs two schema versions"
    );
    let app = TestApp::spawn().await;
    let current = app.signup().await;
    let (slug, email) = old_tenant(&app).await;
    assert_eq!(versions(&app, &slug).await, (1, 1));

    // What v1 has keeps working; newer features say the tenant is being upgraded.
    let token = app.login(&slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.get("/api/v1/users", &token).await.expect(200);
    let resp = app.get("/api/v1/customers", &token).await;
    assert_eq!(
        resp.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("60")
    );
    resp.expect_problem(503, "tenant.upgrading");

    let report = migrate_tenants(&app.pool, 2, 1).await.expect("migrate");
    assert_eq!(
        (report.migrated, report.failed.len()),
        (1, 0),
        "only the tenant behind is touched"
    );
    assert_eq!(
        versions(&app, &slug).await,
        (latest_tenant_version(), latest_tenant_version())
    );
    let c = app
        .post("/api/v1/customers", &token, json!({"name": "升级后的客户"}))
        .await
        .expect(201);
    assert_eq!(c["version"], 1);
    // The tables of the upgrade belong to the tenant's role, like those of a new tenant.
    let (schema,): (String,) =
        sqlx::query_as("SELECT schema_name FROM platform.tenants WHERE slug = $1")
            .bind(&slug)
            .fetch_one(&app.pool)
            .await
            .expect("schema");
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = $1")
            .bind(&schema)
            .fetch_all(&app.pool)
            .await
            .expect("owners");
    assert_eq!(owners, vec![schema]);
    // Idempotent: nothing left to do.
    let again = migrate_tenants(&app.pool, 2, 1)
        .await
        .expect("migrate again");
    assert_eq!(again.migrated, 0);
    app.get("/api/v1/customers", &current.token)
        .await
        .expect(200);
}

#[tokio::test]
async fn the_server_upgrades_tenants_in_the_background_on_start() {
    let first = TestApp::spawn().await;
    let (slug, email) = old_tenant(&first).await;
    // A second server on the same database, with the background upgrade on.
    let database = first.database.clone();
    let url = first.pool.connect_options();
    let config = crm::config::Config {
        listen: "127.0.0.1:0".into(),
        database_url: Some(format!(
            "postgres://{}@{}:{}/{database}",
            crate::helpers::APP_ROLE,
            url.get_host(),
            url.get_port()
        )),
        db_max_connections: 3,
        auto_migrate_tenants: true,
        master_key: Some(crm_core::crypto::MasterKey::generate().to_base64()),
        ..crm::config::Config::default()
    };
    let pool = crm::server::connect(&config, config.database_url.as_deref().expect("url"))
        .await
        .expect("pool");
    let running = crm::server::start(config, pool)
        .await
        .expect("second server");
    let mut upgraded = false;
    for _ in 0..100 {
        if versions(&first, &slug).await.0 == latest_tenant_version() {
            upgraded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(upgraded, "background upgrade did not reach the tenant");
    let token = first.login(&slug, &email, PASSWORD).await.expect(200)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    first.get("/api/v1/customers", &token).await.expect(200);
    running.stop().await.expect("stop");
}
