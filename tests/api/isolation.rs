//! Tenant isolation, three ways: over the API, inside Postgres with the tenant role, and
//! without tenant context. Plus the same API flow in `schema` isolation mode (Citus).

use crate::helpers::{TestApp, PASSWORD};
use crm_core::db::TenantIsolation;
use serde_json::json;
use sqlx::{Connection, Executor};

/// B's objects are invisible and untouchable with A's credentials, by id and by list.
async fn api_isolation(app: &TestApp) {
    let a = app.signup().await;
    let b = app.signup().await;
    let (b_user, _) = app.user_with_roles(&b, &["sales"]).await;
    let b_key = app
        .post(
            "/api/v1/api-keys",
            &b.token,
            json!({"name": "b-key", "role": "viewer"}),
        )
        .await
        .expect(201);
    let b_key_id = b_key["id"].as_str().expect("id");
    let b_team = app
        .post("/api/v1/teams", &b.token, json!({"name": "B team"}))
        .await
        .expect(201);
    let b_team_id = b_team["id"].as_str().expect("id");
    app.post(
        "/api/v1/roles",
        &b.token,
        json!({"name": "b-only", "permissions": ["users:read"]}),
    )
    .await
    .expect(201);

    // By id: 404, never B's data.
    app.get(&format!("/api/v1/users/{b_user}"), &a.token)
        .await
        .expect_problem(404, "user.not_found");
    app.get(&format!("/api/v1/users/{}", b.admin_id), &a.token)
        .await
        .expect_problem(404, "user.not_found");
    app.patch(
        &format!("/api/v1/users/{b_user}"),
        &a.token,
        json!({"name": "pwned"}),
    )
    .await
    .expect_problem(404, "user.not_found");
    app.delete(&format!("/api/v1/users/{b_user}"), &a.token)
        .await
        .expect_problem(404, "user.not_found");
    app.post(
        &format!("/api/v1/users/{b_user}/password"),
        &a.token,
        json!({"new_password": "taken over now"}),
    )
    .await
    .expect_problem(404, "user.not_found");
    app.delete(&format!("/api/v1/api-keys/{b_key_id}"), &a.token)
        .await
        .expect_problem(404, "api_key.not_found");
    app.get(&format!("/api/v1/teams/{b_team_id}"), &a.token)
        .await
        .expect_problem(404, "team.not_found");
    app.get("/api/v1/roles/b-only", &a.token)
        .await
        .expect_problem(404, "role.not_found");
    app.patch("/api/v1/roles/b-only", &a.token, json!({"permissions": []}))
        .await
        .expect_problem(404, "role.not_found");
    app.delete("/api/v1/roles/b-only", &a.token)
        .await
        .expect_problem(404, "role.not_found");
    // A cannot hand its users B's role, nor add B's user to its team.
    let a_team = app
        .post("/api/v1/teams", &a.token, json!({"name": "A team"}))
        .await
        .expect(201);
    app.post(
        &format!(
            "/api/v1/teams/{}/members",
            a_team["id"].as_str().expect("id")
        ),
        &a.token,
        json!({"user_id": b_user}),
    )
    .await
    .expect_problem(422, "validation.failed");

    // By list: only A's own.
    let users = app
        .get("/api/v1/users?limit=200", &a.token)
        .await
        .expect(200);
    let ids: Vec<&str> = users["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    assert_eq!(ids, [a.admin_id.as_str()]);
    let keys = app.get("/api/v1/api-keys", &a.token).await.expect(200);
    assert_eq!(keys, json!([]));
    let teams = app.get("/api/v1/teams", &a.token).await.expect(200);
    assert_eq!(teams.as_array().map(Vec::len), Some(1));
    let roles = app.get("/api/v1/roles", &a.token).await.expect(200);
    assert!(!roles.to_string().contains("b-only"));
    let audit = app
        .get("/api/v1/audit?limit=200", &a.token)
        .await
        .expect(200);
    let text = audit.to_string();
    assert!(
        !text.contains(&b.slug) && !text.contains(&b_user) && !text.contains("b-key"),
        "A's audit shows nothing of B"
    );

    // B's key cannot be used with A's tenant named.
    let req = app
        .client
        .get(format!("{}/api/v1/users", app.base))
        .bearer_auth(b_key["secret"].as_str().expect("secret"))
        .header("x-tenant", a.slug.clone());
    app.send(req).await.expect_problem(403, "tenant.mismatch");
    // A token forged with A's tenant id but B's secret part is unknown in A's schema.
    let b_secret = b.token.rsplit('_').next().expect("secret part");
    let forged = format!("tcs_{}_{b_secret}", a.id.replace('-', ""));
    app.get("/api/v1/me", &forged)
        .await
        .expect_problem(401, "auth.invalid_token");
    // Logins are per tenant: B's admin does not exist in A.
    app.login(&a.slug, &b.admin_email, PASSWORD)
        .await
        .expect_problem(401, "auth.invalid_credentials");
}

#[tokio::test]
async fn tenants_cannot_reach_each_other_over_the_api() {
    let app = TestApp::spawn().await;
    api_isolation(&app).await;
}

#[tokio::test]
async fn schema_isolation_mode_serves_the_same_api_and_isolation() {
    let app = TestApp::spawn_isolation(TenantIsolation::Schema).await;
    api_isolation(&app).await;
    let t = app.signup().await;
    let (_, token) = app.user_with_roles(&t, &["viewer"]).await;
    app.get("/api/v1/users", &token).await.expect(200);
    app.post("/api/v1/teams", &token, json!({"name": "x"}))
        .await
        .expect_problem(403, "auth.forbidden");
}

#[tokio::test]
async fn postgres_refuses_a_tenant_role_reading_another_tenants_schema() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let schema_a = app.schema_of(&a).await;
    let schema_b = app.schema_of(&b).await;
    let mut tx = app.pool.begin().await.expect("tx");
    tx.execute(
        format!("SET LOCAL ROLE \"{schema_a}\"; SET LOCAL search_path = \"{schema_a}\", public")
            .as_str(),
    )
    .await
    .expect("enter A");
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .expect("own rows");
    assert_eq!(own, 1);
    let err = sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM \"{schema_b}\".users"))
        .fetch_one(&mut *tx)
        .await
        .expect_err("must be refused");
    let code = err
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .map(|c| c.to_string());
    assert_eq!(
        code.as_deref(),
        Some("42501"),
        "permission denied, got {err}"
    );
    tx.rollback().await.ok();

    // The platform registry is out of reach for a tenant role too.
    let mut tx = app.pool.begin().await.expect("tx");
    tx.execute(format!("SET LOCAL ROLE \"{schema_a}\"").as_str())
        .await
        .expect("role");
    let err = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM platform.tenants")
        .fetch_one(&mut *tx)
        .await
        .expect_err("must be refused");
    assert_eq!(
        err.as_database_error()
            .and_then(sqlx::error::DatabaseError::code)
            .as_deref(),
        Some("42501")
    );
}

