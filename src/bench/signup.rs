//! `crm bench signup`: sign-up's database work (claim or provision, first administrator,
//! first session) as tenants accumulate, with the warm pool of `--pool-size` entries refilled
//! between sign-ups as the server's background task would (its time is reported apart: it is
//! not what the person signing up waits for). Password hashing is excluded: one hash is made
//! up front.

use super::dataset::new_tenant;
use super::{ms, percentile};
use crm_core::context::RequestMeta;
use crm_core::db::Db;
use crm_tenants::signup::{create_tenant, first_session};
use crm_tenants::{deprovision_tenant, pool, Tenant};
use std::time::{Duration, Instant};

/// Signs `count` companies up one after another and prints p50/p99 per block of 100.
pub async fn signup(db: &Db, count: usize, pool_size: usize, keep: bool) -> anyhow::Result<()> {
    let hash = crm_core::identity::hash_password(super::dataset::PASSWORD).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let meta = RequestMeta {
        request_id: "bench".into(),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("crm bench signup".into()),
        rule_depth: 0,
        import_id: None,
    };
    let ttl = chrono::Duration::hours(1);
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM platform.tenants")
        .fetch_one(&db.pool)
        .await?;
    let started = Instant::now();
    let warmed = pool::fill(db, pool_size).await?;
    println!(
        "signing up {count} companies (database already holds {existing} tenants); pool of {pool_size} \
         ({warmed} entries created in {} ms to warm it); password hashing excluded",
        ms(started.elapsed())
    );
    println!(
        "{:>13} {:>10} {:>10} {:>10} {:>16}",
        "tenants", "p50 ms", "p99 ms", "max ms", "refill p50 ms"
    );
    let mut created: Vec<Tenant> = Vec::with_capacity(count);
    let mut block: Vec<Duration> = Vec::with_capacity(100);
    let mut refills: Vec<Duration> = Vec::with_capacity(100);
    let mut all: Vec<Duration> = Vec::with_capacity(count);
    let mut all_refills: Vec<Duration> = Vec::with_capacity(count);
    for i in 0..count {
        let (new, admin) = new_tenant(
            &format!("bench-{}-{i}", &run[..8]),
            &format!("Bench {i}"),
            &hash,
        )?;
        let started = Instant::now();
        let p = create_tenant(db, new, admin, pool_size > 0).await?;
        first_session(db, &p, ttl, &meta).await?;
        let took = started.elapsed();
        created.push(p.tenant);
        block.push(took);
        all.push(took);
        if pool_size > 0 {
            let started = Instant::now();
            pool::fill(db, pool_size).await?;
            refills.push(started.elapsed());
        }
        if block.len() == 100 || i + 1 == count {
            block.sort();
            refills.sort();
            println!(
                "{:>6}-{:<6} {:>10} {:>10} {:>10} {:>16}",
                i + 2 - block.len(),
                i + 1,
                ms(percentile(&block, 50.0)),
                ms(percentile(&block, 99.0)),
                ms(*block.last().unwrap_or(&Duration::ZERO)),
                ms(percentile(&refills, 50.0)),
            );
            block.clear();
            all_refills.append(&mut refills);
        }
    }
    all.sort();
    all_refills.sort();
    println!(
        "all {count}: sign-up p50 {} ms, p99 {} ms, max {} ms; background refill per entry p50 {} ms, p99 {} ms",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(*all.last().unwrap_or(&Duration::ZERO)),
        ms(percentile(&all_refills, 50.0)),
        ms(percentile(&all_refills, 99.0)),
    );
    if !keep {
        println!(
            "removing the {} benchmark tenants and the pool…",
            created.len()
        );
        for t in &created {
            deprovision_tenant(db, t).await?;
        }
        pool::drain(db).await?;
    }
    Ok(())
}
