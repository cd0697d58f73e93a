//! The state of one plugin call ([`HostState`], a fresh one per call) and the imports a
//! plugin sees, for every WIT version: `log`, `config-get`, `secret-get`, `kv-*`, `records`
//! and `http`. WASI is linked with an empty context: no preopened directories, no
//! environment, no arguments, no sockets or name lookups, stdio discarded.

use crate::calls::{self, CallEnv, Fault};
use crate::limits::Limits;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Instances, tables and memories one call may create (a component with the WASI adapter
/// needs a handful).
const MAX_INSTANCES: usize = 100;
const MAX_TABLES: usize = 100;
const MAX_MEMORIES: usize = 20;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Caps the call's linear memory (all memories together) and records its peak.
struct MemoryGuard {
    cap: usize,
    total: usize,
    peak: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.cap {
            self.refused = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: {} bytes asked, {} allowed",
                total, self.cap
            )));
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Everything one call can reach.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryGuard,
    pub(crate) limits: Limits,
    /// The install, its tenant and its services; `None` for `describe()` at upload.
    pub(crate) env: Option<Arc<CallEnv>>,
    logs: String,
    log_cut: bool,
    pub(crate) http_used: u32,
    deadline: Option<Instant>,
}

/// WASI with nothing in it: no files, no environment, no network, no stdio.
fn empty_wasi() -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    b.build()
}

impl HostState {
    /// A call with no install behind it (`describe()`): every host call is refused.
    pub fn offline(limits: Limits, wall: Duration) -> HostState {
        HostState::build(limits, None).with_deadline(wall)
    }

    /// A call of an install.
    pub fn for_install(env: Arc<CallEnv>) -> HostState {
        let limits = env.install.limits;
        HostState::build(limits, Some(env))
    }

    fn build(limits: Limits, env: Option<Arc<CallEnv>>) -> HostState {
        HostState {
            wasi: empty_wasi(),
            table: ResourceTable::new(),
            memory: MemoryGuard {
                cap: (limits.memory_mb as usize) << 20,
                total: 0,
                peak: 0,
                refused: false,
            },
            limits,
            env,
            logs: String::new(),
            log_cut: false,
            http_used: 0,
            deadline: None,
        }
    }

    pub(crate) fn with_deadline(mut self, wall: Duration) -> HostState {
        self.deadline = Some(Instant::now() + wall);
        self
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }

    pub(crate) fn memory_peak(&self) -> u64 {
        self.memory.peak as u64
    }

    pub(crate) fn memory_refused(&self) -> bool {
        self.memory.refused
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// What is left of the call's wall time.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.map_or(Duration::from_secs(1), |d| {
            d.saturating_duration_since(Instant::now())
        })
    }

    pub(crate) fn logs(&self) -> &str {
        &self.logs
    }

    /// Appends a line to the call's log, cut at the install's limit.
    pub(crate) fn log_line(&mut self, level: &str, message: &str) {
        if self.log_cut {
            return;
        }
        let line = format!("{level}: {message}\n");
        let room = self.limits.log_bytes.saturating_sub(self.logs.len());
        if line.len() <= room {
            self.logs.push_str(&line);
        } else {
            let mut end = room;
            while end > 0 && !line.is_char_boundary(end) {
                end -= 1;
            }
            self.logs.push_str(&line[..end]);
            self.logs
                .push_str("\n[log cut: the call's log limit was reached]\n");
            self.log_cut = true;
        }
    }

    fn env(&self) -> Result<Arc<CallEnv>, Fault> {
        self.env.clone().ok_or_else(|| {
            Fault::new(
                "plugin.no_install",
                "host calls are not available during describe()",
            )
        })
    }
}

