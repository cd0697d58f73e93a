//! Process-wide counters of plugin calls for `/metrics`: totals by trigger and outcome, and
//! per install for the most recently active installs (at most [`TRACKED_INSTALLS`], so the
//! label set stays bounded however many tenants install plugins).

use crate::runtime::CallStats;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, OnceLock};
use uuid::Uuid;

/// Installs with their own series.
pub const TRACKED_INSTALLS: usize = 1000;

/// What one install's calls added up to in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallCounters {
    pub calls: u64,
    pub failures: u64,
    pub fuel: u64,
    pub micros: u64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `(trigger, outcome)` → calls; trigger `event`, `rule` or `request`.
    pub calls: BTreeMap<(&'static str, &'static str), u64>,
    pub fuel: u64,
    pub micros: u64,
    pub installs: Vec<(Uuid, InstallCounters)>,
}

struct State {
    calls: BTreeMap<(&'static str, &'static str), u64>,
    fuel: u64,
    micros: u64,
    installs: lru::LruCache<Uuid, InstallCounters>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(State {
            calls: BTreeMap::new(),
            fuel: 0,
            micros: 0,
            installs: lru::LruCache::new(
                NonZeroUsize::new(TRACKED_INSTALLS).unwrap_or(NonZeroUsize::MIN),
            ),
        })
    })
}

/// Counts one call.
pub fn record(install: Uuid, trigger: &str, failed: bool, stats: &CallStats) {
    let trigger = match trigger {
        "event" => "event",
        "rule" => "rule",
        "request" => "request",
        _ => "other",
    };
    let outcome = if failed { "failed" } else { "succeeded" };
    let micros = stats.duration.as_micros().min(u64::MAX as u128) as u64;
    let Ok(mut s) = state().lock() else { return };
    *s.calls.entry((trigger, outcome)).or_default() += 1;
    s.fuel = s.fuel.saturating_add(stats.fuel_used);
    s.micros = s.micros.saturating_add(micros);
    let c = s
        .installs
        .get_or_insert_mut(install, InstallCounters::default);
    c.calls += 1;
    c.failures += u64::from(failed);
    c.fuel = c.fuel.saturating_add(stats.fuel_used);
    c.micros = c.micros.saturating_add(micros);
}

pub fn snapshot() -> Snapshot {
    let Ok(s) = state().lock() else {
        return Snapshot::default();
    };
    Snapshot {
        calls: s.calls.clone(),
        fuel: s.fuel,
        micros: s.micros,
        installs: s.installs.iter().map(|(k, v)| (*k, *v)).collect(),
    }
}
