//! Black-box tests of the `crm` server over HTTP against a real PostgreSQL. One binary, so the
//! crate links once; every test gets its own database cloned from a template, so they run in
//! parallel.

mod account;
mod activities;
mod api_keys;
mod audit;
mod authz;
mod cli;
mod fields;
mod helpers;
mod isolation;
mod mail;
mod migrate;
mod ops;
mod records;
mod records_query;
mod reminders;
mod roles;
mod sales;
mod teams;
mod tickets;
mod users;
