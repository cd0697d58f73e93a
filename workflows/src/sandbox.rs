//! The pool of `crm-rules-sandbox` processes that compile and evaluate tenant rules.
//!
//! Each process is long-lived and answers one request at a time over its stdin/stdout: a 4-byte
//! big-endian length, then UTF-8 JSON (protocol in workflows/sandbox/src/main.rs). The sandbox
//! enforces the script limits itself (operations, 100 ms, call depth, sizes); the pool bounds it
//! from outside: a request that gets no answer within `PoolConfig::deadline` kills the process's
//! whole group, and every process runs with an address-space and CPU-time limit, no core dumps,
//! an empty environment and its own process group. A process that died (crash, out of memory,
//! killed from outside) is noticed on its next use and replaced; since evaluation is a pure
//! function, a request that found its idle process dead (the request could not even be written)
//! is retried once on a fresh one.
//!
//! Fair shares: a tenant holds at most `PoolConfig::per_tenant` processes at once (its own
//! requests wait behind each other, not in front of other tenants'), and no request waits more
//! than `PoolConfig::max_wait` for a process: beyond, it fails with [`SandboxError::Busy`]
//! (503 `rules.sandbox_busy` for a person; a job tries again later).

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_rules_protocol::{Effect, RecordRef};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

/// Largest frame the sandbox accepts or sends.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// CPU seconds a sandbox process may use over its life (RLIMIT_CPU).
const CPU_SECONDS: u64 = 60;
/// A process is retired once it has been busy this long, well before RLIMIT_CPU would end it.
const RETIRE_AFTER_BUSY: Duration = Duration::from_secs(CPU_SECONDS - 10);

/// Where the sandbox binary is: `CRM_RULES_SANDBOX` at run time, else the one the build made
/// (build.rs), else `crm-rules-sandbox` next to the running executable.
pub fn default_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CRM_RULES_SANDBOX").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let built = PathBuf::from(env!("CRM_RULES_SANDBOX"));
    if built.is_file() {
        return built;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("crm-rules-sandbox")))
        .filter(|p| p.is_file())
        .unwrap_or(built)
}

/// How the pool starts and bounds its processes.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The `crm-rules-sandbox` executable.
    pub binary: PathBuf,
    /// Number of processes (and of requests served at once).
    pub size: usize,
    /// How long one request may take before its process is killed. The sandbox stops a script
    /// itself after 100 ms; this outer bound only catches a process that stopped answering, so
    /// it leaves room for a loaded machine not scheduling the process for a while — a script
    /// must not be failed because the machine was busy.
    pub deadline: Duration,
    /// Address-space limit of each process (RLIMIT_AS).
    pub memory_bytes: u64,
    /// Processes one tenant may hold at once (at least 1, at most `size`).
    pub per_tenant: usize,
    /// Longest a request waits for a process (its tenant's share, then a free process).
    pub max_wait: Duration,
}

impl PoolConfig {
    /// The default share of a pool of `size`: half of it, at least one process.
    pub fn default_share(size: usize) -> usize {
        (size / 2).max(1)
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        let size = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            binary: default_binary(),
            size,
            deadline: Duration::from_millis(1000),
            memory_bytes: 256 * 1024 * 1024,
            per_tenant: PoolConfig::default_share(size),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// A rule evaluation: the rule's texts and the data it sees.
#[derive(Debug, Clone, Default)]
pub struct EvalRequest {
    /// A rhai expression returning a bool; `None` (or blank) always matches.
    pub condition: Option<String>,
    /// The rhai script run when the condition holds.
    pub script: String,
    /// The record, as a JSON object (`record` in the script).
    pub record: Value,
    /// For updates: field -> `{"before": .., "after": ..}` (`changes`; empty when `None`).
    pub changes: Option<Value>,
    /// Tenant, rule id, `now` (RFC 3339) and the like (`context`).
    pub context: Value,
    /// The tenant whose share of the pool the evaluation counts against (`None`: the
    /// platform's own work, such as benchmarks).
    pub tenant: Option<uuid::Uuid>,
}

/// What an evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOutcome {
    /// Whether the condition held (and so the script ran).
    pub matched: bool,
    /// The declarative effects, in call order.
    pub effects: Vec<Effect>,
    /// rhai operations used by condition and script together.
    pub operations: u64,
    /// The script stopped at `get_record` for this record, which it was not given: read it
    /// and evaluate again with it (see [`SandboxPool::evaluate_with`]).
    pub needs: Option<RecordRef>,
}

/// Why a compile or an evaluation did not produce an outcome.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SandboxError {
    /// The rule itself failed: a compile error, a run-time error or a limit. `code` is stable
    /// (`compile.syntax`, `limit.time`, `runtime.bad_duration`…); `part` is `condition` or
    /// `script`; `line`/`column` point into that part.
    #[error("{code}: {message}")]
    Script {
        code: String,
        message: String,
        part: Option<String>,
        line: Option<u32>,
        column: Option<u32>,
    },
    /// The process overran the deadline or died (crash, out of memory); it was replaced.
    #[error("the rule sandbox was stopped: {reason}")]
    Killed { reason: String },
    /// No process could be started or talked to.
    #[error("the rule sandbox is unavailable: {0}")]
    Unavailable(String),
    /// No process came free within `PoolConfig::max_wait`.
    #[error("every rule sandbox process stayed busy for {waited_ms} ms")]
    Busy { waited_ms: u64 },
}