#[tokio::test]
async fn a_query_without_tenant_context_fails_closed() {
    let app = TestApp::spawn().await;
    app.signup().await;
    // A plain connection of the application role: no search_path into any tenant.
    let mut conn = sqlx::PgConnection::connect_with(&app.pool.connect_options())
        .await
        .expect("connect");
    for table in [
        "users",
        "sessions",
        "roles",
        "casbin_rule",
        "audit_log",
        "api_keys",
    ] {
        let err = sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .execute(&mut conn)
            .await
            .expect_err("no tenant context must fail");
        assert_eq!(
            err.as_database_error()
                .and_then(sqlx::error::DatabaseError::code)
                .as_deref(),
            Some("42P01"),
            "{table}: undefined table, got {err}"
        );
    }
    let outside: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'platform') \
         AND tablename NOT IN ('tenants', 'tenant_pool', 'login_throttle', 'job_hints', '_sqlx_migrations')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(outside, 0, "no tenant table outside tenant schemas");
}

#[tokio::test]
async fn sales_activities_and_calendars_of_another_tenant_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let customer = app
        .post("/api/v1/customers", &b.token, json!({"name": "B 客户"}))
        .await
        .expect(201);
    let opp = app
        .post(
            "/api/v1/opportunities",
            &b.token,
            json!({"name": "B 机会", "customer_id": customer["id"]}),
        )
        .await
        .expect(201);
    let act = app
        .post(
            "/api/v1/activities",
            &b.token,
            json!({"kind": "call", "customer_id": customer["id"]}),
        )
        .await
        .expect(201);
    let task = app
        .post("/api/v1/tasks", &b.token, json!({"title": "B 任务"}))
        .await
        .expect(201);
    let pipeline = app.get("/api/v1/pipelines", &b.token).await.expect(200)[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let id = |v: &serde_json::Value| v["id"].as_str().expect("id").to_owned();

    for path in [
        format!("/api/v1/opportunities/{}", id(&opp)),
        format!("/api/v1/activities/{}", id(&act)),
        format!("/api/v1/tasks/{}", id(&task)),
        format!("/api/v1/customers/{}/timeline", id(&customer)),
    ] {
        app.get(&path, &a.token)
            .await
            .expect_problem(404, "record.not_found");
    }
    app.patch(
        &format!("/api/v1/tasks/{}", id(&task)),
        &a.token,
        json!({"title": "x"}),
    )
    .await
    .expect_problem(404, "record.not_found");
    app.get(&format!("/api/v1/pipelines/{pipeline}"), &a.token)
        .await
        .expect_problem(404, "pipeline.not_found");
    app.get(&format!("/api/v1/pipelines/{pipeline}/board"), &a.token)
        .await
        .expect_problem(404, "pipeline.not_found");
    app.get(
        &format!("/api/v1/reports/sales?pipeline_id={pipeline}"),
        &a.token,
    )
    .await
    .expect_problem(404, "pipeline.not_found");
    // A cannot point its records at B's customer, nor hand out B's users' calendars.
    app.post(
        "/api/v1/opportunities",
        &a.token,
        json!({"name": "x", "customer_id": customer["id"]}),
    )
    .await
    .expect_problem(422, "validation.failed");
    app.post(
        &format!("/api/v1/users/{}/calendar-token", b.admin_id),
        &a.token,
        json!({}),
    )
    .await
    .expect_problem(404, "user.not_found");
    // Lists and counts show only A's own.
    for path in [
        "/api/v1/opportunities/count",
        "/api/v1/activities/count",
        "/api/v1/tasks/count",
    ] {
        assert_eq!(
            app.get(path, &a.token).await.expect(200)["count"],
            0,
            "{path}"
        );
    }
    // B's feed token does not open B's feed under A's tenant id, nor A's admin's feed.
    let feed = app
        .post(
            &format!("/api/v1/users/{}/calendar-token", b.admin_id),
            &b.token,
            json!({}),
        )
        .await
        .expect(201);
    let token = feed["token"].as_str().expect("token");
    let other_user = app
        .client
        .get(format!(
            "{}/api/v1/users/{}/calendar.ics?token={token}",
            app.base, a.admin_id
        ))
        .send()
        .await
        .expect("feed");
    assert_eq!(other_user.status(), 401);
}

