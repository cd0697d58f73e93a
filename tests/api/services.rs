//! The services check the caller themselves: called directly, as GraphQL, plugins and rule
//! effects will call them, without REST in front, they refuse what the caller may not do.

use crate::helpers::TestApp;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::db::Db;
use crm_core::identity::{Principal, PrincipalKind};
use crm_core::Error;
use crm_desk::sla::{self, PolicyInput};
use crm_records::service::{self, CreateOptions};
use crm_records::{engine, field_service, pipelines, Access, ObjectKey, ObjectSchema};
use crm_records::{RecordAction, Visibility};
use serde_json::json;
use uuid::Uuid;

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) {
    match result {
        Err(Error::Forbidden { code, .. }) => assert_eq!(code, "auth.forbidden", "{what}"),
        other => panic!("{what}: expected 403 auth.forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn services_refuse_a_caller_without_the_permission_when_called_directly() {
    let app = TestApp::spawn().await;
    let tenant = app.signup().await;
    let (viewer_id, _) = app.user_with_roles(&tenant, &["viewer"]).await;
    let db = Db::new(app.pool.clone(), app.config.tenant_isolation);
    let tenant_id: Uuid = tenant.id.parse().expect("tenant id");
    let ctx = crm_tenants::registry::by_id(&app.pool, tenant_id)
        .await
        .expect("registry")
        .expect("tenant")
        .ctx()
        .expect("ctx");
    let principal = Principal {
        kind: PrincipalKind::User,
        id: viewer_id.parse().expect("user id"),
        name: "viewer".into(),
        session_id: None,
        policy_version: 0,
        metadata_version: 0,
        restriction: None,
        reads: Default::default(),
    };
    let actor = Actor::system();
    let mut tx = db.tenant_tx(&ctx).await.expect("tx");
    let enforcement = crm_core::authz::Authorizer::new(4)
        .enforcement(&db, &ctx, 0)
        .await
        .expect("casbin enforcer");
    let caller = Caller::load(&mut tx, &principal)
        .await
        .expect("caller")
        .enforced_by(enforcement);

    let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers)
        .await
        .expect("schema");
    let access = Access::of_caller(&caller, &actor, ObjectKey::Customers, None);
    let body = json!({ "name": "上海某某贸易有限公司" });
    let created = service::create(&mut tx, &schema, &access, &body, CreateOptions::default()).await;
    assert_forbidden("records: create a customer", created);
    let missing = Uuid::now_v7();
    let purged = service::purge(&mut tx, &schema, &access, missing).await;
    assert_forbidden("records: purge", purged);

    let new_user = crm_core::staff::NewStaff {
        email: "new@example.com".into(),
        name: "王伟".into(),
        password: "a long enough password".into(),
        roles: vec![],
        team_ids: vec![],
        locale: None,
    };
    assert_forbidden(
        "users: create",
        crm_core::staff::create(&mut tx, &caller, &actor, new_user).await,
    );
    let policy = PolicyInput {
        name: "VIP".into(),
        position: None,
        priorities: vec![],
        types: vec![],
        customer_levels: vec![],
        first_response_minutes: Some(30),
        resolution_minutes: None,
        calendar_id: None,
        enabled: true,
    };
    assert_forbidden(
        "desk: SLA policy",
        sla::create_policy(&mut tx, &caller, &policy).await,
    );
    assert_forbidden(
        "pipelines: create",
        pipelines::create(&mut tx, &caller, &actor, "渠道", &[]).await,
    );
    assert_forbidden(
        "fields: delete",
        field_service::delete(&mut tx, &caller, &actor, ObjectKey::Customers, "x", true).await,
    );
    assert_forbidden(
        "workflow settings",
        crm_workflows::manage::set_settings(&mut tx, &caller, &actor, &[], 5).await,
    );
    let wanted = crm_core::mail::TenantMail::default();
    let policy = crm_core::mail::SmtpHostPolicy::default();
    assert_forbidden(
        "mail settings",
        crm_core::mail::change_settings(&mut tx, &caller, &actor, None, &policy, &wanted).await,
    );
    assert_forbidden(
        "mail: resend the verification link",
        crm_core::mail::verification::resend(&mut tx, &caller).await,
    );

    // The portal's access opens tickets and nothing else.
    let tickets = ObjectSchema::load(&mut tx, ObjectKey::Tickets)
        .await
        .expect("schema");
    let portal = Access::portal(&actor, None);
    assert_forbidden(
        "portal: update a ticket",
        service::update(&mut tx, &tickets, &portal, missing, None, &json!({})).await,
    );
    assert_forbidden(
        "portal: read customers",
        engine::fetch(&mut tx, &schema, &portal, missing, Visibility::Any, false).await,
    );
    assert!(portal
        .require(ObjectKey::Tickets, RecordAction::Create)
        .is_ok());

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(tx.conn())
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing was written");
    tx.commit().await.expect("commit");
}