/// The 503 for a request that found no sandbox process free in time.
pub fn busy(waited_ms: u64) -> crm_core::Error {
    crm_core::Error::Busy {
        code: "rules.sandbox_busy",
        message: format!(
            "every rule sandbox process stayed busy for {waited_ms} ms (other rules are running); retry in a few seconds"
        ),
        retry_after_secs: 5,
    }
}

/// Process counters, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Processes started.
    pub spawned: u64,
    /// Processes the pool killed because they overran the deadline or misbehaved.
    pub killed: u64,
    /// Processes found dead (crash, out of memory, killed from outside, CPU limit).
    pub died: u64,
}

/// A fixed number of sandbox processes, started lazily and replaced when they die.
pub struct SandboxPool {
    config: PoolConfig,
    /// One permit per process: a request holds one for its whole exchange.
    slots: Semaphore,
    /// Per tenant: `per_tenant` permits, taken before a process slot.
    shares: Mutex<HashMap<uuid::Uuid, Arc<Semaphore>>>,
    idle: Mutex<Vec<Process>>,
    spawned: AtomicU64,
    killed: AtomicU64,
    died: AtomicU64,
}

impl SandboxPool {
    /// A pool with `config`; no process starts until the first request.
    pub fn new(config: PoolConfig) -> Self {
        let size = config.size.max(1);
        Self {
            config,
            slots: Semaphore::new(size),
            shares: Mutex::new(HashMap::new()),
            idle: Mutex::new(Vec::with_capacity(size)),
            spawned: AtomicU64::new(0),
            killed: AtomicU64::new(0),
            died: AtomicU64::new(0),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Compiles a rule (and caches it in the process that compiled it); `Err(Script)` carries
    /// the compile error with its line and column.
    /// The compile counts against `tenant`'s share of the pool.
    pub async fn compile(
        &self,
        tenant: Option<uuid::Uuid>,
        condition: Option<&str>,
        script: &str,
    ) -> Result<(), SandboxError> {
        self.call(
            tenant,
            Wire {
                id: 0,
                op: "compile",
                condition,
                script,
                record: None,
                changes: None,
                context: None,
                records: None,
            },
        )
        .await
        .map(|_| ())
    }

    /// Evaluates a rule against a record (a script that calls `get_record` then answers
    /// with `needs`; [`crate::reads`] evaluates with the records it reads).
    pub async fn evaluate(&self, req: &EvalRequest) -> Result<EvalOutcome, SandboxError> {
        self.evaluate_with(req, None).await
    }

    /// Evaluates a rule with the records `get_record` may return: `<object>:<id>` (see
    /// [`RecordRef::key`]) to the record as the rule may see it, or null.
    pub async fn evaluate_with(
        &self,
        req: &EvalRequest,
        records: Option<&Value>,
    ) -> Result<EvalOutcome, SandboxError> {
        let reply = self
            .call(
                req.tenant,
                Wire {
                    id: 0,
                    op: "eval",
                    condition: req.condition.as_deref(),
                    script: &req.script,
                    record: Some(&req.record),
                    changes: req.changes.as_ref(),
                    context: Some(&req.context),
                    records,
                },
            )
            .await?;
        Ok(EvalOutcome {
            matched: reply.matched,
            effects: reply.effects,
            operations: reply.operations,
            needs: reply.needs,
        })
    }

    /// Process counters so far.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            spawned: self.spawned.load(Ordering::Relaxed),
            killed: self.killed.load(Ordering::Relaxed),
            died: self.died.load(Ordering::Relaxed),
        }
    }

