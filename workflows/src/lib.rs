//! crm-workflows: tenant rules and approvals. Rules are rhai, and rhai never runs in this
//! process: casbin, linked into the server, compiles out every rhai limit (DESIGN.md §6), so
//! scripts are compiled and evaluated by `crm-rules-sandbox` (workflows/sandbox, its own Cargo
//! workspace, built by this crate's build.rs) in a pool of limited processes that
//! `sandbox::SandboxPool` feeds over pipes. A script only returns declarative effects;
//! `executor` carries them out through the crm-core services under the rule's own principal.
//!
//! - `rules`: versioned definitions, the run log, auto-disable after failures in a row.
//! - `objects`: the objects rules and approvals may name (built-in or the tenant's own).
//! - `trigger`: record events, cron schedules in a time zone, manual runs, approval decisions.
//! - `manage`: what callers do with rules and the workflow settings, checked and audited.
//! - `dry_run`: a rule tried on a record, writing nothing (the caller's read rights apply).
//! - `executor`: one run (sandbox evaluation + effects in a savepoint + the run-log entry);
//!   `effects` carries out what a script returned; `reads` gives scripts the records they
//!   read with `get_record`, between sandbox passes.
//! - `listener`: hears record changes (rule fan-out, the approval lock) through crm-records' hooks.
//! - `jobs`: the durable jobs (`rule.run`, `rule.cron`, `rule.action`, `webhook.send`).
//! - `approvals`: multi-step approvals that lock their record; `approval_service`: what
//!   callers do with them, checked.
//!
//! This crate must never depend on rhai.

pub mod approval_service;
pub mod approvals;
pub mod dry_run;
mod effects;
pub mod executor;
pub mod jobs;
pub mod listener;
pub mod manage;
mod memo;
pub mod objects;
pub mod payloads;
pub mod reads;
mod rule_mail;
pub mod rules;
pub mod sandbox;
pub mod trigger;

pub use crm_rules_protocol::{ApprovalStep, Effect, StepMode};
pub use executor::RuleEngine;
pub use sandbox::{EvalOutcome, EvalRequest, PoolConfig, PoolStats, SandboxError, SandboxPool};
