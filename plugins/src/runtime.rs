//! The wasmtime host: one [`Engine`] (Cranelift, fuel, epoch interruption), components
//! compiled once per content hash and kept precompiled on disk, an `InstancePre` per loaded
//! package in a bounded LRU, and a fresh [`Store`] per call with fuel, a memory cap and an
//! epoch deadline (a ticker thread advances the epoch every [`TICK`]). Host calls run on the
//! same wall clock: each one is bounded by what is left of the call's deadline, and the
//! whole call is cut at the deadline too.

use crate::bindings::{v1_0, v1_1, WitVersion};
use crate::host::HostState;
use crate::limits::Limits;
use crate::manifest::Manifest;
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, Trap};

/// How often the epoch advances: a runaway call stops within two ticks of its deadline.
pub const TICK: Duration = Duration::from_millis(10);

/// Fuel consumed between yields to the async executor, so a busy plugin never holds a
/// worker thread for long.
const FUEL_YIELD: u64 = 100_000;

/// A compiled package, ready to instantiate.
pub struct Loaded {
    pub sha256: String,
    pub wit: WitVersion,
    pre: Pre,
}

enum Pre {
    V1_0(v1_0::PluginPre<HostState>),
    V1_1(v1_1::PluginPre<HostState>),
}

/// An event as the plugin receives it.
#[derive(Debug, Clone)]
pub struct EventIn {
    pub id: String,
    pub kind: String,
    pub object: String,
    pub record_id: String,
    pub occurred_at: String,
    pub data: String,
}

/// A call to a plugin endpoint.
#[derive(Debug, Clone)]
pub struct RequestIn {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub user_id: String,
}

/// A plugin endpoint's answer.
#[derive(Debug, Clone)]
pub struct ResponseOut {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a call produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The plugin returned an error of its own.
    Plugin { code: String, message: String },
    /// Fuel ran out.
    Fuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// The plugin asked for more memory than its cap.
    Memory,
    /// The input was larger than the install's limit.
    InputTooLarge,
    /// The output was larger than the install's limit.
    OutputTooLarge,
    /// The plugin trapped (crashed) or could not be instantiated.
    Trap(String),
    /// Every call slot of this process is in use; try again shortly.
    Busy,
}

impl CallError {
    pub fn code(&self) -> &str {
        match self {
            CallError::Plugin { code, .. } => code,
            CallError::Fuel => "plugin.fuel_exhausted",
            CallError::Deadline => "plugin.timeout",
            CallError::Memory => "plugin.memory_limit",
            CallError::InputTooLarge => "plugin.input_too_large",
            CallError::OutputTooLarge => "plugin.output_too_large",
            CallError::Trap(_) => "plugin.trap",
            CallError::Busy => "plugin.busy",
        }
    }

    pub fn message(&self) -> String {
        match self {
            CallError::Plugin { message, .. } => message.clone(),
            CallError::Fuel => "the plugin used all its fuel (instructions) for this call".into(),
            CallError::Deadline => "the plugin did not finish before its deadline".into(),
            CallError::Memory => "the plugin asked for more memory than its limit".into(),
            CallError::InputTooLarge => "the input is larger than the plugin's input limit".into(),
            CallError::OutputTooLarge => {
                "the plugin's output is larger than its output limit".into()
            }
            CallError::Trap(why) => format!("the plugin crashed: {why}"),
            CallError::Busy => {
                "the server runs as many plugin calls as it can; try again shortly".into()
            }
        }
    }
}

/// What one call used, for the run log and metrics.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    pub duration: Duration,
    pub fuel_used: u64,
    pub memory_peak: u64,
    pub logs: String,
}

/// The plugin host of one process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker_1_0: Linker<HostState>,
    linker_1_1: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<LruCache<String, Arc<Loaded>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The hex SHA-256 of a package.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Calls that can run at once in one process: each holds a pooled instance slot, memory and
/// async stack while it runs; one more waits for a free slot and fails as `plugin.busy`.
pub const CALL_SLOTS: u32 = 100;

/// Pooled instances, memories, tables and stacks: instantiating from a pool (memory images
/// mapped copy-on-write, stacks reused) is what keeps a call's overhead in microseconds.
fn pooling(max_memory_mb: u32) -> wasmtime::PoolingAllocationConfig {
    let mut p = wasmtime::PoolingAllocationConfig::default();
    p.total_component_instances(CALL_SLOTS)
        .total_core_instances(CALL_SLOTS * 10)
        .total_memories(CALL_SLOTS * 2)
        .total_tables(CALL_SLOTS * 10)
        .total_stacks(CALL_SLOTS)
        .max_memory_size((max_memory_mb.max(1) as usize) << 20);
    p
}

