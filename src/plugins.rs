//! The plugin host as this server configures it: one wasmtime runtime with its compile
//! cache under `data_dir/plugins/compiled`, the platform's limits (`[plugins]`), the
//! outbound client and the rule executor for plugins' actions.

use crate::config::Config;
use crm_core::crypto::MasterKey;
use crm_core::db::Db;
use std::sync::Arc;

/// Builds the host. The runtime's engine and linkers are fixed by the code, so failing to
/// build them is a bug, not a configuration problem.
pub fn host(
    config: &Config,
    db: Db,
    master: Option<Arc<MasterKey>>,
    rules: crm_workflows::RuleEngine,
) -> crm_plugins::PluginHost {
    let runtime = crm_plugins::Runtime::new(
        Some(config.data_dir.join("plugins").join("compiled")),
        config.plugins.cached_components,
        config.plugins.max.memory_mb,
    )
    .expect("the plugin runtime's engine and linkers are built from fixed settings");
    crm_plugins::PluginHost {
        runtime,
        db,
        master,
        outbound: crm_core::outbound::Outbound::new(config.outbound.clone(), "TC-CRM-Plugin/1"),
        platform: config.plugins.clone(),
        max_fields: config.objects.max_fields,
        rules,
        gates: Default::default(),
    }
}
