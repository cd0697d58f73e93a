//! `crm bench rules`: rule evaluation in the sandbox, rule-job throughput and event → effect latency.

use super::dataset::new_tenant;
use super::percentile;
use crm_core::db::Db;
use crm_tenants::{deprovision_tenant, provision_tenant};
use std::time::{Duration, Instant};

/// `crm bench rules`: rule evaluation time through the sandbox (compiled, cached), then the
/// end-to-end throughput of rule jobs: `events` customers are created across `tenants`
/// tenants, each with one enabled rule on `customer.created`, with the worker stopped; then
/// the worker starts and the clock runs until every event's run is logged (commit to effect).
pub async fn rules(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    tenants: usize,
    events: usize,
    concurrency: usize,
    keep: bool,
) -> anyhow::Result<()> {
    use crm_records::engine::Access;
    use crm_records::meta::ObjectKey;
    use crm_records::schema::ObjectSchema;
    use crm_records::service::{self, CreateOptions};
    use serde_json::json;
    let engine = crm_workflows::RuleEngine {
        pool: std::sync::Arc::new(crm_workflows::SandboxPool::new(crm_workflows::PoolConfig {
            size: config.rules_sandbox_processes.max(1),
            ..crm_workflows::PoolConfig::default()
        })),
        master: None,
    };
    let condition = r#"record.level == "A" && record.name != """#;
    let script = r#"notify("owner", "新的 A 级客户：" + record.name);"#;

    // 1. Evaluation: one cached rule, sequential round trips.
    let request = |n: usize| crm_workflows::EvalRequest {
        condition: Some(condition.into()),
        script: script.into(),
        record: json!({"id": format!("c{n}"), "name": "艾克米贸易", "level": "A", "city": "上海",
                       "owner_id": "0190f0c0-0000-7000-8000-000000000001", "tags": ["VIP"]}),
        changes: None,
        context: json!({"tenant": "bench", "now": "2026-11-23T09:00:00Z"}),
        tenant: None,
    };
    for n in 0..200 {
        engine.pool.evaluate(&request(n)).await?;
    }
    let mut times = Vec::with_capacity(10_000);
    for n in 0..10_000 {
        let t = Instant::now();
        engine.pool.evaluate(&request(n)).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "rule evaluation (cached, with the sandbox round trip), 10000 runs: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
        mean.as_secs_f64() * 1e6,
        percentile(&times, 50.0).as_secs_f64() * 1e6,
        percentile(&times, 99.0).as_secs_f64() * 1e6
    );

    // 2. Throughput: tenants, rules, events committed with the worker stopped.
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let hash = crm_core::identity::hash_password(super::dataset::PASSWORD).await?;
    println!("provisioning {tenants} tenants with one enabled rule each …");
    let mut created = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let (new, admin) = new_tenant(
            &format!("bench-rules-{run}-{i}"),
            &format!("Rules bench {i}"),
            &hash,
        )?;
        let p = provision_tenant(&db, new, admin).await?;
        let ctx = p.tenant.ctx()?;
        let mut tx = db.tenant_tx(&ctx).await?;
        let admin = crm_core::identity::Principal {
            kind: crm_core::identity::PrincipalKind::User,
            id: p.admin.id,
            name: "Bench".into(),
            session_id: None,
            policy_version: 0,
            metadata_version: 0,
            restriction: None,
            reads: Default::default(),
        };
        let saver = crm_core::authz::Caller::load(&mut tx, &admin).await?;
        crm_workflows::rules::create(
            &mut tx,
            &engine.pool,
            &saver,
            crm_workflows::rules::RuleInput {
                name: "A 级客户通知".into(),
                object: "customers".into(),
                trigger: json!({"event": "customer.created"}),
                condition: Some(condition.into()),
                script: script.into(),
                enabled: true,
                run_as_role: None,
            },
        )
        .await?;
        tx.commit().await?;
        created.push((p.tenant, p.admin.id));
    }
    let result = async {
        println!("committing {events} customer.created events (worker stopped) …");
        let started = Instant::now();
        let per = events.div_ceil(tenants.max(1));
        let actor = crm_core::audit::Actor::system();
        let mut total = 0usize;
        for (tenant, admin) in &created {
            let ctx = tenant.ctx()?;
            let mut left = per.min(events - total);
            while left > 0 {
                let n = left.min(200);
                let mut tx = db.tenant_tx(&ctx).await?;
                let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers).await?;
                let access = Access::platform(&actor, Some(*admin), None);
                for k in 0..n {
                    service::create(
                        &mut tx,
                        &schema,
                        &access,
                        &json!({"name": format!("客户 {total}-{k}"), "level": "A"}),
                        CreateOptions { allow_duplicate: true },
                    )
                    .await?;
                }
                tx.commit().await?;
                left -= n;
                total += n;
            }
            if total >= events {
                break;
            }
        }
        println!("  {total} events in {:.1} s", started.elapsed().as_secs_f64());
        // As pgbench does: start the clock after a checkpoint, so the figure is the worker's
        // and not that of a checkpoint the set-up's writes happened to bring on (best effort:
        // it needs a superuser or pg_checkpoint).
        if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
            println!("  (no checkpoint before the drain: {e})");
        }
        let handlers = crate::wiring::job_handlers(config, None, &engine, None, None, None, None)?;
        let started = Instant::now();
        let worker = crate::worker::Worker::spawn(
            db.clone(),
            handlers,
            crate::worker::WorkerSettings {
                poll: Duration::from_millis(20),
                concurrency,
                batch: 100,
                job_lease: chrono::Duration::minutes(5),
                tenant_lease: chrono::Duration::minutes(2),
            },
        );
        let ctxs: Vec<_> = created
            .iter()
            .map(|(t, _)| t.ctx())
            .collect::<Result<_, _>>()?;
        // Watching must not load the machine it measures: each round asks the platform once
        // which tenants have no job left, and only those tenants' run logs are counted.
        let ids: Vec<uuid::Uuid> = ctxs.iter().map(|c| c.id).collect();
        let mut counted = std::collections::HashMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let idle: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT tenant_id FROM platform.job_hints WHERE tenant_id = ANY($1) \
                   AND next_run_at IS NULL",
            )
            .bind(&ids)
            .fetch_all(pool)
            .await?;
            for id in idle {
                if counted.contains_key(&id) {
                    continue;
                }
                let Some(ctx) = ctxs.iter().find(|c| c.id == id) else {
                    continue;
                };
                let mut tx = db.tenant_tx(ctx).await?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM rule_runs")
                    .fetch_one(tx.conn())
                    .await?;
                tx.commit().await?;
                counted.insert(id, n);
            }
            let done: i64 = counted.values().sum();
            if done as usize >= total {
                break;
            }
            if started.elapsed() > Duration::from_secs(1800) {
                anyhow::bail!("only {done} of {total} runs after 30 minutes");
            }
        }
        let took = started.elapsed();
        worker.stop().await;
        println!(
            "end to end: {total} rule jobs over {} tenants in {:.1} s = {:.0} jobs/s (worker concurrency {concurrency})",
            ctxs.len(),
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
        let (tenant, admin) = created
            .first()
            .ok_or_else(|| anyhow::anyhow!("no benchmark tenant"))?;
        event_to_effect(config, &db, &engine, &tenant.ctx()?, *admin).await
    }
    .await;
    if !keep {
        println!("removing the benchmark tenants …");
        for (t, _) in &created {
            deprovision_tenant(&db, t).await?;
        }
    }
    result
}

