//! `crm bench provision`: how long sign-up's database work takes as tenants accumulate.

use super::dataset::new_tenant;
use super::{ms, percentile};
use crm_core::db::Db;
use crm_tenants::{deprovision_tenant, provision_tenant, Tenant};
use std::time::{Duration, Instant};

/// Provisions `count` tenants sequentially and prints median and p99 per block of 100.
pub async fn provision(db: &Db, count: usize, keep: bool) -> anyhow::Result<()> {
    let hash = crm_core::identity::hash_password(super::dataset::PASSWORD).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&db.pool)
        .await?;
    println!("provisioning {count} tenants (database already holds {existing}); password hashing excluded");
    println!(
        "{:>13} {:>10} {:>10} {:>10}",
        "tenants", "median ms", "p99 ms", "max ms"
    );
    let mut created: Vec<Tenant> = Vec::with_capacity(count);
    let mut block: Vec<Duration> = Vec::with_capacity(100);
    let mut all: Vec<Duration> = Vec::with_capacity(count);
    for i in 0..count {
        let (new, admin) = new_tenant(
            &format!("bench-{}-{i}", &run[..8]),
            &format!("Bench {i}"),
            &hash,
        )?;
        let started = Instant::now();
        let p = provision_tenant(db, new, admin).await?;
        let took = started.elapsed();
        created.push(p.tenant);
        block.push(took);
        all.push(took);
        if block.len() == 100 || i + 1 == count {
            block.sort();
            println!(
                "{:>6}-{:<6} {:>10} {:>10} {:>10}",
                i + 2 - block.len(),
                i + 1,
                ms(percentile(&block, 50.0)),
                ms(percentile(&block, 99.0)),
                ms(*block.last().unwrap_or(&Duration::ZERO))
            );
            block.clear();
        }
    }
    all.sort();
    println!(
        "all {count}: median {} ms, p99 {} ms",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0))
    );
    if !keep {
        println!("removing the {} benchmark tenants…", created.len());
        for t in &created {
            deprovision_tenant(db, t).await?;
        }
    }
    Ok(())
}
