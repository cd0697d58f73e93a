//! What a transaction of the job worker remembers between the rule runs it carries (up to 32
//! jobs of one tenant share one): the crate's typed memo in [`TenantTx::memo`].
//!
//! [`TenantTx::memo`]: crm_core::db::TenantTx::memo

use crate::executor::RunAs;
use crate::jobs::EventRow;
use crate::rules::RuleVersion;
use crm_records::{ObjectKey, ObjectSchema};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// A record read ahead, by (object, run-as role, saver, id): what the rule may see of it.
pub(crate) type RecordKey = (ObjectKey, String, Option<Uuid>, Uuid);

/// The workflows' per-transaction memo.
#[derive(Default)]
pub(crate) struct WorkflowMemo {
    /// Rule versions never change once saved.
    pub versions: HashMap<i64, Arc<RuleVersion>>,
    /// Rule, event and prior run of each run job of the group, by idempotency key.
    pub events: HashMap<String, EventRow>,
    /// Rules turned off by a run earlier in this transaction.
    pub turned_off: HashSet<Uuid>,
    /// Run-as roles' grants, by (role, saver).
    pub run_as: HashMap<(String, Option<Uuid>), Arc<RunAs>>,
    /// Objects' fields (rule effects never change fields).
    pub schemas: HashMap<ObjectKey, Arc<ObjectSchema>>,
    /// Records read ahead for the group's runs.
    pub records: HashMap<RecordKey, Arc<Value>>,
    /// An effect wrote records: records read ahead may be stale, runs read theirs afresh.
    pub records_written: bool,
    /// Whether users are active (rule effects never change users).
    pub active_users: HashMap<Uuid, bool>,
}