#[tokio::test]
async fn a_tenant_can_wake_only_its_own_jobs() {
    let app = TestApp::spawn().await;
    let a = app.signup().await;
    let b = app.signup().await;
    let schema_a = app.schema_of(&a).await;
    let mut tx = app.pool.begin().await.expect("tx");
    sqlx::query(&format!("SET LOCAL ROLE \"{schema_a}\""))
        .execute(&mut *tx)
        .await
        .expect("set role");
    // Its own hint: allowed (this is what enqueueing does).
    sqlx::query("SELECT platform_api.wake_jobs($1::uuid, now())")
        .bind(&a.id)
        .execute(&mut *tx)
        .await
        .expect("own tenant");
    tx.commit().await.expect("commit");
    for call in [
        "SELECT platform_api.wake_jobs($1::uuid, now())",
        "SELECT platform_api.settle_jobs($1::uuid)",
    ] {
        let mut tx = app.pool.begin().await.expect("tx");
        sqlx::query(&format!("SET LOCAL ROLE \"{schema_a}\""))
            .execute(&mut *tx)
            .await
            .expect("set role");
        let err = sqlx::query(call)
            .bind(&b.id)
            .execute(&mut *tx)
            .await
            .expect_err("another tenant's hint is refused");
        assert_eq!(
            err.as_database_error()
                .and_then(sqlx::error::DatabaseError::code)
                .as_deref(),
            Some("42501"),
            "{call}: {err}"
        );
    }
    // And the hints table itself is out of a tenant role's reach.
    let mut tx = app.pool.begin().await.expect("tx");
    sqlx::query(&format!("SET LOCAL ROLE \"{schema_a}\""))
        .execute(&mut *tx)
        .await
        .expect("set role");
    let err = sqlx::query("SELECT count(*) FROM platform.job_hints")
        .execute(&mut *tx)
        .await
        .expect_err("no privilege");
    assert_eq!(
        err.as_database_error()
            .and_then(sqlx::error::DatabaseError::code)
            .as_deref(),
        Some("42501")
    );
}
