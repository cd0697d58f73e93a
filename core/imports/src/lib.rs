//! crm-imports: CSV and Excel files brought into any object (built-in or custom). An upload
//! is read once into a normalised CSV ([`source`]); its columns are mapped to fields, by the
//! client or by suggestion ([`mapping`]); the import then runs as durable jobs that write
//! chunk by chunk through `crm_records::bulk` — the engine's own validation, dedupe,
//! scopes, history and events — with every refused or skipped row in an error report
//! ([`report`]), and can be undone row by row ([`undo`]). [`service`] is what the API calls.
//!
//! It sits on crm-records and crm-core; it owns the `imports`, `import_rows` and
//! `import_errors` tables ([`store`]) and names no other crate's tables.

pub mod convert;
pub mod mapping;
pub mod report;
pub mod run;
pub mod service;
pub mod source;
pub mod store;
pub mod undo;

use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantTx};
use crm_core::error::{Error, Result};
use crm_core::files::FileStore;
use crm_core::jobs::{ClaimedJob, Handlers, JobFailure, JobHandler, Payload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// What imports need from the server.
pub struct Deps {
    pub db: Db,
    pub files: Arc<dyn FileStore>,
    pub master: Option<Arc<MasterKey>>,
    /// How long an import's files are kept after it was started.
    pub retention: chrono::Duration,
}

/// `import.run`: read and write the next chunks of an import.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportJob {
    pub import_id: Uuid,
}

impl Payload for ImportJob {
    const KIND: &'static str = "import.run";
}

/// `import.undo`: undo the next rows of an import.
#[derive(Debug, Serialize, Deserialize)]
pub struct UndoJob {
    pub import_id: Uuid,
}

impl Payload for UndoJob {
    const KIND: &'static str = "import.undo";
}

struct RunHandler(Arc<Deps>);

#[async_trait::async_trait]
impl JobHandler for RunHandler {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let ImportJob { import_id } = job.payload_as()?;
        run::run(&self.0, tx, import_id).await.map_err(retry)
    }
}

struct UndoHandler(Arc<Deps>);

#[async_trait::async_trait]
impl JobHandler for UndoHandler {
    async fn run(
        &self,
        tx: &mut TenantTx,
        job: &ClaimedJob,
    ) -> std::result::Result<(), JobFailure> {
        let UndoJob { import_id } = job.payload_as()?;
        undo::run(&self.0, tx, import_id).await.map_err(retry)
    }
}

/// What reaches the job runner failed the whole chunk (the database or the file store was
/// away): try again later, from where the import stands.
fn retry(e: Error) -> JobFailure {
    JobFailure::Retry(e.to_string())
}

/// Registers the import jobs.
pub fn register(handlers: &mut Handlers, deps: Arc<Deps>) {
    handlers.register::<ImportJob>(Arc::new(RunHandler(deps.clone())));
    handlers.register::<UndoJob>(Arc::new(UndoHandler(deps)));
}

/// The zone of date-times without an offset: the import's, else Asia/Shanghai.
pub fn zone_of(name: Option<&str>) -> Result<chrono_tz::Tz> {
    let name = name.unwrap_or("Asia/Shanghai");
    name.parse().map_err(|_| {
        Error::invalid_field(
            "options.time_zone",
            "unknown_time_zone",
            format!("unknown time zone '{name}'; use an IANA name such as \"Asia/Shanghai\""),
        )
    })
}

/// `[imports]` in crm.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportLimits {
    /// Largest file one import takes (bytes).
    pub max_bytes: u64,
    /// Days an import's files (the original and its normalised copy) are kept.
    pub retention_days: u32,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_bytes: 512 * 1024 * 1024,
            retention_days: 30,
        }
    }
}
