//! Black-box tests of the `crm` server over HTTP against a real PostgreSQL. One binary, so the
//! crate links once; every test gets its own database cloned from a template, so they run in
//! parallel.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used)]

mod access;
mod account;
mod activities;
mod api_keys;
mod approvals;
mod attachments;
mod audit;
mod authz;
mod backup;
mod backup_same_tenant;
mod cli;
mod export;
mod fields;
mod graphql;
mod helpers;
mod imports;
mod isolation;
mod mail;
mod mail_policy;
mod mfa;
mod migrate;
mod objects;
mod objects_record_types;
mod objects_relations;
mod objects_rollups;
mod objects_rules;
mod openapi;
mod ops;
mod password_policy;
mod plugins;
mod plugins_examples;
mod plugins_ext;
mod portal;
mod portal_browser;
mod read_limit;
mod records;
mod records_query;
mod reminders;
mod request_caches;
mod roles;
mod rules;
mod rules_crash;
mod rules_fairness;
mod s3;
mod sales;
mod service_report;
mod services;
mod signup_pool;
mod teams;
mod tickets;
mod users;
mod webapp_browser;
