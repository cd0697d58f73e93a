//! The record engine and the objects it serves (customers, contacts): metadata-driven
//! validation, dynamic SQL over validated identifiers, history, outbox events, scopes,
//! masking and field encryption. Object-specific behaviour (customer dedupe and merge) sits
//! in its own module as hooks around the one engine.

pub mod customers;
pub mod engine;
pub mod export;
pub mod fields;
pub mod history;
pub mod idempotency;
pub mod keys;
pub mod meta;
pub mod query;
pub mod reminders;
pub mod reports;
pub mod sales;
pub mod schema;
pub mod scope;
pub mod service;
pub mod tags;
pub mod timeline;
pub mod values;

pub use engine::{Access, Visibility};
pub use meta::{FieldKey, FieldType, ObjectKey, RecordAction};
pub use schema::ObjectSchema;
pub use scope::RecordScope;
