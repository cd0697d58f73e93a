//! Fair shares of the job worker: one company's schedule rule over thousands of records runs
//! in batches that commit on their own, and another company's firing runs between them.

use crate::helpers::{eventually, Tenant, TestApp};
use serde_json::json;

/// Creates a weekday-morning schedule rule over customers that matches every record and
/// returns its id and the schema its runs are in.
async fn schedule_rule(app: &TestApp, t: &Tenant) -> (String, String) {
    let r = app
        .post(
            "/api/v1/rules",
            &t.token,
            json!({
                "name": "每日巡检",
                "object": "customers",
                "trigger": {"schedule": "0 9 * * 1-5", "timezone": "Asia/Shanghai"},
                "condition": "true",
                "script": "let checked = record.name;",
            }),
        )
        .await
        .expect(201);
    let rule = r["id"].as_str().expect("id").to_owned();
    (rule, app.schema_of(t).await)
}

async fn run_count(app: &TestApp, schema: &str) -> (i64, i64) {
    sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT record_id) FROM \"{schema}\".rule_runs"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("runs")
}

/// Makes the tenant's pending firing due `ago_secs` ago and tells the worker.
async fn due(app: &TestApp, t: &Tenant, schema: &str, ago_secs: i64) {
    let at = chrono::Utc::now() - chrono::Duration::seconds(ago_secs);
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET run_at = $1 WHERE kind = 'rule.cron' AND status = 'pending'"
    ))
    .bind(at)
    .execute(&app.pool)
    .await
    .expect("due");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = $2 WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .bind(at)
        .execute(&app.pool)
        .await
        .expect("hint");
}

#[tokio::test]
async fn a_heavy_schedule_rule_cannot_hold_the_worker_from_another_company() {
    // One tenant at a time, so the order of visits is the worker's choice alone.
    let app = TestApp::spawn_with(|c| c.jobs_concurrency = 1).await;
    let heavy = app.signup().await;
    let light = app.signup().await;
    let (_, heavy_schema) = schedule_rule(&app, &heavy).await;
    let (_, light_schema) = schedule_rule(&app, &light).await;
    const RECORDS: i64 = 2_100;
    sqlx::query(&format!(
        "INSERT INTO \"{heavy_schema}\".customers (id, name) \
         SELECT gen_random_uuid(), '客户' || g FROM generate_series(1, {RECORDS}) g"
    ))
    .execute(&app.pool)
    .await
    .expect("customers");
    sqlx::query(&format!(
        "INSERT INTO \"{light_schema}\".customers (id, name) VALUES (gen_random_uuid(), '小客户')"
    ))
    .execute(&app.pool)
    .await
    .expect("customer");
    // The heavy firing has waited longer, so it is visited first.
    due(&app, &heavy, &heavy_schema, 60).await;
    due(&app, &light, &light_schema, 0).await;

    eventually("the light company's firing", || async {
        (run_count(&app, &light_schema).await.0 == 1).then_some(())
    })
    .await;
    let (heavy_runs, _) = run_count(&app, &heavy_schema).await;
    assert!(
        heavy_runs > 0 && heavy_runs < RECORDS,
        "the light firing ran between the heavy one's batches ({heavy_runs} of {RECORDS} done)"
    );

    // The heavy firing still visits every record exactly once, then queues its next firing.
    let mut done = (0, 0);
    for _ in 0..1200 {
        done = run_count(&app, &heavy_schema).await;
        if done.0 >= RECORDS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done, (RECORDS, RECORDS));
    let batches: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{heavy_schema}\".jobs WHERE kind = 'rule.cron' AND status = 'done'"
    ))
    .fetch_one(&app.pool)
    .await
    .expect("batches");
    assert_eq!(batches, 11, "2,100 records in batches of 200");
    let next: i64 = eventually("the next firing", || async {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{heavy_schema}\".jobs \
             WHERE kind = 'rule.cron' AND status = 'pending' AND run_at > now()"
        ))
        .fetch_one(&app.pool)
        .await
        .expect("next");
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(next, 1);
}
