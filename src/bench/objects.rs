//! `crm bench records --object policies`: the records benchmark on a custom object, so a
//! tenant's own objects can be held to the customers' figures. It also times creating an
//! object (the DDL of its table and indexes) over HTTP.

use super::dataset::{self, ADMIN_EMAIL, GIVEN, PASSWORD, SURNAMES};
use super::records::{run_ops, RequestMaker};
use super::{ms, percentile};
use crm_core::db::Db;
use crm_tenants::Tenant;
use serde_json::json;
use std::time::{Duration, Instant};

/// How many throwaway objects the DDL timing creates (and deletes).
const DDL_PROBES: usize = 20;

/// Creates `policies` in a fresh tenant, loads `count` policies, serves the tenant and reports
/// HTTP latencies of the same kinds of operations as the customers run.
pub async fn objects(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    count: usize,
    requests: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let bench = dataset::provision(&db, "bench-objects", "Objects bench").await?;
    let result = inner(config, &db, &bench.tenant, bench.admin, count, requests).await;
    dataset::finish(&db, &bench.tenant, keep).await?;
    result
}

async fn send(req: reqwest::RequestBuilder, token: &str) -> anyhow::Result<serde_json::Value> {
    let resp = req.bearer_auth(token).send().await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    anyhow::ensure!(status.is_success(), "HTTP {status}: {body}");
    Ok(body)
}

async fn inner(
    config: &crate::config::Config,
    db: &Db,
    tenant: &Tenant,
    admin: uuid::Uuid,
    count: usize,
    requests: usize,
) -> anyhow::Result<()> {
    let running = dataset::serve(config, db).await?;
    let base = format!("http://{}/api/v1", running.addr);
    let client = reqwest::Client::new();
    let token = dataset::login(&client, &base, &tenant.slug, ADMIN_EMAIL, PASSWORD).await?;

    // Object creation: catalogue row, table, indexes, permissions, one transaction.
    let mut times = Vec::with_capacity(DDL_PROBES);
    for i in 0..DDL_PROBES {
        let t0 = Instant::now();
        send(
            client.post(format!("{base}/objects")).json(&json!({
                "key": format!("probes_{i}"), "name": "Probe", "name_plural": "Probes"})),
            &token,
        )
        .await?;
        times.push(t0.elapsed());
        send(client.delete(format!("{base}/objects/probes_{i}")), &token).await?;
    }
    times.sort();
    println!(
        "object create (DDL), {DDL_PROBES} times: p50 {} ms, p95 {} ms, max {} ms",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 95.0)),
        ms(*times.last().unwrap_or(&Duration::ZERO))
    );

    send(
        client.post(format!("{base}/objects")).json(&json!({
            "key": "policies", "name": "Policy", "name_plural": "Policies",
            "labels": {"zh-CN": "保单"}})),
        &token,
    )
    .await?;
    for field in [
        json!({"key": "policy_no", "label": "保单号", "type": "text", "unique": true}),
        // Filter fields indexed, as a company would for the fields its lists filter on; the
        // city is filtered, not searched (no trigram index).
        json!({"key": "product", "label": "险种", "type": "select", "indexed": true,
               "options": ["life", "health", "auto", "home"]}),
        json!({"key": "city", "label": "城市", "type": "text", "indexed": true,
               "searchable": false}),
        json!({"key": "premium", "label": "保费", "type": "currency"}),
    ] {
        send(
            client
                .post(format!("{base}/objects/policies/fields"))
                .json(&field),
            &token,
        )
        .await?;
    }
    load(db, tenant, admin, count).await?;
    let sample = dataset::sample_ids(db, tenant, "o_policies", requests).await?;

    let surnames: Vec<char> = SURNAMES.chars().collect();
    let given: Vec<char> = GIVEN.chars().collect();
    let ops: Vec<(&str, RequestMaker<'_>)> = vec![
        (
            "get by id",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!("/records/policies/{}", sample[i % sample.len().max(1)]),
                    None,
                )
            }),
        ),
        (
            "list, filter product+city, 50",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/records/policies?filter[product]={}&filter[city]=%E4%B8%8A%E6%B5%B7&limit=50",
                        ["life", "health", "auto", "home"][i % 4]
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=<2-char Chinese name>",
            Box::new(|i| {
                let q: String = [surnames[i % surnames.len()], given[(i * 7) % given.len()]]
                    .iter()
                    .collect();
                (
                    reqwest::Method::GET,
                    format!(
                        "/records/policies?q={}&limit=20",
                        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=P-<8 digits>",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/records/policies?q=P-{:08}&limit=20",
                        (i * 5 * 131) % count.max(1)
                    ),
                    None,
                )
            }),
        ),
        (
            "count, filter product",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/records/policies/count?filter[product]={}",
                        ["life", "health", "auto", "home"][i % 4]
                    ),
                    None,
                )
            }),
        ),
        (
            "create",
            Box::new(|i| {
                (
                    reqwest::Method::POST,
                    "/records/policies".into(),
                    Some(
                        json!({"name": format!("压测保单{i}"), "policy_no": format!("N-{i}"),
                                "product": "life", "city": "上海"}),
                    ),
                )
            }),
        ),
    ];
    run_ops(&client, &base, &token, &ops, requests).await?;
    running.stop().await?;
    Ok(())
}

