//! What one call of a plugin may use. Every install has [`Limits`] (the defaults unless its
//! admin chose lower or, within the platform's maxima, higher); the platform's
//! [`PlatformLimits`] (`[plugins]` in crm.toml) bound them all.

use serde::{Deserialize, Serialize};

/// Limits of an install's calls. Unset fields take the platform defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of the component, MiB.
    pub memory_mb: u32,
    /// Fuel (about one unit per wasm instruction) per call.
    pub fuel: u64,
    /// Wall time of an endpoint call (`handle-request`), ms. Host calls count.
    pub request_ms: u64,
    /// Wall time of an event (`on-event`), ms.
    pub event_ms: u64,
    /// Input size (event data, request body), bytes.
    pub input_bytes: usize,
    /// Output size (actions, response body), bytes.
    pub output_bytes: usize,
    /// Log text kept per call, bytes.
    pub log_bytes: usize,
    /// `http-fetch` calls per plugin call.
    pub http_requests: u32,
    /// Time of one `http-fetch`, ms.
    pub http_ms: u64,
    /// Response body of one `http-fetch`, bytes.
    pub http_bytes: usize,
    /// Total size of the install's key/value data, bytes.
    pub kv_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            fuel: 50_000_000,
            request_ms: 50,
            event_ms: 30_000,
            input_bytes: 1 << 20,
            output_bytes: 256 << 10,
            log_bytes: 16 << 10,
            http_requests: 10,
            http_ms: 5_000,
            http_bytes: 1 << 20,
            kv_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// Every value within `max` (each one capped, none raised).
    pub fn within(self, max: &Limits) -> Limits {
        Limits {
            memory_mb: self.memory_mb.min(max.memory_mb),
            fuel: self.fuel.min(max.fuel),
            request_ms: self.request_ms.min(max.request_ms),
            event_ms: self.event_ms.min(max.event_ms),
            input_bytes: self.input_bytes.min(max.input_bytes),
            output_bytes: self.output_bytes.min(max.output_bytes),
            log_bytes: self.log_bytes.min(max.log_bytes),
            http_requests: self.http_requests.min(max.http_requests),
            http_ms: self.http_ms.min(max.http_ms),
            http_bytes: self.http_bytes.min(max.http_bytes),
            kv_bytes: self.kv_bytes.min(max.kv_bytes),
        }
    }

    /// The first value above `max`, as `(name, asked, allowed)`.
    pub fn exceeds(&self, max: &Limits) -> Option<(&'static str, u64, u64)> {
        let pairs: [(&'static str, u64, u64); 11] = [
            ("memory_mb", self.memory_mb.into(), max.memory_mb.into()),
            ("fuel", self.fuel, max.fuel),
            ("request_ms", self.request_ms, max.request_ms),
            ("event_ms", self.event_ms, max.event_ms),
            (
                "input_bytes",
                self.input_bytes as u64,
                max.input_bytes as u64,
            ),
            (
                "output_bytes",
                self.output_bytes as u64,
                max.output_bytes as u64,
            ),
            ("log_bytes", self.log_bytes as u64, max.log_bytes as u64),
            (
                "http_requests",
                self.http_requests.into(),
                max.http_requests.into(),
            ),
            ("http_ms", self.http_ms, max.http_ms),
            ("http_bytes", self.http_bytes as u64, max.http_bytes as u64),
            ("kv_bytes", self.kv_bytes as u64, max.kv_bytes as u64),
        ];
        pairs
            .into_iter()
            .find(|(_, asked, allowed)| asked > allowed)
    }
}

/// The platform's plugin settings (`[plugins]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatformLimits {
    /// What an install gets unless its admin says otherwise.
    pub defaults: Limits,
    /// What no install may exceed.
    pub max: Limits,
    /// Largest package, bytes.
    pub package_bytes: usize,
    /// Whether tenant admins may upload packages (with `plugins:manage`).
    pub tenant_uploads: bool,
    /// Compiled components kept in memory (ready to instantiate).
    pub cached_components: usize,
    /// Failed runs in a row after which an install is disabled and its admins notified.
    pub disable_after_failures: i32,
    /// Calls of one install running at once in this process (events and endpoints): one
    /// busy install cannot take every worker.
    pub concurrent_calls_per_install: usize,
}

impl Default for PlatformLimits {
    fn default() -> Self {
        PlatformLimits {
            defaults: Limits::default(),
            max: Limits {
                memory_mb: 256,
                fuel: 2_000_000_000,
                request_ms: 10_000,
                event_ms: 120_000,
                input_bytes: 8 << 20,
                output_bytes: 4 << 20,
                log_bytes: 64 << 10,
                http_requests: 50,
                http_ms: 30_000,
                http_bytes: 8 << 20,
                kv_bytes: 16 << 20,
            },
            package_bytes: 20 << 20,
            tenant_uploads: true,
            cached_components: 64,
            disable_after_failures: 10,
            concurrent_calls_per_install: 4,
        }
    }
}
