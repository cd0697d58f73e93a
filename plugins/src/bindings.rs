//! One binding module per supported WIT version of `crm:plugin`, generated from
//! `plugins/wit/v*/plugin.wit`. A new minor version adds a module here and a case to
//! [`WitVersion`]; the older modules stay, so a plugin built against 1.0 keeps loading.

/// `crm:plugin@1.0.0`.
pub mod v1_0 {
    wasmtime::component::bindgen!({
        path: "wit/v1.0",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

/// `crm:plugin@1.1.0`: 1.0 plus `records.delete`.
pub mod v1_1 {
    wasmtime::component::bindgen!({
        path: "wit/v1.1",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

/// A WIT version the host can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WitVersion {
    V1_0,
    V1_1,
}

impl WitVersion {
    pub const ALL: [WitVersion; 2] = [WitVersion::V1_0, WitVersion::V1_1];

    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V1_0 => "1.0.0",
            WitVersion::V1_1 => "1.1.0",
        }
    }

    pub fn parse(raw: &str) -> Option<WitVersion> {
        WitVersion::ALL.into_iter().find(|v| v.as_str() == raw)
    }

    /// The version a component exports its handler at (`crm:plugin/handler@1.0.0`).
    pub fn of_export(name: &str) -> Option<WitVersion> {
        WitVersion::parse(name.strip_prefix("crm:plugin/handler@")?)
    }
}