/// Bulk-loads `count` policies the way an import would: secondary indexes off, rows in by
/// batches, indexes on, ANALYZE, VACUUM. Names like the customers run's; product by `i % 4`,
/// city by `i % 5`, policy number `P-<8 digits of i>`.
async fn load(db: &Db, tenant: &Tenant, admin: uuid::Uuid, count: usize) -> anyhow::Result<()> {
    let ctx = tenant.ctx()?;
    println!("loading {count} policies into {} …", tenant.slug);
    let started = Instant::now();
    let indexes = dataset::drop_indexes(db, tenant, "o_policies").await?;
    let batch = 100_000usize;
    let mut done = 0usize;
    while done < count {
        let n = batch.min(count - done);
        let mut tx = db.tenant_tx(&ctx).await?;
        sqlx::query(
            "INSERT INTO o_policies (id, name, owner_id, tags, name_grams, created_by, \
               cf_policy_no, cf_product, cf_city, cf_premium) \
             SELECT gen_random_uuid(), n, $3, \
                    CASE WHEN i % 10 = 0 THEN ARRAY['VIP'] ELSE ARRAY[]::text[] END, \
                    (SELECT array_agg(DISTINCT g) FROM ( \
                        SELECT substr(lower(n), k, 1) AS g FROM generate_series(1, char_length(n)) k \
                        UNION ALL SELECT substr(lower(n), k, 2) FROM generate_series(1, char_length(n) - 1) k) s), \
                    $3, 'P-' || lpad(i::text, 8, '0'), (ARRAY['life','health','auto','home'])[1 + i % 4], \
                    (ARRAY['北京','上海','深圳','成都','杭州'])[1 + i % 5], 100 + (i % 5000) \
             FROM (SELECT i, substr($4, (1 + i % char_length($4))::int, 1) || substr($5, (1 + (i / 97) % char_length($5))::int, 1) \
                            || CASE WHEN i % 2 = 0 THEN substr($5, (1 + (i / 7) % char_length($5))::int, 1) ELSE '' END AS n \
                   FROM generate_series($1::bigint, $2::bigint) i) src",
        )
        .bind(done as i64)
        .bind((done + n - 1) as i64)
        .bind(admin)
        .bind(SURNAMES)
        .bind(GIVEN)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        done += n;
        println!("  {done} rows ({:.0} s)", started.elapsed().as_secs_f64());
    }
    dataset::restore_indexes(db, tenant, "o_policies", &indexes).await?;
    println!(
        "loaded and indexed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
