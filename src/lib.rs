//! The `crm` server: configuration, the embedded Postgres default, the HTTP server (REST under
//! `/api/v1`, OpenAPI, docs, health and metrics), the command line, and benchmarks. It
//! assembles the library crates (`wiring`); domain logic lives in crm-core, crm-records,
//! crm-desk, crm-workflows and crm-tenants.

pub mod backup_cli;
pub mod bench;
pub mod cli;
pub mod config;
pub mod embedded_pg;
pub mod ext;
pub mod graphql;
pub mod metrics;
pub mod plugin_cli;
pub mod plugins;
pub mod portal_pages;
pub mod rest;
pub mod server;
pub mod signup_pool;
pub mod telemetry;
pub mod webapp;
pub mod wiring;
pub mod worker;
