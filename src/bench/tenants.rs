//! `crm bench tenants --active N`: the server's memory, read from outside (`/proc/<pid>`), with
//! N tenants active within a minute. It provisions N tenants, starts `crm serve` as a child
//! process on the same database, and has every tenant log in and do a little work (read its
//! profile, list, create, read and count customers), 32 tenants at a time; then a second round
//! with the sessions already open. It prints the child's resident memory (VmRSS) idle, after
//! each round, and its peak (VmHWM).

use super::dataset::{new_tenant, ADMIN_EMAIL, PASSWORD};
use anyhow::Context;
use crm_core::db::Db;
use crm_tenants::{deprovision_tenant, provision_tenant, Tenant};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

const PARALLEL: usize = 32;

/// Runs the benchmark with `active` tenants.
pub async fn tenants(
    config: &crate::config::Config,
    pool: &sqlx::PgPool,
    active: usize,
    keep: bool,
) -> anyhow::Result<()> {
    let url = config.database_url.clone().context(
        "crm bench tenants starts a second process on the same database: set DATABASE_URL",
    )?;
    let db = Db::new(pool.clone(), config.tenant_isolation);
    let tenants = provision(&db, active).await?;
    let result = measure(config, &url, &tenants).await;
    if keep {
        println!(
            "kept {} tenants ({ADMIN_EMAIL} / {PASSWORD})",
            tenants.len()
        );
    } else {
        println!("removing the benchmark tenants…");
        for t in &tenants {
            deprovision_tenant(&db, t).await?;
        }
    }
    result
}

async fn provision(db: &Db, count: usize) -> anyhow::Result<Vec<Tenant>> {
    let hash = crm_core::identity::hash_password(PASSWORD).await?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut created = Vec::with_capacity(count);
    for i in 0..count {
        let (new, admin) = new_tenant(
            &format!("bench-active-{}-{i}", &run[..8]),
            &format!("活跃租户 {i}"),
            &hash,
        )?;
        created.push(provision_tenant(db, new, admin).await?.tenant);
        if (i + 1) % 100 == 0 {
            println!(
                "  provisioned {} tenants ({:.0} s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(created)
}

/// The child server, killed when dropped.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

pub(crate) fn memory_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> String {
    format!("{:.0} MB", kib as f64 / 1024.0)
}

async fn measure(
    config: &crate::config::Config,
    url: &str,
    tenants: &[Tenant],
) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM_AUTO_MIGRATE_TENANTS", "false")
        // Each tenant is a company of its own, behind its own address (X-Forwarded-For).
        .env("CRM_TRUST_FORWARDED_FOR", "true")
        .env("CRM_DATA_DIR", &config.data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting crm serve")?;
    let child = Child(child);
    let pid = child.0.id().context("the server exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the server did not get ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "server pid {pid} on {base}; {} tenants; {} built",
        tenants.len(),
        if cfg!(debug_assertions) {
            "DEBUG (figures are not representative)"
        } else {
            "release"
        }
    );
    println!("idle: RSS {}", mib(memory_kib(pid, "VmRSS:")?));

    let started = Instant::now();
    let tokens = round(&client, &base, tenants, None).await?;
    println!(
        "round 1 (login + 6 requests per tenant, {PARALLEL} tenants at a time) in {:.1} s: RSS {}, peak {}",
        started.elapsed().as_secs_f64(),
        mib(memory_kib(pid, "VmRSS:")?),
        mib(memory_kib(pid, "VmHWM:")?)
    );
    let started = Instant::now();
    round(&client, &base, tenants, Some(&tokens)).await?;
    println!(
        "round 2 (6 requests per tenant, sessions open) in {:.1} s: RSS {}, peak {}",
        started.elapsed().as_secs_f64(),
        mib(memory_kib(pid, "VmRSS:")?),
        mib(memory_kib(pid, "VmHWM:")?)
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in metrics
        .lines()
        .filter(|l| l.contains("cache") && !l.starts_with('#'))
    {
        println!("  {line}");
    }
    Ok(())
}

/// Every tenant does its work once, `PARALLEL` at a time; returns each tenant's token.
async fn round(
    client: &reqwest::Client,
    base: &str,
    tenants: &[Tenant],
    tokens: Option<&[String]>,
) -> anyhow::Result<Vec<String>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(tenants.iter().enumerate())
        .map(|(i, t)| {
            let token = tokens.and_then(|all| all.get(i)).cloned();
            let address = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            tenant_work(client, base, t, token, address)
        })
        .buffered(PARALLEL)
        .try_collect()
        .await
}

async fn tenant_work(
    client: &reqwest::Client,
    base: &str,
    tenant: &Tenant,
    token: Option<String>,
    address: String,
) -> anyhow::Result<String> {
    let token = match token {
        Some(t) => t,
        None => {
            // A burst of logins meets the bounded hashing slots: 503 auth.busy says when to
            // retry, as a real client would.
            let mut tries = 0;
            loop {
                let resp = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .header("x-forwarded-for", &address)
                    .json(
                        &json!({"tenant": tenant.slug, "email": ADMIN_EMAIL, "password": PASSWORD}),
                    )
                    .send()
                    .await?;
                let status = resp.status();
                let login: Value = resp.json().await.unwrap_or(Value::Null);
                if status.as_u16() == 503 && tries < 50 {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                break login["token"]
                    .as_str()
                    .with_context(|| {
                        format!("login to {} failed: HTTP {status}: {login}", tenant.slug)
                    })?
                    .to_owned();
            }
        }
    };
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}/api/v1{path}"))
            .header("x-forwarded-for", &address)
            .bearer_auth(&token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            anyhow::ensure!(status.is_success(), "{path}: HTTP {status}: {body}");
            Ok::<Value, anyhow::Error>(body)
        }
    };
    call(reqwest::Method::GET, "/me".into(), None).await?;
    call(reqwest::Method::GET, "/customers?limit=20".into(), None).await?;
    let created = call(
        reqwest::Method::POST,
        "/customers?allow_duplicate=true".into(),
        Some(json!({"name": "张伟", "phone": "13800138000", "level": "A"})),
    )
    .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    call(reqwest::Method::GET, format!("/customers/{id}"), None).await?;
    call(
        reqwest::Method::GET,
        "/customers/count?filter[level]=A".into(),
        None,
    )
    .await?;
    call(reqwest::Method::GET, "/tickets?limit=20".into(), None).await?;
    Ok(token)
}
