//! `crm bench …`: measurements run against a real database with the server's own code, one
//! submodule per benchmark; figures are printed, never asserted.

mod api;
mod backup;
mod dataset;
mod export;
mod graphql;
mod load;
mod objects;
mod plugins;
mod provision;
mod raw;
mod records;
mod rules;
mod signup;
mod tenants;
mod workload;

pub use api::{api, ApiBench};
pub use backup::backup;
pub use export::export;
pub use graphql::{graphql, GraphqlBench};
pub use objects::objects;
pub use plugins::plugins;
pub use provision::provision;
pub use records::records;
pub use rules::rules;
pub use signup::signup;
pub use tenants::tenants;

use std::time::Duration;

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