/// Event → effect: single customer.created events, one at a time, into an idle worker that
/// polls at the configured interval (so only its wake-up on commit can make it faster); the
/// latency is from the event's transaction to the end of the rule run it caused, both by the
/// database's clock.
async fn event_to_effect(
    config: &crate::config::Config,
    db: &Db,
    engine: &crm_workflows::RuleEngine,
    ctx: &crm_core::db::TenantCtx,
    admin: uuid::Uuid,
) -> anyhow::Result<()> {
    use crm_records::{service, Access, ObjectKey, ObjectSchema};
    const SAMPLES: usize = 50;
    let poll = Duration::from_millis(config.jobs_poll_ms);
    let handlers = crate::wiring::job_handlers(config, None, engine, None, None, None, None)?;
    let worker = crate::worker::Worker::spawn(
        db.clone(),
        handlers,
        crate::worker::WorkerSettings {
            poll,
            concurrency: 1,
            batch: 100,
            job_lease: chrono::Duration::minutes(5),
            tenant_lease: chrono::Duration::minutes(2),
        },
    );
    let actor = crm_core::audit::Actor::system();
    let mut millis = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut tx = db.tenant_tx(ctx).await?;
        let schema = ObjectSchema::load(&mut tx, ObjectKey::Customers).await?;
        let access = Access::platform(&actor, Some(admin), None);
        let body = serde_json::json!({"name": format!("延迟测试 {i}"), "level": "A"});
        let options = service::CreateOptions {
            allow_duplicate: true,
        };
        let record = service::create(&mut tx, &schema, &access, &body, options).await?;
        tx.commit().await?;
        let id: uuid::Uuid = record["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("created customer without an id"))?;
        let waited = Instant::now();
        let ms = loop {
            let mut tx = db.tenant_tx(ctx).await?;
            let ms: Option<f64> = sqlx::query_scalar(
                "SELECT (extract(epoch FROM r.created_at - c.created_at) * 1000 \
                   + r.duration_us / 1000.0)::float8 \
                 FROM rule_runs r JOIN customers c ON c.id = r.record_id WHERE r.record_id = $1",
            )
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            if let Some(ms) = ms {
                break ms;
            }
            if waited.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("no rule run a minute after event {i}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        millis.push(ms);
    }
    worker.stop().await;
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() - 1) as f64 * q).round() as usize];
    println!(
        "event → effect: {SAMPLES} single events into an idle worker (poll {} ms): p50 {:.0} ms, p99 {:.0} ms",
        poll.as_millis(),
        at(0.5),
        at(0.99)
    );
    Ok(())
}
