//! `crm bench plugins`: what running a plugin costs the host, without a database. A
//! component (by default the probe fixture, whose plain events make one host call, a log
//! line) is compiled from scratch, then loaded again by a fresh runtime from the on-disk
//! compile cache (a restart), then called `calls` times one after another — a fresh store
//! and instance for every call, as the server does — and by two tasks at once.

use super::percentile;
use anyhow::anyhow;
use crm_core::authz::Grants;
use crm_plugins::{CallEnv, EventIn, HostState, InstallCtx, Limits, Runtime};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env(limits: Limits) -> Arc<CallEnv> {
    Arc::new(CallEnv {
        install: InstallCtx {
            id: uuid::Uuid::nil(),
            name: "bench".into(),
            grants: Grants::of_role(Vec::new(), &BTreeMap::new()),
            config: serde_json::json!({}),
            secrets: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            limits,
        },
        tenant: None,
        outbound: crm_core::outbound::Outbound::new(Default::default(), "TC-CRM-Bench/1"),
        request_id: "bench".into(),
        offline_kv: Mutex::new(BTreeMap::new()),
    })
}

fn event(i: usize) -> EventIn {
    EventIn {
        id: i.to_string(),
        kind: "customers.updated".into(),
        object: "customers".into(),
        record_id: "00000000-0000-0000-0000-000000000001".into(),
        occurred_at: "2026-12-07T00:00:00Z".into(),
        data: r#"{"changed":["level"],"record":{"name":"张三","level":"A"}}"#.into(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn calls(
    runtime: &Runtime,
    loaded: &crm_plugins::Loaded,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let limits = Limits::default();
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let (r, _) = runtime
            .on_event(loaded, HostState::for_install(env(limits)), event(i))
            .await;
        times.push(started.elapsed());
        // An error the plugin returns (a refused host call offline, say) is still a whole
        // call; a trap or a limit is not what is measured here.
        if let Err(e) = r {
            if !matches!(e, crm_plugins::CallError::Plugin { .. }) {
                return Err(anyhow!("call {i} failed: {} {}", e.code(), e.message()));
            }
        }
    }
    times.sort();
    Ok(times)
}

/// Runs the benchmark and prints its figures.
pub async fn plugins(data_dir: &Path, file: Option<PathBuf>, n: usize) -> anyhow::Result<()> {
    let file = file.unwrap_or_else(|| PathBuf::from("plugins/tests/fixtures/probe.wasm"));
    let bytes = std::fs::read(&file).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let sha = crm_plugins::runtime::sha256_hex(&bytes);
    let cache = data_dir.join(format!("bench-plugins-{}", uuid::Uuid::new_v4().simple()));
    println!("component: {} ({} bytes)", file.display(), bytes.len());

    let runtime = Runtime::new(Some(cache.clone()), 8, 256).map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    let source = bytes.clone();
    runtime
        .load(&sha, async move { Ok(source) })
        .await
        .map_err(|e| anyhow!(e))?;
    println!(
        "compile (Cranelift, first upload):      {:>10.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // A restart: a new engine finds the precompiled artifact on disk.
    drop(runtime);
    let mut cold = Vec::new();
    let mut runtime = None;
    for _ in 0..5 {
        let fresh = Runtime::new(Some(cache.clone()), 8, 256).map_err(|e| anyhow!("{e}"))?;
        let started = Instant::now();
        fresh
            .load(&sha, async {
                Err("the disk cache should have it".to_owned())
            })
            .await
            .map_err(|e| anyhow!(e))?;
        cold.push(started.elapsed());
        runtime = Some(fresh);
    }
    cold.sort();
    let runtime = runtime.ok_or_else(|| anyhow!("no runtime"))?;
    println!(
        "cold start from the compile cache (p50): {:>10.1} ms",
        cold[2].as_secs_f64() * 1e3
    );
    let loaded = runtime
        .load(&sha, async { Err("loaded".to_owned()) })
        .await
        .map_err(|e| anyhow!(e))?;
    // Warm up, then measure.
    calls(&runtime, &loaded, 50.min(n)).await?;
    let started = Instant::now();
    let times = calls(&runtime, &loaded, n).await?;
    let wall = started.elapsed();
    println!(
        "per call, instantiate + on-event + drop: p50 {}, p95 {}, p99 {}",
        us(percentile(&times, 50.0)),
        us(percentile(&times, 95.0)),
        us(percentile(&times, 99.0))
    );
    println!(
        "events/s, one task:                      {:>10.0}",
        n as f64 / wall.as_secs_f64()
    );
    let started = Instant::now();
    let (a, b) = tokio::join!(calls(&runtime, &loaded, n), calls(&runtime, &loaded, n));
    a?;
    b?;
    println!(
        "events/s, two tasks:                     {:>10.0}",
        (2 * n) as f64 / started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}
