//! The service desk: tickets (an object of the record engine) with a per-tenant status
//! machine, SLA policies on business-hours calendars with durable warning/breach timers, team
//! assignment, the conversation, satisfaction surveys and the messages all of it sends.

pub mod assignment;
pub mod attachments;
pub mod comments;
pub mod csat;
pub mod notices;
pub mod portal;
pub mod reports;
pub mod sla;
pub mod tickets;
pub mod workflow;
