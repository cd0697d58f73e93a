//! `crm bench records`: a tenant with many customers, served over HTTP, with latencies per operation.

use super::dataset::{self, ADMIN_EMAIL, GIVEN, PASSWORD, SURNAMES};
use super::{ms, percentile};
use crm_core::db::Db;
use crm_tenants::Tenant;
use std::time::{Duration, Instant};

/// Builds the i-th request of an operation: method, path under /api/v1, JSON body.
pub(crate) type RequestMaker<'a> =
    Box<dyn Fn(usize) -> (reqwest::Method, String, Option<serde_json::Value>) + 'a>;

/// Loads `count` customers into a fresh tenant, serves it, and reports HTTP latencies.
pub async fn records(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    count: usize,
    requests: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let bench = dataset::provision(&db, "bench-records", "Records bench").await?;
    let result = records_inner(config, &db, &bench.tenant, bench.admin, count, requests).await;
    dataset::finish(&db, &bench.tenant, keep).await?;
    result
}

async fn records_inner(
    config: &crate::config::Config,
    db: &Db,
    tenant: &Tenant,
    admin: uuid::Uuid,
    count: usize,
    requests: usize,
) -> anyhow::Result<()> {
    use serde_json::json;
    dataset::load_customers(db, tenant, admin, count).await?;
    let sample = dataset::sample_ids(db, tenant, "customers", requests).await?;
    let running = dataset::serve(config, db).await?;
    let base = format!("http://{}/api/v1", running.addr);
    let client = reqwest::Client::new();
    let token = dataset::login(&client, &base, &tenant.slug, ADMIN_EMAIL, PASSWORD).await?;

    let surnames: Vec<char> = SURNAMES.chars().collect();
    let given: Vec<char> = GIVEN.chars().collect();
    let ops: Vec<(&str, RequestMaker<'_>)> = vec![
        (
            "get by id",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!("/customers/{}", sample[i % sample.len().max(1)]),
                    None,
                )
            }),
        ),
        (
            "list, filter level+city, 50",
            Box::new(|i| {
                (reqwest::Method::GET, format!("/customers?filter[level]={}&filter[address.city]=%E4%B8%8A%E6%B5%B7&limit=50", ["A", "B", "C", "D"][i % 4]), None)
            }),
        ),
        (
            "list, tag VIP, sort -updated_at",
            Box::new(|_| {
                (
                    reqwest::Method::GET,
                    "/customers?tag=VIP&sort=-updated_at&limit=50".into(),
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
                        "/customers?q={}&limit=20",
                        form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=Company00<5 digits>",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/customers?q=Company{:07}&limit=20",
                        (i * 5 * 131) % 1_000_000
                    ),
                    None,
                )
            }),
        ),
        (
            "search q=<7 phone digits>",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!("/customers?q=138{:04}&limit=20", (i * 37) % 10_000),
                    None,
                )
            }),
        ),
        (
            "count, all",
            Box::new(|_| (reqwest::Method::GET, "/customers/count".into(), None)),
        ),
        (
            "count, filter level",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/customers/count?filter[level]={}",
                        ["A", "B", "C", "D"][i % 4]
                    ),
                    None,
                )
            }),
        ),
        (
            "count, filter level+city",
            Box::new(|i| {
                (
                    reqwest::Method::GET,
                    format!(
                        "/customers/count?filter[level]={}&filter[address.city]=%E4%B8%8A%E6%B5%B7",
                        ["A", "B", "C", "D"][i % 4]
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
                    "/customers?allow_duplicate=true".into(),
                    Some(json!({"name": format!("压测客户{i}"), "level": "B"})),
                )
            }),
        ),
    ];
    run_ops(&client, &base, &token, &ops, requests).await?;
    running.stop().await?;
    Ok(())
}

/// Sends each operation's requests one after another and prints p50/p95/max per operation.
pub(crate) async fn run_ops(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ops: &[(&str, RequestMaker<'_>)],
    requests: usize,
) -> anyhow::Result<()> {
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "operation (HTTP, sequential)", "requests", "p50 ms", "p95 ms", "max ms"
    );
    for (name, make) in ops {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests {
            let (method, path, body) = make(i);
            let mut req = client
                .request(method, format!("{base}{path}"))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let t0 = Instant::now();
            let resp = req.send().await?;
            let status = resp.status();
            let _ = resp.bytes().await?;
            times.push(t0.elapsed());
            anyhow::ensure!(status.is_success(), "{name}: HTTP {status} for {path}");
        }
        times.sort();
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>9}",
            name,
            requests,
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 95.0)),
            ms(*times.last().unwrap_or(&Duration::ZERO))
        );
    }
    Ok(())
}