    /// Process ids of the idle processes (for operators and tests).
    pub fn idle_pids(&self) -> Vec<u32> {
        self.lock_idle().iter().map(|p| p.pid).collect()
    }

    /// The semaphore of `tenant`'s share; entries nobody holds are dropped as the map grows.
    fn share(&self, tenant: uuid::Uuid) -> Arc<Semaphore> {
        let mut shares = self
            .shares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shares.len() >= 1024 {
            shares.retain(|_, s| Arc::strong_count(s) > 1);
        }
        let per_tenant = self.config.per_tenant.clamp(1, self.config.size.max(1));
        shares
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(per_tenant)))
            .clone()
    }

    async fn call(
        &self,
        tenant: Option<uuid::Uuid>,
        mut wire: Wire<'_>,
    ) -> Result<Reply, SandboxError> {
        let asked = tokio::time::Instant::now();
        let until = asked + self.config.max_wait;
        let busy = || SandboxError::Busy {
            waited_ms: asked.elapsed().as_millis() as u64,
        };
        let closed = |_| SandboxError::Unavailable("the pool is shut down".into());
        let _share = match tenant {
            Some(t) => Some(
                tokio::time::timeout_at(until, self.share(t).acquire_owned())
                    .await
                    .map_err(|_| busy())?
                    .map_err(closed)?,
            ),
            None => None,
        };
        let _slot = tokio::time::timeout_at(until, self.slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(closed)?;
        let mut retried = false;
        loop {
            // A retry always gets a fresh process: the others may have died the same way.
            let idle = if retried {
                None
            } else {
                self.lock_idle().pop()
            };
            let mut process = match idle {
                Some(p) => p,
                None => self.spawn()?,
            };
            process.next_id += 1;
            wire.id = process.next_id;
            let body = serde_json::to_vec(&wire).map_err(|e| {
                SandboxError::Unavailable(format!("cannot encode the request: {e}"))
            })?;
            if body.len() > MAX_FRAME {
                self.lock_idle().push(process);
                return Err(SandboxError::Script {
                    code: "protocol.frame_too_large".into(),
                    message: format!(
                        "the request is {} bytes; at most {MAX_FRAME} are accepted",
                        body.len()
                    ),
                    part: None,
                    line: None,
                    column: None,
                });
            }
            let started = Instant::now();
            let result =
                tokio::time::timeout(self.config.deadline, process.exchange(&body, wire.id)).await;
            process.busy += started.elapsed();
            match result {
                Ok(Ok(reply)) => {
                    if process.busy < RETIRE_AFTER_BUSY {
                        self.lock_idle().push(process);
                    }
                    return reply.into_result();
                }
                Ok(Err(failure @ (Failure::GoneBefore | Failure::Died))) => {
                    let reason = process.exit_reason().await;
                    self.died.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(pid = process.pid, %reason, "rule sandbox process died");
                    drop(process);
                    // A process that died before it got the request never saw it; evaluation
                    // is pure, so the request is retried once on a fresh process. One that
                    // died while evaluating is not: the rule itself may be what killed it.
                    if matches!(failure, Failure::GoneBefore) && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(SandboxError::Killed {
                        reason: format!("the sandbox process died ({reason})"),
                    });
                }
                Ok(Err(Failure::Protocol(detail))) => {
                    self.killed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(pid = process.pid, %detail, "rule sandbox broke the protocol");
                    drop(process);
                    return Err(SandboxError::Killed {
                        reason: format!("the sandbox process broke the protocol ({detail})"),
                    });
                }
                Err(_elapsed) => {
                    self.killed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        pid = process.pid,
                        deadline_ms = self.config.deadline.as_millis() as u64,
                        "rule sandbox overran its deadline; killing it"
                    );
                    // Dropping it kills its process group (see `Drop for Process`).
                    drop(process);
                    return Err(SandboxError::Killed {
                        reason: format!(
                            "no answer within {} ms; the process was killed and will be replaced",
                            self.config.deadline.as_millis()
                        ),
                    });
                }
            }
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Process>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self) -> Result<Process, SandboxError> {
        let binary = &self.config.binary;
        let memory = self.config.memory_bytes;
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group, so a kill reaches anything it might start.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
        // which is async-signal-safe; it allocates nothing and takes no locks.
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_AS, memory, memory)?;
                setrlimit(Resource::RLIMIT_CPU, CPU_SECONDS, CPU_SECONDS + 1)?;
                setrlimit(Resource::RLIMIT_CORE, 0, 0)?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            SandboxError::Unavailable(format!(
                "cannot start the rule sandbox {}: {e} (set CRM_RULES_SANDBOX to its path)",
                binary.display()
            ))
        })?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SandboxError::Unavailable(
                "the sandbox's pipes are missing".into(),
            ));
        };
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line: String = line.chars().take(2000).collect();
                    tracing::warn!(pid, "rule sandbox: {line}");
                }
            });
        }
        self.spawned.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pid, "rule sandbox process started");
        Ok(Process {
            child,
            stdin,
            stdout,
            pid,
            next_id: 0,
            busy: Duration::ZERO,
        })
    }
}