fn engine_config(max_memory_mb: u32) -> Config {
    let mut config = Config::new();
    config
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling(
            max_memory_mb,
        )))
        // Each pooled memory reserves this much address space (not memory): the largest
        // memory an install may have, not wasmtime's 4 GiB default.
        .memory_reservation(u64::from(max_memory_mb.max(1)) << 20);
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .strategy(wasmtime::Strategy::Cranelift)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

impl Runtime {
    /// A host compiling into `cache_dir` (created if missing; `None`: no disk cache),
    /// keeping `cached` compiled packages in memory, for memories of at most
    /// `max_memory_mb` (the platform's largest install limit).
    pub fn new(
        cache_dir: Option<PathBuf>,
        cached: usize,
        max_memory_mb: u32,
    ) -> wasmtime::Result<Runtime> {
        let engine = Engine::new(&engine_config(max_memory_mb))?;
        let mut linker_1_0 = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker_1_0)?;
        v1_0::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut linker_1_0,
            |s| s,
        )?;
        let mut linker_1_1 = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker_1_1)?;
        v1_1::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
            &mut linker_1_1,
            |s| s,
        )?;
        // Without a writable cache directory plugins still run; they compile on each start.
        let cache_dir = cache_dir.filter(|dir| match std::fs::create_dir_all(dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no plugin compile cache");
                false
            }
        });
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = engine.weak();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| wasmtime::Error::msg(format!("epoch ticker: {e}")))?;
        let capacity = NonZeroUsize::new(cached.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker_1_0,
                linker_1_1,
                cache_dir,
                loaded: Mutex::new(LruCache::new(capacity)),
                stop,
            }),
        })
    }

    /// Whether package `sha256` is compiled and held in memory.
    pub fn is_loaded(&self, sha256: &str) -> bool {
        self.inner.loaded.lock().is_ok_and(|l| l.contains(sha256))
    }

    /// Packages compiled and held in memory.
    pub fn loaded_count(&self) -> usize {
        self.inner.loaded.lock().map_or(0, |l| l.len())
    }

    /// The compiled package `sha256`, from memory, the disk cache, or compiled from
    /// `bytes()` (on a blocking thread: a JS or Python component takes seconds).
    pub async fn load<F>(&self, sha256: &str, bytes: F) -> Result<Arc<Loaded>, String>
    where
        F: std::future::Future<Output = Result<Vec<u8>, String>>,
    {
        if let Some(hit) = self
            .inner
            .loaded
            .lock()
            .ok()
            .and_then(|mut l| l.get(sha256).cloned())
        {
            return Ok(hit);
        }
        let component = match self.precompiled(sha256) {
            Some(c) => c,
            None => {
                let bytes = bytes.await?;
                self.compile(sha256, bytes).await?
            }
        };
        let loaded = Arc::new(self.prepare(sha256, &component)?);
        if let Ok(mut l) = self.inner.loaded.lock() {
            l.put(sha256.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut h);
        let dir = self.inner.cache_dir.as_ref()?;
        Some(dir.join(format!("{sha256}-{:016x}.cwasm", h.finish())))
    }

    fn precompiled(&self, sha256: &str) -> Option<Component> {
        let path = self.cache_path(sha256)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `Engine::precompile_component` of an engine with
        // the same compatibility hash (part of its name), in a directory only the server
        // writes; wasmtime also checks the header and refuses an incompatible artifact.
        match unsafe { Component::deserialize_file(&self.inner.engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding a precompiled plugin");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    async fn compile(&self, sha256: &str, bytes: Vec<u8>) -> Result<Component, String> {
        if sha256_hex(&bytes) != sha256 {
            return Err("the package's bytes do not match its hash".into());
        }
        let engine = self.inner.engine.clone();
        let compiled = tokio::task::spawn_blocking(move || engine.precompile_component(&bytes))
            .await
            .map_err(|e| format!("compiling failed: {e}"))?
            .map_err(|e| format!("not a WebAssembly component this host can compile: {e:#}"))?;
        if let Some(path) = self.cache_path(sha256) {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        // SAFETY: `compiled` was produced just now by this engine's `precompile_component`.
        unsafe { Component::deserialize(&self.inner.engine, &compiled) }
            .map_err(|e| format!("loading the compiled component failed: {e:#}"))
    }

    fn prepare(&self, sha256: &str, component: &Component) -> Result<Loaded, String> {
        let ty = component.component_type();
        let engine = &self.inner.engine;
        let wit = ty
            .exports(engine)
            .find_map(|(name, _)| WitVersion::of_export(name))
            .ok_or_else(|| {
                let found: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
                format!(
                    "the component exports no supported crm:plugin/handler (supported: {}; it exports: {})",
                    WitVersion::ALL.map(|v| format!("crm:plugin/handler@{}", v.as_str())).join(", "),
                    if found.is_empty() { "nothing".into() } else { found.join(", ") }
                )
            })?;
        let unlinkable = |e: wasmtime::Error| {
            format!(
                "the component imports something this host does not provide for WIT {}: {e:#}",
                wit.as_str()
            )
        };
        let pre = match wit {
            WitVersion::V1_0 => Pre::V1_0(
                v1_0::PluginPre::new(
                    self.inner
                        .linker_1_0
                        .instantiate_pre(component)
                        .map_err(unlinkable)?,
                )
                .map_err(unlinkable)?,
            ),
            WitVersion::V1_1 => Pre::V1_1(
                v1_1::PluginPre::new(
                    self.inner
                        .linker_1_1
                        .instantiate_pre(component)
                        .map_err(unlinkable)?,
                )
                .map_err(unlinkable)?,
            ),
        };
        Ok(Loaded {
            sha256: sha256.to_owned(),
            wit,
            pre,
        })
    }

    fn store(&self, state: HostState, limits: &Limits, wall: Duration) -> Store<HostState> {
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| s.limiter());
        // Neither fails on an engine with fuel and epochs on.
        let _ = store.set_fuel(limits.fuel);
        let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD));
        let ticks = (wall.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Calls `describe()` with tight limits.
    pub async fn describe(&self, loaded: &Loaded) -> Result<Manifest, CallError> {
        let limits = Limits {
            fuel: 10_000_000,
            ..Limits::default()
        };
        let wall = Duration::from_millis(1_000);
        let state = HostState::offline(limits, wall);
        let mut store = self.store(state, &limits, wall);
        let work = async {
            match &loaded.pre {
                Pre::V1_0(pre) => v10::describe(pre, &mut store).await,
                Pre::V1_1(pre) => v11::describe(pre, &mut store).await,
            }
        };
        match tokio::time::timeout(wall + TICK * 2, work).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(classify(&e, store.data())),
            Err(_) => Err(CallError::Deadline),
        }
    }

    /// Calls `on-event`; returns the actions (JSON texts) and what the call used.
    pub async fn on_event(
        &self,
        loaded: &Loaded,
        state: HostState,
        event: EventIn,
    ) -> (Result<Vec<String>, CallError>, CallStats) {
        let limits = state.limits;
        let wall = Duration::from_millis(limits.event_ms);
        if event.data.len() > limits.input_bytes {
            return (Err(CallError::InputTooLarge), CallStats::default());
        }
        let started = Instant::now();
        let mut store = self.store(state.with_deadline(wall), &limits, wall);
        let work = async {
            match &loaded.pre {
                Pre::V1_0(pre) => v10::on_event(pre, &mut store, event).await,
                Pre::V1_1(pre) => v11::on_event(pre, &mut store, event).await,
            }
        };
        let outcome = tokio::time::timeout(wall + TICK * 2, work).await;
        let result = match outcome {
            Ok(Ok(Ok(actions))) => {
                let size: usize = actions.iter().map(String::len).sum();
                if size > limits.output_bytes {
                    Err(CallError::OutputTooLarge)
                } else {
                    Ok(actions)
                }
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(classify(&e, store.data())),
            Err(_) => Err(CallError::Deadline),
        };
        (result, stats(&store, &limits, started))
    }

    /// Calls `handle-request`.
    pub async fn handle_request(
        &self,
        loaded: &Loaded,
        state: HostState,
        request: RequestIn,
    ) -> (Result<ResponseOut, CallError>, CallStats) {
        let limits = state.limits;
        let wall = Duration::from_millis(limits.request_ms);
        if request.body.len() > limits.input_bytes {
            return (Err(CallError::InputTooLarge), CallStats::default());
        }
        let started = Instant::now();
        let mut store = self.store(state.with_deadline(wall), &limits, wall);
        let work = async {
            match &loaded.pre {
                Pre::V1_0(pre) => v10::handle_request(pre, &mut store, request).await,
                Pre::V1_1(pre) => v11::handle_request(pre, &mut store, request).await,
            }
        };
        let outcome = tokio::time::timeout(wall + TICK * 2, work).await;
        let result = match outcome {
            Ok(Ok(Ok(r))) if r.body.len() > limits.output_bytes => Err(CallError::OutputTooLarge),
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(e)) => Err(classify(&e, store.data())),
            Err(_) => Err(CallError::Deadline),
        };
        (result, stats(&store, &limits, started))
    }
}

fn stats(store: &Store<HostState>, limits: &Limits, started: Instant) -> CallStats {
    let state = store.data();
    CallStats {
        duration: started.elapsed(),
        fuel_used: limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
        memory_peak: state.memory_peak(),
        logs: state.logs().to_owned(),
    }
}

/// A trap or host failure as a [`CallError`].
fn classify(e: &wasmtime::Error, state: &HostState) -> CallError {
    if state.memory_refused() {
        return CallError::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::Fuel,
        Some(Trap::Interrupt) => CallError::Deadline,
        Some(trap) => CallError::Trap(trap.to_string()),
        None => {
            let text = format!("{e:#}");
            if state.deadline_passed() {
                CallError::Deadline
            } else if text.contains("maximum concurrent") {
                CallError::Busy
            } else {
                CallError::Trap(format!("{e:#}").chars().take(500).collect())
            }
        }
    }
}

/// The calls of one binding module, converting its generated types to the host's own.
macro_rules! calls {
    ($name:ident, $m:ident) => {
        mod $name {
            use super::{CallError, EventIn, RequestIn, ResponseOut};
            use crate::bindings::$m as b;
            use crate::host::HostState;
            use crate::manifest::{Endpoint, Manifest};
            use b::crm::plugin::types as t;
            use wasmtime::Store;

            fn fault(e: t::PluginError) -> CallError {
                CallError::Plugin {
                    code: e.code.chars().take(100).collect(),
                    message: e.message.chars().take(2000).collect(),
                }
            }

            pub(super) async fn describe(
                pre: &b::PluginPre<HostState>,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Manifest> {
                let plugin = pre.instantiate_async(&mut *store).await?;
                let m = plugin
                    .crm_plugin_handler()
                    .call_describe(&mut *store)
                    .await?;
                Ok(Manifest {
                    name: m.name,
                    version: m.version,
                    description: m.description,
                    events: m.events,
                    endpoints: m
                        .endpoints
                        .into_iter()
                        .map(|e| Endpoint {
                            method: e.method,
                            path: e.path,
                            permission: e.permission,
                            summary: e.summary,
                        })
                        .collect(),
                    config_schema: m.config_schema,
                    permissions: m.permissions,
                })
            }

            pub(super) async fn on_event(
                pre: &b::PluginPre<HostState>,
                store: &mut Store<HostState>,
                e: EventIn,
            ) -> wasmtime::Result<Result<Vec<String>, CallError>> {
                let plugin = pre.instantiate_async(&mut *store).await?;
                let event = t::Event {
                    id: e.id,
                    kind: e.kind,
                    object: e.object,
                    record_id: e.record_id,
                    occurred_at: e.occurred_at,
                    data: e.data,
                };
                let r = plugin
                    .crm_plugin_handler()
                    .call_on_event(&mut *store, &event)
                    .await?;
                Ok(r.map_err(fault))
            }

            pub(super) async fn handle_request(
                pre: &b::PluginPre<HostState>,
                store: &mut Store<HostState>,
                r: RequestIn,
            ) -> wasmtime::Result<Result<ResponseOut, CallError>> {
                let plugin = pre.instantiate_async(&mut *store).await?;
                let request = t::Request {
                    method: r.method,
                    path: r.path,
                    query: r.query,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(name, value)| t::Header { name, value })
                        .collect(),
                    body: r.body,
                    user_id: r.user_id,
                };
                let out = plugin
                    .crm_plugin_handler()
                    .call_handle_request(&mut *store, &request)
                    .await?;
                Ok(out.map_err(fault).map(|resp| ResponseOut {
                    status: resp.status,
                    headers: resp
                        .headers
                        .into_iter()
                        .map(|h| (h.name, h.value))
                        .collect(),
                    body: resp.body,
                }))
            }
        }
    };
}

calls!(v10, v1_0);
calls!(v11, v1_1);
