//! crm-records: the record engine and the objects it serves (customers, contacts,
//! opportunities, activities, tasks, tickets' columns, and each tenant's custom objects): metadata-driven validation,
//! dynamic SQL over validated identifiers, history, outbox events, scopes, masking and field
//! encryption, the customer timeline and calendar feed, exports (CSV, XLSX, PDF).
//!
//! Higher crates plug in through [`hooks`]: per-object hooks (the desk's tickets) and
//! listeners (workflows' rule fan-out and approval lock). This crate never names their tables.
//! It sits on crm-core (the kernel) and knows nothing of HTTP.

mod access;
pub mod bulk;
pub mod calendar;
pub mod cross;
pub mod customers;
pub mod engine;
pub mod expand;
pub mod export;
pub mod field_service;
pub mod fields;
pub mod history;
pub mod hooks;
pub mod idempotency;
pub mod labels;
pub mod meta;
pub mod objects;
pub mod pipelines;
pub mod query;
pub mod recipients;
pub mod record_types;
pub mod register;
pub mod relations;
pub mod reminders;
pub mod reports;
pub mod rollups;
pub mod sales;
pub mod schema;
pub mod schema_cache;
pub mod scope;
pub mod service;
pub mod tags;
pub mod timeline;
pub mod values;

pub use access::Access;
pub use engine::Visibility;
pub use meta::{FieldKey, FieldType, ObjectKey, RecordAction};
pub use schema::ObjectSchema;
pub use schema_cache::SchemaCache;
pub use scope::{CallerScope, RecordScope};
