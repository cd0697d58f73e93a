//! Fair shares of the rule sandbox pool: one tenant cannot hold more than its share of the
//! processes, and nobody waits for a process longer than the pool's `max_wait`.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crm_workflows::{EvalRequest, PoolConfig, SandboxError, SandboxPool};
use serde_json::json;
use uuid::Uuid;

/// Runs until the sandbox's own 100 ms limit stops it: each operation copies 64 KiB.
const SLOW: &str =
    r#"let s = "y"; for i in 0..15 { s += s; } loop { let t = s + s; t.contains("z"); }"#;

fn request(tenant: Uuid, script: &str) -> EvalRequest {
    EvalRequest {
        condition: None,
        script: script.to_owned(),
        record: json!({"id": "r1", "name": "华为"}),
        changes: None,
        context: json!({"tenant": "t", "rule_id": "r", "now": "2025-03-01T09:00:00Z"}),
        tenant: Some(tenant),
    }
}

/// Starts a slow evaluation for `tenant` and gives it time to take its process.
async fn hold(pool: &Arc<SandboxPool>, tenant: Uuid) -> tokio::task::JoinHandle<()> {
    let held = tokio::spawn({
        let pool = pool.clone();
        async move {
            match pool.evaluate(&request(tenant, SLOW)).await {
                Err(SandboxError::Script { code, .. }) => assert_eq!(code, "limit.time"),
                other => panic!("the slow script should hit its time limit: {other:?}"),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(15)).await;
    held
}

#[tokio::test]
async fn a_tenant_holds_at_most_its_share_and_others_still_get_a_process() {
    let pool = Arc::new(SandboxPool::new(PoolConfig {
        size: 2,
        per_tenant: 1,
        max_wait: Duration::from_millis(40),
        ..PoolConfig::default()
    }));
    // Warm both processes so that starting one is not what the waits measure.
    let (heavy, light) = (Uuid::new_v4(), Uuid::new_v4());
    let (first, second) = (request(heavy, "1"), request(light, "1"));
    let warm = tokio::join!(pool.evaluate(&first), pool.evaluate(&second));
    assert!(warm.0.is_ok() && warm.1.is_ok());

    let held = hold(&pool, heavy).await;
    // The heavy tenant's second evaluation waits for its own share, though a process is free…
    match pool.evaluate(&request(heavy, "1")).await {
        Err(SandboxError::Busy { waited_ms }) => assert!(waited_ms >= 40, "{waited_ms}"),
        other => panic!("the heavy tenant's second request should wait for its share: {other:?}"),
    }
    // …while another tenant gets that free process at once.
    let out = pool
        .evaluate(&request(light, r#"notify("u1", "轻量规则")"#))
        .await
        .unwrap();
    assert_eq!(out.effects.len(), 1);
    held.await.unwrap();
    // With the share given back, the heavy tenant runs again.
    assert!(pool.evaluate(&request(heavy, "1")).await.is_ok());
}

#[tokio::test]
async fn waiting_for_a_process_is_bounded() {
    let pool = Arc::new(SandboxPool::new(PoolConfig {
        size: 1,
        per_tenant: 1,
        max_wait: Duration::from_millis(20),
        ..PoolConfig::default()
    }));
    assert!(pool.evaluate(&request(Uuid::new_v4(), "1")).await.is_ok());
    let held = hold(&pool, Uuid::new_v4()).await;
    match pool.evaluate(&request(Uuid::new_v4(), "1")).await {
        Err(SandboxError::Busy { waited_ms }) => assert!(waited_ms >= 20, "{waited_ms}"),
        other => panic!("expected Busy while the only process is held: {other:?}"),
    }
    held.await.unwrap();
    // The error a person sees: 503 with a stable code and a wait.
    match crm_workflows::sandbox::busy(20) {
        crm_core::Error::Busy {
            code,
            retry_after_secs,
            ..
        } => assert_eq!((code, retry_after_secs), ("rules.sandbox_busy", 5)),
        other => panic!("{other:?}"),
    }
}
