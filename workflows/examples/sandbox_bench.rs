//! Round trip of evaluating one cached, one-condition rule through the sandbox pool.
//!
//! `cargo run --release -p crm-workflows --example sandbox_bench` prints the mean, median and
//! p99 of 10,000 sequential evaluations on a pool of 2 (target: under 200 µs per rule), then
//! the throughput of the same evaluations issued from 2 tasks at once.

use std::sync::Arc;
use std::time::Instant;

use crm_workflows::{EvalRequest, PoolConfig, SandboxPool};
use serde_json::json;

const RUNS: usize = 10_000;

fn rule(n: usize) -> EvalRequest {
    EvalRequest {
        condition: Some(r#"record.level == "A" && record.days_silent >= 7"#.into()),
        script: r#"create_task(#{title: "Follow up " + record.name, due_in: "1d", assignee: record.owner_id})"#
            .into(),
        record: json!({
            "id": format!("c{n}"), "name": "Acme Trading", "level": "A", "days_silent": 9,
            "owner_id": "0190f0c0-0000-7000-8000-000000000001", "amount": 1250.5,
            "tags": ["key-account", "east"], "city": "Shanghai",
        }),
        changes: None,
        context: json!({"tenant": "acme", "rule_id": "r1", "now": "2025-03-01T09:00:00Z"}),
        tenant: None,
    }
}

#[tokio::main]
async fn main() {
    let pool = Arc::new(SandboxPool::new(PoolConfig::default()));
    // Warm up: start both processes and compile the rule in each.
    for n in 0..200 {
        pool.evaluate(&rule(n)).await.expect("the rule evaluates");
    }

    let mut times = Vec::with_capacity(RUNS);
    let started = Instant::now();
    for n in 0..RUNS {
        let t = Instant::now();
        let out = pool.evaluate(&rule(n)).await.expect("the rule evaluates");
        times.push(t.elapsed());
        assert!(out.matched && out.effects.len() == 1);
    }
    let total = started.elapsed();
    times.sort();
    let mean = total / RUNS as u32;
    let pct = |p: f64| times[((RUNS as f64 * p) as usize).min(RUNS - 1)];
    println!("sequential: {RUNS} evaluations of a cached 1-condition rule on a pool of 2");
    println!(
        "  mean {:?}  p50 {:?}  p99 {:?}  max {:?}",
        mean,
        pct(0.50),
        pct(0.99),
        times[RUNS - 1]
    );

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..2 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for n in 0..RUNS / 2 {
                pool.evaluate(&rule(worker * RUNS + n))
                    .await
                    .expect("the rule evaluates");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let total = started.elapsed();
    println!(
        "2 concurrent callers: {:.0} evaluations/s ({:?} per evaluation)",
        RUNS as f64 / total.as_secs_f64(),
        total / RUNS as u32
    );
    let stats = pool.stats();
    println!(
        "processes: spawned {}, killed {}, died {}",
        stats.spawned, stats.killed, stats.died
    );
}
