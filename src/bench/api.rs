//! `crm bench api`: the staff API measured against the SQL it stands for, in one run. For each
//! operation (get by id, filtered list, search, create, update) K connections drive the API
//! over HTTP for S seconds, then K pooled database connections run the same work as raw SQL,
//! one transaction per call ([`super::raw`]); the table shows both throughputs, their
//! latencies and API ÷ raw. The server is the real one, started in this process on a freshly
//! loaded tenant, or an external one (`--url`, with `DATABASE_URL` naming its database).

use super::dataset::{self, ADMIN_EMAIL, PASSWORD};
use super::load::{drive, Measured};
use super::ms;
use super::raw::RawSql;
use super::workload::{Operation, Workload, LIST_CITY, PAGE};
use crate::config::Config;
use anyhow::Context;
use crm_core::db::Db;
use crm_tenants::Tenant;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Ids sampled for reads and updates.
const SAMPLE: usize = 1000;

/// What `crm bench api` was asked to do (its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiBench {
    /// Customers loaded into the fresh tenant (not used with --url).
    #[arg(long, default_value_t = 5000)]
    pub customers: usize,
    /// Concurrent HTTP connections, and connections of the raw side's pool.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Measured seconds per operation and side.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// An external server (e.g. http://127.0.0.1:8080) instead of one started here.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: a session token (tcs_…) or API key (tck_…) of the tenant to measure.
    #[arg(long, env = "CRM_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --url and no --token: log in to this tenant (slug)…
    #[arg(long)]
    pub tenant: Option<String>,
    /// …as this user…
    #[arg(long)]
    pub email: Option<String>,
    /// …with this password.
    #[arg(long, env = "CRM_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Keep the fresh tenant afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Runs the benchmark and prints its table.
pub async fn api(config: &Config, pool: &sqlx::PgPool, bench: &ApiBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        bench.connections > 0 && bench.seconds > 0,
        "--connections and --seconds must be at least 1"
    );
    let db = Db::new(pool.clone(), config.tenant_isolation);
    match &bench.url {
        Some(url) => external(config, &db, bench, url).await,
        None => in_process(config, &db, bench).await,
    }
}

/// The HTTP side's view of the server.
struct Target {
    client: reqwest::Client,
    /// `…/api/v1`.
    base: String,
    token: String,
    tenant: Tenant,
    /// About how many customers the tenant has.
    customers: usize,
    /// Where the server runs, for the report.
    server: String,
}

fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(connections)
        .build()?)
}

async fn in_process(config: &Config, db: &Db, bench: &ApiBench) -> anyhow::Result<()> {
    let fresh = dataset::provision(db, "bench-api", "API bench").await?;
    let result = async {
        dataset::load_customers(db, &fresh.tenant, fresh.admin, bench.customers).await?;
        let running = dataset::serve(config, db).await?;
        let base = format!("http://{}/api/v1", running.addr);
        let outcome = async {
            let client = http_client(bench.connections)?;
            let token =
                dataset::login(&client, &base, &fresh.tenant.slug, ADMIN_EMAIL, PASSWORD).await?;
            let target = Target {
                client,
                base,
                token,
                tenant: fresh.tenant.clone(),
                customers: bench.customers,
                server: format!(
                    "in this process (database pool of {} connections)",
                    config.db_max_connections
                ),
            };
            measure(config, db, bench, target).await
        }
        .await;
        running.stop().await?;
        outcome
    }
    .await;
    dataset::finish(db, &fresh.tenant, bench.keep).await?;
    result
}

async fn external(config: &Config, db: &Db, bench: &ApiBench, url: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.database_url.is_some(),
        "with --url, set DATABASE_URL to that server's database: the raw side runs there"
    );
    let base = format!("{}/api/v1", url.trim_end_matches('/'));
    let client = http_client(bench.connections)?;
    let token = match (&bench.token, &bench.tenant, &bench.email, &bench.password) {
        (Some(token), ..) => token.clone(),
        (None, Some(tenant), Some(email), Some(password)) => {
            dataset::login(&client, &base, tenant, email, password).await?
        }
        _ => anyhow::bail!(
            "with --url, give --token (a session token or API key), or --tenant, --email and --password to log in"
        ),
    };
    let parsed = crm_core::identity::tokens::parse(&token)
        .ok_or_else(|| anyhow::anyhow!("--token is not a TC CRM token (tcs_… or tck_…)"))?;
    let tenant = crm_tenants::registry::by_id(&db.pool, parsed.tenant_id)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the token's tenant {} is not in DATABASE_URL's database; point DATABASE_URL at the server's database",
                parsed.tenant_id
            )
        })?;
    let customers: i64 = {
        let mut tx = db.tenant_tx(&tenant.ctx()?).await?;
        let n = sqlx::query_scalar("SELECT count(*) FROM customers WHERE deleted_at IS NULL")
            .fetch_one(tx.conn())
            .await?;
        tx.commit().await?;
        n
    };
    let target = Target {
        client,
        server: format!("at {url}"),
        base,
        token,
        tenant,
        customers: usize::try_from(customers).unwrap_or_default(),
    };
    measure(config, db, bench, target).await
}

