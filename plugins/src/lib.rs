//! crm-plugins: tenant-installed WebAssembly components (DESIGN §7).
//!
//! Owns the plugin ABI's host side (`wit/`, one binding module per WIT version in
//! [`bindings`]), the wasmtime [`runtime`] with its limits, the host calls a plugin makes
//! ([`calls`], through the record services with the install's own `Caller`), and the
//! tenant's plugin tables (`plugin_packages`, `plugin_installs`, `plugin_kv`, `plugin_runs`):
//! [`packages`], [`installs`], [`runs`]; events reach installs through [`events`] and
//! endpoints through [`endpoints`].
//!
//! Must not know: HTTP frameworks, other crates' tables. Every permission check happens in
//! the services called here with a `Caller` or an `Access`.

pub mod bindings;
pub mod calls;
pub mod endpoints;
pub mod events;
pub mod host;
pub mod installs;
pub mod limits;
pub mod manifest;
pub mod packages;
pub mod runs;
pub mod runtime;
pub mod service;
pub mod stats;

pub use bindings::WitVersion;
pub use calls::{CallEnv, Fault, InstallCtx, TenantAccess};
pub use events::{CallJob, EventJob, PluginEvent, PluginListener};
pub use host::HostState;
pub use limits::{Limits, PlatformLimits};
pub use manifest::Manifest;
pub use runtime::{CallError, CallStats, EventIn, Loaded, RequestIn, ResponseOut, Runtime};
pub use service::PluginHost;
