//! `crm bench graphql`: the cost of a tenant's GraphQL schema and GraphQL's throughput
//! against REST. A fresh tenant gets `--fields` custom fields on every built-in object (text,
//! number, money, date, select, …) and N customers; then the schema is built again and again
//! (cold: object metadata read too; warm: from cached metadata), 50 built schemas are held to
//! measure resident memory per schema, and the same page of customers is fetched over HTTP as
//! a GraphQL connection and as a REST list with K connections for S seconds each.

use super::dataset::{self, ADMIN_EMAIL, PASSWORD};
use super::load::drive;
use super::{ms, percentile};
use crate::config::Config;
use crm_core::db::Db;
use crm_records::ObjectKey;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct GraphqlBench {
    /// Customers loaded into the fresh tenant.
    #[arg(long, default_value_t = 5000)]
    pub customers: usize,
    /// Custom fields added to each built-in object.
    #[arg(long, default_value_t = 50)]
    pub fields: usize,
    /// Schema builds timed (each way).
    #[arg(long, default_value_t = 30)]
    pub builds: usize,
    /// Concurrent HTTP connections for the throughput comparison.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Measured seconds per side.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long)]
    pub keep: bool,
}

/// The type of the i-th custom field (every type a field can have, in turn).
fn field_body(i: usize) -> serde_json::Value {
    let key = format!("f{i:03}");
    let label = format!("字段 {i}");
    match i % 8 {
        0 => json!({"key": key, "label": label, "type": "text"}),
        1 => json!({"key": key, "label": label, "type": "integer"}),
        2 => json!({"key": key, "label": label, "type": "currency"}),
        3 => json!({"key": key, "label": label, "type": "date"}),
        4 => json!({"key": key, "label": label, "type": "select",
                    "options": ["gold", "silver", "bronze", "普通", "vip"]}),
        5 => json!({"key": key, "label": label, "type": "multi_select",
                    "options": ["a", "b", "c"]}),
        6 => json!({"key": key, "label": label, "type": "boolean"}),
        _ => json!({"key": key, "label": label, "type": "datetime"}),
    }
}

pub async fn graphql(
    config: &Config,
    pool: &sqlx::PgPool,
    bench: &GraphqlBench,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let fresh = dataset::provision(&db, "bench-graphql", "GraphQL bench").await?;
    let result = async {
        dataset::load_customers(&db, &fresh.tenant, fresh.admin, bench.customers).await?;
        let running = dataset::serve(config, &db).await?;
        let outcome = async {
            let api = format!("http://{}/api/v1", running.addr);
            let client = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(bench.connections)
                .build()?;
            let token =
                dataset::login(&client, &api, &fresh.tenant.slug, ADMIN_EMAIL, PASSWORD).await?;
            let started = Instant::now();
            for object in ObjectKey::ALL {
                for i in 0..bench.fields {
                    let answer = client
                        .post(format!("{api}/objects/{object}/fields"))
                        .bearer_auth(&token)
                        .json(&field_body(i))
                        .send()
                        .await?;
                    anyhow::ensure!(
                        answer.status().is_success(),
                        "adding field {i} to {object}: {}",
                        answer.text().await?
                    );
                }
            }
            println!(
                "crm bench graphql: tenant {} with {} customers and {} custom fields on each of the {} built-in objects (added in {:.1} s)",
                fresh.tenant.slug,
                bench.customers,
                bench.fields,
                ObjectKey::ALL.len(),
                started.elapsed().as_secs_f64()
            );
            builds(config, &db, &fresh.tenant, bench.builds).await?;
            throughput(&client, &running, &token, bench).await
        }
        .await;
        running.stop().await?;
        outcome
    }
    .await;
    dataset::finish(&db, &fresh.tenant, bench.keep).await?;
    result
}

fn gateway(records: &Arc<crm_records::SchemaCache>) -> crm_graphql::Gateway {
    crm_graphql::Gateway::new(
        1,
        records.clone(),
        None,
        crm_graphql::Limits::default(),
        Arc::new(|e| json!({"detail": e.to_string()})),
    )
}

