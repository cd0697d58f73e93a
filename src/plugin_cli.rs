//! `crm plugin describe|run`: an integrator's local loop. `run` calls a component's
//! `on-event` or `handle-request` in the same host, with the same limits, as the server;
//! offline (no `--tenant`) its records calls are refused and its key/value data lives in
//! memory; with `--tenant` they act on that tenant's data under the `--grant`s given.
//! Actions an event returns are printed, not carried out.

use crate::config::Config;
use anyhow::{anyhow, Context};
use clap::Subcommand;
use crm_core::authz::{Grants, Permission};
use crm_plugins::{CallEnv, EventIn, InstallCtx, Limits, RequestIn, Runtime, TenantAccess};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Compile a component and print its manifest (what describe() returns).
    Describe { file: PathBuf },
    /// Run a component once, as the server would, and print the outcome as JSON.
    Run {
        file: PathBuf,
        /// An event: {"kind": "customers.created", "object": "customers", "record_id": "…",
        /// "data": {"record": {…}}}.
        #[arg(long, conflicts_with = "request")]
        event: Option<String>,
        /// An endpoint call: {"method": "POST", "path": "leads", "query": "", "body": "…"}.
        #[arg(long)]
        request: Option<String>,
        /// The install's config (JSON object).
        #[arg(long = "install-config", default_value = "{}")]
        install_config: String,
        /// A secret, `name=value` (repeatable).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// A permission granted to the run (repeatable), e.g. customers:read.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A host http-fetch may reach (repeatable).
        #[arg(long = "allow-host")]
        allowed_hosts: Vec<String>,
        /// Limits as JSON ({"fuel": 1000000, "event_ms": 100}); the rest are the defaults.
        #[arg(long)]
        limits: Option<String>,
        /// Run against this tenant's data (needs the database).
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn read(file: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    Ok((crm_plugins::runtime::sha256_hex(&bytes), bytes))
}

async fn load(runtime: &Runtime, file: &Path) -> anyhow::Result<Arc<crm_plugins::Loaded>> {
    let (sha, bytes) = read(file)?;
    runtime
        .load(&sha, async move { Ok(bytes) })
        .await
        .map_err(|e| anyhow!("{}: {e}", file.display()))
}

/// Runs a `crm plugin` command.
pub async fn run(config: &Config, command: PluginCommand) -> anyhow::Result<()> {
    let runtime = Runtime::new(
        Some(config.data_dir.join("plugins").join("compiled")),
        4,
        config.plugins.max.memory_mb,
    )
    .map_err(|e| anyhow!("plugin runtime: {e}"))?;
    match command {
        PluginCommand::Describe { file } => {
            let loaded = load(&runtime, &file).await?;
            let manifest = runtime
                .describe(&loaded)
                .await
                .map_err(|e| anyhow!("describe() failed ({}): {}", e.code(), e.message()))?;
            let problems = manifest.validate().err().map(|e| match e {
                crm_core::Error::Invalid { fields, .. } => fields
                    .into_iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>(),
                other => vec![other.to_string()],
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "wit_version": loaded.wit.as_str(),
                    "sha256": loaded.sha256,
                    "manifest": manifest,
                    "problems": problems.unwrap_or_default(),
                }))?
            );
            Ok(())
        }
        PluginCommand::Run {
            file,
            event,
            request,
            install_config,
            secrets,
            grants,
            allowed_hosts,
            limits,
            tenant,
        } => {
            let loaded = load(&runtime, &file).await?;
            let limits = match limits {
                Some(raw) => serde_json::from_str::<Limits>(&raw).context("--limits")?,
                None => config.plugins.defaults,
            }
            .within(&config.plugins.max);
            let permissions = grants
                .iter()
                .map(|g| {
                    Permission::parse(g).ok_or_else(|| anyhow!("--grant {g}: not a permission"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let secrets = secrets
                .iter()
                .map(|s| {
                    s.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow!("--secret {s}: expected name=value"))
                })
                .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
            let db = match &tenant {
                Some(_) => Some(crate::cli::Database::open(config).await?),
                None => None,
            };
            let tenant_access = match (&tenant, &db) {
                (Some(slug), Some(db)) => {
                    let t = crm_tenants::registry::by_slug(&db.pool, slug)
                        .await?
                        .ok_or_else(|| anyhow!("no tenant '{slug}'"))?;
                    Some(TenantAccess {
                        db: crm_core::db::Db::new(db.pool.clone(), config.tenant_isolation),
                        tenant: t.ctx()?,
                        master: config.master_key(false)?.map(Arc::new),
                        max_fields: config.objects.max_fields,
                    })
                }
                _ => None,
            };
            let env = Arc::new(CallEnv {
                install: InstallCtx {
                    id: uuid::Uuid::nil(),
                    name: "local-run".into(),
                    grants: Grants::of_role(permissions, &BTreeMap::new()),
                    config: serde_json::from_str(&install_config).context("--config")?,
                    secrets,
                    allowed_hosts,
                    limits,
                },
                tenant: tenant_access,
                outbound: crm_core::outbound::Outbound::new(
                    config.outbound.clone(),
                    "TC-CRM-Plugin/1",
                ),
                request_id: "crm-plugin-run".into(),
                offline_kv: Mutex::new(BTreeMap::new()),
            });
            let state = crm_plugins::HostState::for_install(env);
            let (outcome, stats) = match (event, request) {
                (Some(raw), _) => {
                    let e: Value = serde_json::from_str(&raw).context("--event")?;
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    let event = EventIn {
                        id: e["id"]
                            .as_str()
                            .map_or_else(|| "1".to_owned(), str::to_owned),
                        kind: text("kind"),
                        object: text("object"),
                        record_id: text("record_id"),
                        occurred_at: chrono::Utc::now().to_rfc3339(),
                        data: e
                            .get("data")
                            .map_or_else(|| "{}".to_owned(), Value::to_string),
                    };
                    let (r, stats) = runtime.on_event(&loaded, state, event).await;
                    let outcome = match r {
                        Ok(actions) => json!({
                            "outcome": "succeeded",
                            "actions": actions.iter().map(|a| serde_json::from_str::<Value>(a).unwrap_or(Value::String(a.clone()))).collect::<Vec<_>>(),
                        }),
                        Err(e) => {
                            json!({ "outcome": "failed", "error": { "code": e.code(), "message": e.message() } })
                        }
                    };
                    (outcome, stats)
                }
                (None, Some(raw)) => {
                    let r: Value = serde_json::from_str(&raw).context("--request")?;
                    let request = RequestIn {
                        method: r["method"].as_str().unwrap_or("GET").to_owned(),
                        path: r["path"].as_str().unwrap_or_default().to_owned(),
                        query: r["query"].as_str().unwrap_or_default().to_owned(),
                        headers: r["headers"]
                            .as_object()
                            .map(|h| {
                                h.iter()
                                    .map(|(k, v)| {
                                        (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        body: r["body"].as_str().unwrap_or_default().as_bytes().to_vec(),
                        user_id: String::new(),
                    };
                    let (res, stats) = runtime.handle_request(&loaded, state, request).await;
                    let outcome = match res {
                        Ok(resp) => json!({
                            "outcome": "succeeded",
                            "status": resp.status,
                            "headers": resp.headers,
                            "body": String::from_utf8_lossy(&resp.body),
                        }),
                        Err(e) => {
                            json!({ "outcome": "failed", "error": { "code": e.code(), "message": e.message() } })
                        }
                    };
                    (outcome, stats)
                }
                (None, None) => return Err(anyhow!("give --event or --request")),
            };
            let mut out = outcome;
            out["duration_ms"] = json!(stats.duration.as_secs_f64() * 1000.0);
            out["fuel_used"] = json!(stats.fuel_used);
            out["memory_peak"] = json!(stats.memory_peak);
            out["logs"] = json!(stats.logs);
            println!("{}", serde_json::to_string_pretty(&out)?);
            if let Some(db) = db {
                db.close().await?;
            }
            if out["outcome"] == "failed" {
                return Err(anyhow!("the plugin call failed"));
            }
            Ok(())
        }
    }
}