/// Runs a host call within `remaining` (what is left of the call's deadline).
pub(crate) async fn bounded<T>(
    remaining: Duration,
    work: impl std::future::Future<Output = Result<T, Fault>>,
) -> Result<T, Fault> {
    match tokio::time::timeout(remaining, work).await {
        Ok(r) => r,
        Err(_) => Err(Fault::new(
            "plugin.timeout",
            "the call's deadline passed during a host call",
        )),
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The imports of one binding module, each delegating to [`calls`].
macro_rules! imports {
    ($m:ident) => {
        impl crate::bindings::$m::crm::plugin::types::Host for HostState {}

        impl From<Fault> for crate::bindings::$m::crm::plugin::types::PluginError {
            fn from(f: Fault) -> Self {
                Self {
                    code: f.code,
                    message: f.message,
                }
            }
        }

        impl crate::bindings::$m::crm::plugin::host::Host for HostState {
            async fn log(
                &mut self,
                level: crate::bindings::$m::crm::plugin::host::Level,
                message: String,
            ) {
                use crate::bindings::$m::crm::plugin::host::Level;
                let level = match level {
                    Level::Debug => "debug",
                    Level::Info => "info",
                    Level::Warn => "warn",
                    Level::Error => "error",
                };
                self.log_line(level, &message);
            }

            async fn config_get(&mut self, key: String) -> Option<String> {
                self.env.as_ref().and_then(|e| e.config(&key))
            }

            async fn secret_get(&mut self, key: String) -> Option<String> {
                self.env.as_ref().and_then(|e| e.secret(&key))
            }

            async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
                let Ok(env) = self.env() else { return None };
                bounded(self.remaining(), calls::kv_get(&env, &key)).await.ok().flatten()
            }

            async fn kv_set(
                &mut self,
                key: String,
                value: Vec<u8>,
            ) -> Result<(), crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let quota = self.limits.kv_bytes;
                Ok(bounded(self.remaining(), calls::kv_set(&env, &key, value, quota)).await?)
            }

            async fn kv_delete(
                &mut self,
                key: String,
            ) -> Result<(), crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                Ok(bounded(self.remaining(), calls::kv_delete(&env, &key)).await?)
            }
        }

        impl crate::bindings::$m::crm::plugin::records::Host for HostState {
            async fn get(
                &mut self,
                object: String,
                id: String,
            ) -> Result<String, crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let op = calls::RecordOp::Get { id: &id };
                Ok(bounded(self.remaining(), calls::record(&env, &object, op)).await?)
            }

            async fn query(
                &mut self,
                object: String,
                query: String,
            ) -> Result<String, crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let op = calls::RecordOp::Query { query: &query };
                Ok(bounded(self.remaining(), calls::record(&env, &object, op)).await?)
            }

            async fn create(
                &mut self,
                object: String,
                fields: String,
            ) -> Result<String, crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let op = calls::RecordOp::Create { fields: &fields };
                Ok(bounded(self.remaining(), calls::record(&env, &object, op)).await?)
            }

            async fn update(
                &mut self,
                object: String,
                id: String,
                fields: String,
            ) -> Result<String, crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let op = calls::RecordOp::Update {
                    id: &id,
                    fields: &fields,
                };
                Ok(bounded(self.remaining(), calls::record(&env, &object, op)).await?)
            }

            async fn ensure_field(
                &mut self,
                object: String,
                key: String,
                definition: String,
            ) -> Result<(), crate::bindings::$m::crm::plugin::types::PluginError> {
                let env = self.env()?;
                let remaining = self.remaining();
                Ok(bounded(remaining, calls::ensure_field(&env, &object, &key, &definition)).await?)
            }

            $crate::host::imports!(@delete $m);
        }

        impl crate::bindings::$m::crm::plugin::http::Host for HostState {
            async fn fetch(
                &mut self,
                request: crate::bindings::$m::crm::plugin::http::HttpRequest,
            ) -> Result<
                crate::bindings::$m::crm::plugin::http::HttpResponse,
                crate::bindings::$m::crm::plugin::types::PluginError,
            > {
                let env = self.env()?;
                let limits = self.limits;
                if self.http_used >= limits.http_requests {
                    return Err(Fault::new(
                        "http.limit",
                        format!(
                            "a call may make at most {} HTTP requests",
                            limits.http_requests
                        ),
                    )
                    .into());
                }
                self.http_used += 1;
                let headers: Vec<(String, String)> = request
                    .headers
                    .into_iter()
                    .map(|h| (h.name, h.value))
                    .collect();
                let out = bounded(
                    self.remaining(),
                    calls::fetch(
                        &env,
                        &limits,
                        &request.method,
                        &request.url,
                        &headers,
                        request.body,
                    ),
                )
                .await?;
                self.log_line(
                    "http",
                    &format!("{} {} -> {}", request.method, request.url, out.status),
                );
                Ok(crate::bindings::$m::crm::plugin::http::HttpResponse {
                    status: out.status,
                    headers: out
                        .headers
                        .into_iter()
                        .map(|(name, value)| {
                            crate::bindings::$m::crm::plugin::types::Header { name, value }
                        })
                        .collect(),
                    body: out.body,
                })
            }
        }
    };
    (@delete v1_0) => {};
    (@delete v1_1) => {
        async fn delete(
            &mut self,
            object: String,
            id: String,
        ) -> Result<(), crate::bindings::v1_1::crm::plugin::types::PluginError> {
            let env = self.env()?;
            let op = calls::RecordOp::Delete { id: &id };
            bounded(self.remaining(), calls::record(&env, &object, op)).await?;
            Ok(())
        }
    };
}

pub(crate) use imports;

imports!(v1_0);
imports!(v1_1);
