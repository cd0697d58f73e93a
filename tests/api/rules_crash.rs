//! Crash safety of rule execution: the real `crm` binary serves 2,000 events that each trigger
//! a rule, is killed with SIGKILL half-way, and started again. Every effect must then have
//! happened exactly once: one task and one field change per customer, one run per event.

use crate::helpers::{eventually, TestApp};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EVENTS: usize = 2_000;

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    /// Starts `crm serve` on the test's database and data dir, on a free port.
    pub(crate) async fn start(app: &TestApp) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let url = app.config.database_url.clone().expect("database url");
        let child = Command::new(env!("CARGO_BIN_EXE_crm"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
            .env("CRM_DATA_DIR", &app.config.data_dir)
            .env(
                "CRM_MASTER_KEY",
                app.config.master_key.clone().expect("master key"),
            )
            .env("CRM_AUTO_MIGRATE_TENANTS", "false")
            .env("CRM_JOBS_POLL_MS", "50")
            .env("CRM_DB_MAX_CONNECTIONS", "12")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("crm serve starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        eventually("the server to answer /healthz", || {
            let client = client.clone();
            let url = format!("{base}/healthz");
            async move {
                match client.get(url).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        Server { child, base }
    }

    pub(crate) fn kill9(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Creates customer `i` with an idempotency key, so a retry after the crash cannot create it
/// twice. `Ok` once the server answered 201 (now or for an earlier try).
async fn create(client: &reqwest::Client, base: &str, token: &str, i: usize) -> Result<(), String> {
    let resp = client
        .post(format!("{base}/api/v1/customers"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("crash-{i}"))
        .json(&json!({ "name": format!("客户 {i:04}"), "level": "A" }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status().as_u16() == 201 {
        Ok(())
    } else {
        Err(format!("status {}", resp.status()))
    }
}

#[tokio::test]
async fn every_effect_happens_exactly_once_across_a_kill_9() {
    // The in-process server only sets up the tenant; its worker is off, so the real binary
    // does all the rule work.
    let app = TestApp::spawn_with(|c| c.jobs_enabled = false).await;
    let t = app.signup().await;
    app.post(
        "/api/v1/rules",
        &t.token,
        json!({
            "name": "新客户建回访任务",
            "object": "customers",
            "trigger": {"event": "customer.created"},
            "condition": "record.level == \"A\"",
            "script": "create_task(#{title: \"首次回访 \" + record.name, due_in: \"1d\"}); set_field(\"source\", \"rule\");",
        }),
    )
    .await
    .expect(201);
    let schema = app.schema_of(&t).await;
    let count = |sql: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };

    let mut server = Server::start(&app).await;
    let client = reqwest::Client::new();
    let mut pending: Vec<usize> = (0..EVENTS).collect();
    // Fire the first half, 8 at a time, while the server's worker runs the rule.
    let first: Vec<usize> = pending.drain(..EVENTS / 2).collect();
    for chunk in first.chunks(8) {
        let results = futures::future::join_all(
            chunk
                .iter()
                .map(|i| create(&client, &server.base, &t.token, *i)),
        )
        .await;
        for (i, r) in chunk.iter().zip(results) {
            r.unwrap_or_else(|e| panic!("customer {i}: {e}"));
        }
    }
    // Half-way: requests in flight and rule jobs queued, claimed and running. Kill -9.
    let in_flight: Vec<_> = pending
        .iter()
        .take(8)
        .map(|i| {
            let client = client.clone();
            let base = server.base.clone();
            let token = t.token.clone();
            let i = *i;
            tokio::spawn(async move { create(&client, &base, &token, i).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.kill9();
    for h in in_flight {
        let _ = h.await;
    }
    let runs_at_kill = count(format!("SELECT count(*) FROM \"{schema}\".rule_runs")).await;
    let open_at_kill = count(format!(
        "SELECT count(*) FROM \"{schema}\".jobs WHERE kind = 'rule.run' AND status IN ('pending', 'running')"
    ))
    .await;
    assert!(
        (runs_at_kill as usize) < EVENTS,
        "the kill came after all the work ({runs_at_kill} runs)"
    );
    eprintln!("at the kill: {runs_at_kill} runs logged, {open_at_kill} rule jobs open");

    // Start again: send everything not yet acknowledged (idempotent), let the worker finish.
    let server = Server::start(&app).await;
    for chunk in pending.chunks(8) {
        let results = futures::future::join_all(
            chunk
                .iter()
                .map(|i| create(&client, &server.base, &t.token, *i)),
        )
        .await;
        for (i, r) in chunk.iter().zip(results) {
            r.unwrap_or_else(|e| panic!("customer {i} after the restart: {e}"));
        }
    }
    // Jobs claimed by the killed server come back when their lease runs out; shorten it.
    sqlx::query(&format!(
        "UPDATE \"{schema}\".jobs SET locked_until = now() WHERE status = 'running'"
    ))
    .execute(&app.pool)
    .await
    .expect("expire leases");
    sqlx::query("UPDATE platform.job_hints SET next_run_at = now() WHERE tenant_id = $1::uuid")
        .bind(&t.id)
        .execute(&app.pool)
        .await
        .expect("wake the tenant");
    let mut done = 0;
    // Generous: a debug build on 2 cores runs these jobs far slower than a release build.
    for _ in 0..4000 {
        done = count(format!("SELECT count(*) FROM \"{schema}\".rule_runs")).await;
        let open = count(format!(
            "SELECT count(*) FROM \"{schema}\".jobs WHERE kind = 'rule.run' AND status IN ('pending', 'running')"
        ))
        .await;
        if done as usize >= EVENTS && open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if done as usize != EVENTS {
        let stuck: Vec<(String, i32, Option<String>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(&format!(
            "SELECT status, attempts, last_error, run_at FROM \"{schema}\".jobs WHERE kind = 'rule.run' \
             AND (attempts > 1 OR status <> 'done') ORDER BY id LIMIT 10"
        ))
        .fetch_all(&app.pool)
        .await
        .expect("jobs");
        eprintln!("unfinished rule jobs: {stuck:?}");
    }
    assert_eq!(done as usize, EVENTS, "every event ran its rule");

    let customers = count(format!(
        "SELECT count(*) FROM \"{schema}\".customers WHERE deleted_at IS NULL"
    ))
    .await;
    assert_eq!(customers as usize, EVENTS, "no customer was created twice");
    let tasks = count(format!("SELECT count(*) FROM \"{schema}\".tasks")).await;
    assert_eq!(tasks as usize, EVENTS, "one task per event");
    let doubled = count(format!(
        "SELECT count(*) FROM (SELECT customer_id FROM \"{schema}\".tasks GROUP BY customer_id HAVING count(*) > 1) d"
    ))
    .await;
    assert_eq!(doubled, 0, "no customer got two tasks");
    let marked = count(format!(
        "SELECT count(*) FROM \"{schema}\".customers WHERE source = 'rule'"
    ))
    .await;
    assert_eq!(marked as usize, EVENTS, "every customer was marked once");
    let field_changes = count(format!(
        "SELECT count(*) FROM \"{schema}\".record_history WHERE actor_kind = 'rule' AND changes ? 'source'"
    ))
    .await;
    assert_eq!(field_changes as usize, EVENTS, "one field change per event");
    let failed = count(format!(
        "SELECT count(*) FROM \"{schema}\".rule_runs WHERE outcome <> 'succeeded'"
    ))
    .await;
    assert_eq!(failed, 0);
    let dead = count(format!(
        "SELECT count(*) FROM \"{schema}\".jobs WHERE status = 'dead'"
    ))
    .await;
    assert_eq!(dead, 0);
}