/// Both sides of every operation, one row each as it completes.
async fn measure(config: &Config, db: &Db, bench: &ApiBench, target: Target) -> anyhow::Result<()> {
    let k = bench.connections;
    let ids = dataset::sample_ids(db, &target.tenant, "customers", SAMPLE).await?;
    let workload = Arc::new(Workload::new(ids, k, target.customers)?);
    let raw_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(k)?)
        .min_connections(u32::try_from(k)?)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with((*db.pool.connect_options()).clone())
        .await
        .context("opening the raw side's connection pool")?;
    let raw_db = Db::new(raw_pool.clone(), config.tenant_isolation)
        .with_statement_timeout(config.request_statement_timeout_ms);
    let raw = Arc::new(
        RawSql::new(
            raw_db,
            target.tenant.ctx()?,
            &target.token,
            chrono::Duration::minutes(config.session_ttl_minutes),
            chrono::Duration::hours(config.session_max_hours),
        )
        .await?,
    );
    let http = Arc::new(target);
    let duration = Duration::from_secs(bench.seconds);

    println!(
        "crm bench api: tenant {} with about {} customers; {k} connections; {} s per operation and side",
        http.tenant.slug, http.customers, bench.seconds
    );
    println!(
        "  API: {k} HTTP/1.1 keep-alive connections to the server {}",
        http.server
    );
    println!("  raw: a pool of {k} connections to the same database, one transaction per call");
    if cfg!(debug_assertions) {
        println!("  WARNING: debug build: figures are not representative (build with --release)");
    } else {
        println!("  release build");
    }
    println!(
        "| {:<19} | {:>9} | {:>10} | {:>10} | {:>9} | {:>10} | {:>10} | {:>9} |",
        "operation",
        "API req/s",
        "API p50 ms",
        "API p99 ms",
        "raw TPS",
        "raw p50 ms",
        "raw p99 ms",
        "API ÷ raw"
    );
    println!(
        "|{:-<21}|{:->10}:|{:->11}:|{:->11}:|{:->10}:|{:->11}:|{:->11}:|{:->10}:|",
        "", "", "", "", "", "", "", ""
    );
    for op in Operation::ALL {
        let api = {
            let (http, workload) = (Arc::clone(&http), Arc::clone(&workload));
            drive(k, duration, move |worker, n| {
                let (http, workload) = (Arc::clone(&http), Arc::clone(&workload));
                async move { call_api(&http, &workload, op, worker, n).await }
            })
            .await
            .with_context(|| format!("{} over HTTP", op.label()))?
        };
        let sql = {
            let (raw, workload) = (Arc::clone(&raw), Arc::clone(&workload));
            drive(k, duration, move |worker, n| {
                let (raw, workload) = (Arc::clone(&raw), Arc::clone(&workload));
                async move { call_raw(&raw, &workload, op, worker, n).await }
            })
            .await
            .with_context(|| format!("{} as raw SQL", op.label()))?
        };
        print_row(op, &api, &sql);
    }
    raw_pool.close().await;
    Ok(())
}

fn print_row(op: Operation, api: &Measured, raw: &Measured) {
    let ratio = if raw.rate() > 0.0 {
        format!("{:.2}", api.rate() / raw.rate())
    } else {
        "-".into()
    };
    println!(
        "| {:<19} | {:>9.0} | {:>10} | {:>10} | {:>9.0} | {:>10} | {:>10} | {:>9} |",
        op.label(),
        api.rate(),
        ms(api.p50()),
        ms(api.p99()),
        raw.rate(),
        ms(raw.p50()),
        ms(raw.p99()),
        ratio
    );
}

/// One request of `op`; anything but a 2xx fails the run.
async fn call_api(
    http: &Target,
    workload: &Workload,
    op: Operation,
    worker: usize,
    n: usize,
) -> anyhow::Result<()> {
    let customers = format!("{}/customers", http.base);
    let page = PAGE.to_string();
    let request = match op {
        Operation::GetById => http
            .client
            .get(format!("{customers}/{}", workload.record(worker, n))),
        Operation::FilteredList => http.client.get(&customers).query(&[
            ("filter[level]", Workload::level(n)),
            ("filter[address.city]", LIST_CITY),
            ("limit", &page),
        ]),
        Operation::Search => http
            .client
            .get(&customers)
            .query(&[("q", workload.search_text(n).as_str()), ("limit", &page)]),
        Operation::Create => {
            let new = workload.new_customer();
            http.client.post(&customers).json(&json!({
                "name": new.name, "level": new.level, "phone": new.phone, "email": new.email,
            }))
        }
        Operation::Update => http
            .client
            .patch(format!("{customers}/{}", workload.own_record(worker, n)))
            .json(&json!({ "industry": workload.new_industry() })),
    };
    let response = request.bearer_auth(&http.token).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "HTTP {status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(400)])
    );
    Ok(())
}

/// The same call as raw SQL.
async fn call_raw(
    raw: &RawSql,
    workload: &Workload,
    op: Operation,
    worker: usize,
    n: usize,
) -> anyhow::Result<()> {
    match op {
        Operation::GetById => raw.get(workload.record(worker, n)).await,
        Operation::FilteredList => raw.list(Workload::level(n)).await,
        Operation::Search => raw.search(&workload.search_text(n)).await,
        Operation::Create => raw.create(&workload.new_customer()).await,
        Operation::Update => {
            raw.update(workload.own_record(worker, n), &workload.new_industry())
                .await
        }
    }
}