/// The request frame; borrowed so a large record is serialised without a copy.
#[derive(Serialize)]
struct Wire<'a> {
    id: u64,
    op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<&'a str>,
    script: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    records: Option<&'a Value>,
}

#[derive(Deserialize)]
struct Reply {
    id: Option<u64>,
    ok: bool,
    #[serde(default)]
    matched: bool,
    #[serde(default)]
    effects: Vec<Effect>,
    #[serde(default)]
    operations: u64,
    #[serde(default)]
    needs: Option<RecordRef>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    code: String,
    message: String,
    #[serde(default)]
    part: Option<String>,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    column: Option<u32>,
}

impl Reply {
    fn into_result(self) -> Result<Self, SandboxError> {
        if self.ok {
            return Ok(self);
        }
        let e = self.error.unwrap_or(WireError {
            code: "internal.error".into(),
            message: "the sandbox refused the request without saying why".into(),
            part: None,
            line: None,
            column: None,
        });
        Err(SandboxError::Script {
            code: e.code,
            message: e.message,
            part: e.part,
            line: e.line,
            column: e.column,
        })
    }
}

enum Failure {
    /// Writing the request failed: the process was already gone before it got the request
    /// (died while idle: killed from outside, CPU limit).
    GoneBefore,
    /// The answer never came: the process died while working on this request.
    Died,
    /// It answered something that is not a valid reply.
    Protocol(String),
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    pid: u32,
    next_id: u64,
    /// Wall time spent on requests, an upper bound of its CPU time.
    busy: Duration,
}

impl Process {
    async fn exchange(&mut self, body: &[u8], id: u64) -> Result<Reply, Failure> {
        let len = (body.len() as u32).to_be_bytes();
        let write = async {
            self.stdin.write_all(&len).await?;
            self.stdin.write_all(body).await?;
            self.stdin.flush().await
        };
        write.await.map_err(|_| Failure::GoneBefore)?;

        let mut len = [0u8; 4];
        self.stdout
            .read_exact(&mut len)
            .await
            .map_err(|_| Failure::Died)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(Failure::Protocol(format!("a {len}-byte answer")));
        }
        let mut reply = vec![0u8; len];
        self.stdout
            .read_exact(&mut reply)
            .await
            .map_err(|_| Failure::Died)?;
        let reply: Reply = serde_json::from_slice(&reply)
            .map_err(|e| Failure::Protocol(format!("an unreadable answer: {e}")))?;
        if reply.id != Some(id) {
            return Err(Failure::Protocol(format!(
                "the answer to request {:?} arrived for {id}",
                reply.id
            )));
        }
        Ok(reply)
    }

    /// How the process ended, for the log and the error.
    async fn exit_reason(&mut self) -> String {
        match tokio::time::timeout(Duration::from_millis(200), self.child.wait()).await {
            Ok(Ok(status)) => match status.signal() {
                Some(9) => "killed by SIGKILL".to_owned(),
                Some(6) => "aborted, likely out of memory".to_owned(),
                Some(24) => "CPU time limit reached".to_owned(),
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exited with {status}"),
            },
            _ => "its pipe closed".to_owned(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // `id()` is None once the child has been reaped, so its pid (= group id) cannot have
        // been reused by an unrelated process. kill_on_drop then reaps it in the background.
        if let Some(pid) = self.child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}