/// Build time (cold and warm metadata) and resident memory per built schema.
async fn builds(
    config: &Config,
    db: &Db,
    tenant: &crm_tenants::Tenant,
    n: usize,
) -> anyhow::Result<()> {
    let n = n.max(1);
    let mut tx = db.tenant_tx(&tenant.ctx()?).await?;
    let mut cold = Vec::with_capacity(n);
    for _ in 0..n {
        let records = Arc::new(crm_records::SchemaCache::new(1));
        let built = gateway(&records).schema_for(&mut tx, 1).await?;
        cold.push(built.build_time);
    }
    let records = Arc::new(crm_records::SchemaCache::new(1));
    gateway(&records).schema_for(&mut tx, 1).await?;
    let mut warm = Vec::with_capacity(n);
    let (mut types, mut fields) = (0, 0);
    for _ in 0..n {
        let built = gateway(&records).schema_for(&mut tx, 1).await?;
        warm.push(built.build_time);
        types = built.model.objects.len();
        fields = built
            .model
            .objects
            .iter()
            .map(|o| o.all_fields().count())
            .sum();
    }
    cold.sort();
    warm.sort();
    println!("schema build ({types} objects, {fields} fields in all), {n} builds each:");
    println!(
        "  cold (metadata read from the database, then built): p50 {} ms, p99 {} ms",
        ms(percentile(&cold, 50.0)),
        ms(percentile(&cold, 99.0))
    );
    println!(
        "  warm (metadata cached, the GraphQL schema built):    p50 {} ms, p99 {} ms",
        ms(percentile(&warm, 50.0)),
        ms(percentile(&warm, 99.0))
    );
    // Resident memory of 50 schemas held at once (the object metadata they share is cached
    // once, as in the server).
    const HELD: usize = 50;
    let pid = std::process::id();
    // Freed memory the allocator still holds (the builds' temporaries) is returned first, so
    // the difference is what the schemas keep.
    trim();
    let before = super::tenants::memory_kib(pid, "VmRSS:")?;
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        held.push(gateway(&records).schema_for(&mut tx, 1).await?);
    }
    trim();
    let after = super::tenants::memory_kib(pid, "VmRSS:")?;
    tx.commit().await?;
    println!(
        "  memory: {HELD} schemas held add {:.1} MB resident: {:.0} KB per cached schema (the cache estimates {} KB; bounds: [graphql] schema_cache_tenants = {}, schema_cache_mb = {})",
        after.saturating_sub(before) as f64 / 1024.0,
        after.saturating_sub(before) as f64 / HELD as f64,
        held.first().map_or(0, |s| s.weight_kb),
        config.graphql.schema_cache_tenants,
        config.graphql.schema_cache_mb
    );
    drop(held);
    Ok(())
}

/// Gives glibc's free memory back to the system (all arenas).
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// The same page of customers over GraphQL and REST.
async fn throughput(
    client: &reqwest::Client,
    running: &crate::server::Running,
    token: &str,
    bench: &GraphqlBench,
) -> anyhow::Result<()> {
    let base = format!("http://{}", running.addr);
    let k = bench.connections;
    let duration = Duration::from_secs(bench.seconds);
    let query = json!({"query": "{ customers(first: 20, filter: {level: {eq: A}}) { nodes { id name phone level address { city } ownerId createdAt updatedAt version } pageInfo { hasNextPage endCursor } } }"});
    let (c, b, t) = (client.clone(), base.clone(), token.to_owned());
    let gql = drive(k, duration, move |_, _| {
        let (c, b, t, q) = (c.clone(), b.clone(), t.clone(), query.clone());
        async move {
            let answer: serde_json::Value = c
                .post(format!("{b}/graphql"))
                .bearer_auth(&t)
                .json(&q)
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(answer.get("errors").is_none(), "GraphQL errors: {answer}");
            Ok(())
        }
    })
    .await?;
    let (c, b, t) = (client.clone(), base, token.to_owned());
    let rest = drive(k, duration, move |_, _| {
        let (c, b, t) = (c.clone(), b.clone(), t.clone());
        async move {
            let answer = c
                .get(format!("{b}/api/v1/customers?limit=20&filter[level]=A"))
                .bearer_auth(&t)
                .send()
                .await?;
            anyhow::ensure!(answer.status().is_success(), "REST {}", answer.status());
            answer.bytes().await?;
            Ok(())
        }
    })
    .await?;
    println!(
        "customers, 20 per page filtered by level, {k} connections, {} s each:",
        bench.seconds
    );
    println!(
        "  GraphQL connection: {:.0} req/s (p50 {} ms, p99 {} ms)",
        gql.rate(),
        ms(gql.p50()),
        ms(gql.p99())
    );
    println!(
        "  REST list:          {:.0} req/s (p50 {} ms, p99 {} ms)",
        rest.rate(),
        ms(rest.p50()),
        ms(rest.p99())
    );
    println!(
        "  GraphQL ÷ REST: {:.2}",
        gql.rate() / rest.rate().max(f64::MIN_POSITIVE)
    );
    Ok(())
}
