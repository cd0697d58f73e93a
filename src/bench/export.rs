//! `crm bench export`: a tenant with N customers, served over HTTP; times the full export of
//! the list as CSV (streamed) and as XLSX (built in the request: `async_rows` is raised for
//! the run), the peak resident memory of the process while each runs, and one customer's
//! printed PDF (time and size).

use super::dataset::{self, ADMIN_EMAIL, PASSWORD};
use crm_core::db::Db;
use std::time::Instant;

/// Loads `count` customers into a fresh tenant, exports them, prints the figures.
pub async fn export(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    count: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let bench = dataset::provision(&db, "bench-export", "Export bench").await?;
    let result = run(config, &db, &bench, count).await;
    dataset::finish(&db, &bench.tenant, keep).await?;
    result
}

async fn run(
    config: &crate::config::Config,
    db: &Db,
    bench: &dataset::BenchTenant,
    count: usize,
) -> anyhow::Result<()> {
    dataset::load_customers(db, &bench.tenant, bench.admin, count).await?;
    let mut config = config.clone();
    config.export.async_rows = u64::MAX;
    config.export.max_rows = config.export.max_rows.max(count as u64);
    let running = dataset::serve(&config, db).await?;
    let base = format!("http://{}/api/v1", running.addr);
    let client = reqwest::Client::new();
    let token = dataset::login(&client, &base, &bench.tenant.slug, ADMIN_EMAIL, PASSWORD).await?;
    println!("export of {count} customers (every field), over HTTP:");
    for format in ["csv", "xlsx"] {
        let before = peak_rss_kb();
        let started = Instant::now();
        let mut resp = client
            .get(format!("{base}/customers/export?format={format}"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()?;
        let mut bytes = 0usize;
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  {format:4}  {secs:6.2} s  {:>8.0} rows/s  {:>6.1} MB  peak RSS {} MB (was {} MB)",
            count as f64 / secs,
            bytes as f64 / 1e6,
            peak_rss_kb() / 1024,
            before / 1024,
        );
    }
    let id = dataset::sample_ids(db, &bench.tenant, "customers", 1).await?;
    if let Some(id) = id.first() {
        let started = Instant::now();
        let resp = client
            .get(format!("{base}/customers/{id}/pdf"))
            .bearer_auth(&token)
            .send()
            .await?;
        let status = resp.status();
        let pdf = resp.bytes().await?;
        println!(
            "  pdf   {:6.0} ms  {} KB  (one customer, status {status}; the first PDF reads the font)",
            started.elapsed().as_secs_f64() * 1000.0,
            pdf.len() / 1024
        );
        let started = Instant::now();
        let pdf = client
            .get(format!("{base}/customers/{id}/pdf"))
            .bearer_auth(&token)
            .send()
            .await?
            .bytes()
            .await?;
        println!(
            "  pdf   {:6.0} ms  {} KB  (again, font in memory)",
            started.elapsed().as_secs_f64() * 1000.0,
            pdf.len() / 1024
        );
    }
    running.stop().await?;
    Ok(())
}

/// The process's peak resident memory so far (`VmHWM`), in KiB; 0 where /proc has none.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
