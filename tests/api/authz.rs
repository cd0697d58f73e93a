//! The casbin side directly: the exact-match adapter and the bounded per-tenant cache.

use crate::helpers::TestApp;
use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi};
use crm_core::authz::{Authorizer, Permission, TenantPolicyAdapter};
use crm_core::db::{Db, TenantCtx, TenantIsolation};
use crm_tenants::registry;

async fn ctx(app: &TestApp, slug: &str) -> TenantCtx {
    registry::by_slug(&app.pool, slug)
        .await
        .expect("lookup")
        .expect("tenant")
        .ctx()
        .expect("ctx")
}

const MODEL: &str =
    "[request_definition]\nr = sub, dom, obj, act\n[policy_definition]\np = sub, dom, obj, act\n\
[role_definition]\ng = _, _, _\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\n\
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act\n";

#[tokio::test]
async fn adapter_loads_and_writes_only_its_own_domain() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let (ctx_a, ctx_b) = (ctx(&app, &a.slug).await, ctx(&app, &b.slug).await);
    let db = Db::new(app.pool.clone(), TenantIsolation::Role);

    // A row claiming B's domain smuggled into A's table is never loaded for A.
    let schema_a = app.schema_of(&a).await;
    sqlx::query(&format!(
        "INSERT INTO \"{schema_a}\".casbin_rule (ptype, v0, v1, v2, v3) VALUES ('p', 'viewer', $1, 'audit', 'read')"
    ))
    .bind(ctx_b.id.to_string())
    .execute(&app.pool)
    .await
    .expect("smuggle");

    let model = DefaultModel::from_str(MODEL).await.expect("model");
    let mut enforcer = Enforcer::new(model, TenantPolicyAdapter::new(db.clone(), ctx_a.clone()))
        .await
        .expect("enforcer");
    let dom_a = ctx_a.id.to_string();
    let admin_a = format!("u:{}", a.admin_id);
    assert!(enforcer
        .enforce((admin_a.as_str(), dom_a.as_str(), "users", "manage"))
        .expect("enforce"));
    assert!(!enforcer
        .get_policy()
        .iter()
        .any(|r| r.get(1) == Some(&ctx_b.id.to_string())));
    // B's admin is not a subject in A.
    let admin_b = format!("u:{}", b.admin_id);
    assert!(!enforcer
        .enforce((admin_b.as_str(), dom_a.as_str(), "users", "manage"))
        .expect("enforce"));

    // Writes through casbin's management API land in A's table, with exact matching.
    assert!(enforcer
        .add_policy(vec![
            "viewer".into(),
            dom_a.clone(),
            "tickets".into(),
            "update".into()
        ])
        .await
        .expect("add"));
    let stored: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema_a}\".casbin_rule WHERE v0 = 'viewer' AND v2 = 'tickets' AND v3 = 'update'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(stored, 1);
    assert!(enforcer
        .remove_policy(vec![
            "viewer".into(),
            dom_a.clone(),
            "tickets".into(),
            "update".into()
        ])
        .await
        .expect("remove"));
    // A rule for another domain is refused by the adapter (nothing written).
    let _ = enforcer
        .add_policy(vec![
            "viewer".into(),
            ctx_b.id.to_string(),
            "users".into(),
            "manage".into(),
        ])
        .await;
    let foreign: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{schema_a}\".casbin_rule WHERE v1 = $1 AND v3 = 'manage'"
    ))
    .bind(ctx_b.id.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(foreign, 0);
}

#[tokio::test]
async fn enforcer_cache_is_bounded_and_follows_policy_versions() {
    let app = TestApp::spawn().await;
    let db = Db::new(app.pool.clone(), TenantIsolation::Role);
    let authz = Authorizer::new(2);
    let mut tenants = Vec::new();
    for _ in 0..3 {
        let t = app.signup().await;
        tenants.push((ctx(&app, &t.slug).await, format!("u:{}", t.admin_id)));
    }
    for (ctx, subject) in &tenants {
        assert!(authz
            .allows(&db, ctx, 1, subject, Permission::AuditRead)
            .await
            .expect("allows"));
    }
    assert_eq!(authz.cached_tenants(), 2, "LRU keeps at most its capacity");

    // A policy change bumps the tenant's version; the next request reloads the enforcer.
    let t0 = app.signup().await;
    let (_, token) = app.user_with_roles(&t0, &["viewer"]).await;
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert!(!me["permissions"]
        .as_array()
        .expect("p")
        .contains(&serde_json::json!("audit:read")));
    app.patch(
        "/api/v1/roles/viewer",
        &t0.token,
        serde_json::json!({"permissions": ["audit:read"]}),
    )
    .await
    .expect(200);
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(
        me["permissions"],
        serde_json::json!(["audit:read"]),
        "new version reloads"
    );
}
