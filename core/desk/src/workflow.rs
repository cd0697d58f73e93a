//! The ticket status machine of a tenant: its states (each counting or pausing SLA time, and
//! open, resolved or closed), the initial state, the allowed transitions and the ticket types.
//! One JSON document per tenant, replaced as a whole.

use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::{Error, FieldError, Result};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use std::collections::{BTreeMap, HashSet};

/// Whether SLA time runs in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    Counting,
    Paused,
}

/// What a state means for the ticket's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StateCategory {
    /// Being worked on or waiting.
    #[default]
    Open,
    /// Solved: stops the resolution clock and sends the satisfaction survey.
    Resolved,
    /// Done for good.
    Closed,
}

/// One state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub key: String,
    pub name: String,
    /// Names in other languages (`{"en": "Open"}`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub sla: SlaClock,
    #[serde(default)]
    pub category: StateCategory,
}

/// The whole status machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub initial: String,
    pub states: Vec<State>,
    /// From a state to the states it may move to.
    pub transitions: BTreeMap<String, Vec<String>>,
    /// Ticket types (`consultation`, `complaint`, …), extendable by the tenant.
    pub types: Vec<String>,
}

/// The types every tenant starts with.
pub const DEFAULT_TYPES: &[&str] = &[
    "consultation",
    "complaint",
    "service_request",
    "after_sales",
];

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 40
        && k.starts_with(|c: char| c.is_ascii_lowercase())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Workflow {
    pub fn state(&self, key: &str) -> Option<&State> {
        self.states.iter().find(|s| s.key == key)
    }

    /// The states `from` may move to.
    pub fn allowed_from(&self, from: &str) -> Vec<String> {
        self.transitions.get(from).cloned().unwrap_or_default()
    }

    /// Checks a status change; 409 listing the allowed targets when it is not allowed.
    pub fn check_transition(&self, from: &str, to: &str) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if self.state(to).is_none() {
            return Err(Error::invalid_field(
                "status",
                "unknown_status",
                format!(
                    "'{to}' is not a ticket status; use one of: {}",
                    self.keys().join(", ")
                ),
            ));
        }
        let allowed = self.allowed_from(from);
        if allowed.iter().any(|a| a == to) {
            Ok(())
        } else {
            Err(Error::Transition {
                code: "ticket.invalid_transition",
                message: if allowed.is_empty() {
                    format!("a ticket in '{from}' cannot change status")
                } else {
                    format!(
                        "a ticket in '{from}' cannot move to '{to}'; it may move to: {}",
                        allowed.join(", ")
                    )
                },
                allowed,
            })
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        self.states.iter().map(|s| s.key.as_str()).collect()
    }

    /// Checks the document; every problem is named by its JSON path.
    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        if self.states.is_empty() {
            errors.push(FieldError::new(
                "states",
                "required",
                "define at least one state",
            ));
        }
        if self.states.len() > 50 {
            errors.push(FieldError::new("states", "too_many", "at most 50 states"));
        }
        for (i, s) in self.states.iter().enumerate() {
            if !valid_key(&s.key) {
                errors.push(FieldError::new(
                    format!("states[{i}].key"),
                    "invalid",
                    "use 1-40 lower-case letters, digits or _, starting with a letter",
                ));
            }
            if !seen.insert(s.key.as_str()) {
                errors.push(FieldError::new(
                    format!("states[{i}].key"),
                    "duplicate",
                    format!("state '{}' is defined twice", s.key),
                ));
            }
            if s.name.trim().is_empty() || s.name.chars().count() > 60 {
                errors.push(FieldError::new(
                    format!("states[{i}].name"),
                    "invalid",
                    "give the state a name of 1-60 characters",
                ));
            }
        }
        match self.state(&self.initial) {
            None => errors.push(FieldError::new(
                "initial",
                "unknown_state",
                format!("'{}' is not one of the states", self.initial),
            )),
            Some(s) if s.category != StateCategory::Open => errors.push(FieldError::new(
                "initial",
                "invalid",
                "a new ticket must start in an open state",
            )),
            Some(_) => {}
        }
        for (from, targets) in &self.transitions {
            if self.state(from).is_none() {
                errors.push(FieldError::new(
                    format!("transitions.{from}"),
                    "unknown_state",
                    format!("'{from}' is not one of the states"),
                ));
            }
            for (i, to) in targets.iter().enumerate() {
                if self.state(to).is_none() {
                    errors.push(FieldError::new(
                        format!("transitions.{from}[{i}]"),
                        "unknown_state",
                        format!("'{to}' is not one of the states"),
                    ));
                }
            }
        }
        if !self
            .states
            .iter()
            .any(|s| s.category != StateCategory::Open)
        {
            errors.push(FieldError::new(
                "states",
                "no_final_state",
                "add a state with category resolved or closed, or tickets can never end",
            ));
        }
        let mut types = HashSet::new();
        for (i, t) in self.types.iter().enumerate() {
            if !valid_key(t) {
                errors.push(FieldError::new(
                    format!("types[{i}]"),
                    "invalid",
                    "use 1-40 lower-case letters, digits or _, starting with a letter",
                ));
            }
            if !types.insert(t.as_str()) {
                errors.push(FieldError::new(
                    format!("types[{i}]"),
                    "duplicate",
                    format!("type '{t}' is listed twice"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(errors))
        }
    }

    /// Checks a ticket type against the list.
    pub fn check_type(&self, ty: &str) -> Result<()> {
        if self.types.iter().any(|t| t == ty) {
            Ok(())
        } else {
            Err(Error::invalid_field(
                "type",
                "unknown_type",
                format!(
                    "'{ty}' is not a ticket type; use one of: {} (admins add types in the ticket workflow)",
                    self.types.join(", ")
                ),
            ))
        }
    }
}

/// The tenant's status machine, as a caller reads it (`tickets:read`).
pub async fn get(tx: &mut TenantTx, caller: &Caller) -> Result<Workflow> {
    caller.require(Permission::TicketsRead)?;
    load(tx).await
}

/// The tenant's status machine.
pub async fn load(tx: &mut TenantTx) -> Result<Workflow> {
    let spec: Json<Workflow> = sqlx::query_scalar("SELECT spec FROM ticket_workflow")
        .fetch_one(tx.conn())
        .await?;
    Ok(spec.0)
}

/// Replaces the status machine. States that live tickets are in, and types they have, must
/// stay (409 naming them). Needs `tenant:manage`.
pub async fn save(tx: &mut TenantTx, caller: &Caller, workflow: &Workflow) -> Result<Workflow> {
    caller.require(Permission::TenantManage)?;
    workflow.validate()?;
    sqlx::query("SELECT spec FROM ticket_workflow FOR UPDATE")
        .execute(tx.conn())
        .await?;
    let keys: Vec<String> = workflow.states.iter().map(|s| s.key.clone()).collect();
    let orphaned: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM tickets WHERE deleted_at IS NULL AND NOT (status = ANY($1)) \
         GROUP BY status ORDER BY status",
    )
    .bind(&keys)
    .fetch_all(tx.conn())
    .await?;
    if !orphaned.is_empty() {
        let list: Vec<String> = orphaned
            .iter()
            .map(|(s, n)| format!("'{s}' ({n} tickets)"))
            .collect();
        return Err(Error::conflict(
            "ticket_workflow.state_in_use",
            format!(
                "tickets are in states this workflow removes: {}; move them first",
                list.join(", ")
            ),
        ));
    }
    let orphaned_types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT type FROM tickets WHERE deleted_at IS NULL AND type IS NOT NULL \
           AND NOT (type = ANY($1)) ORDER BY type",
    )
    .bind(&workflow.types)
    .fetch_all(tx.conn())
    .await?;
    if !orphaned_types.is_empty() {
        return Err(Error::conflict(
            "ticket_workflow.type_in_use",
            format!(
                "tickets have types this workflow removes: {}; change them first",
                orphaned_types.join(", ")
            ),
        ));
    }
    sqlx::query("UPDATE ticket_workflow SET spec = $1, updated_at = now()")
        .bind(Json(workflow))
        .execute(tx.conn())
        .await?;
    Ok(workflow.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_workflow() -> Workflow {
        let sql = include_str!("../../../tenants/src/tenant_sql/0006_service_desk.sql");
        let start = sql.find("VALUES ('{").expect("default workflow") + "VALUES ('".len();
        let end = sql[start..].find("}');").expect("end") + start + 1;
        serde_json::from_str(&sql[start..end]).expect("default workflow parses")
    }

    #[test]
    fn the_default_workflow_is_valid_and_reopens_from_resolved() {
        let w = default_workflow();
        w.validate().expect("valid");
        assert_eq!(w.initial, "new");
        w.check_transition("new", "open").expect("new → open");
        w.check_transition("resolved", "open").expect("reopen");
        w.check_transition("open", "open").expect("no change");
        assert_eq!(w.state("pending").map(|s| s.sla), Some(SlaClock::Paused));
        assert_eq!(
            w.state("resolved").map(|s| s.category),
            Some(StateCategory::Resolved)
        );
    }

    #[test]
    fn a_disallowed_transition_lists_the_allowed_ones() {
        let w = default_workflow();
        match w.check_transition("closed", "open") {
            Err(Error::Transition { allowed, .. }) => assert!(allowed.is_empty()),
            other => panic!("expected a transition error, got {other:?}"),
        }
        match w.check_transition("resolved", "pending") {
            Err(Error::Transition {
                allowed, message, ..
            }) => {
                assert_eq!(allowed, ["open", "closed"]);
                assert!(message.contains("open, closed"));
            }
            other => panic!("expected a transition error, got {other:?}"),
        }
        assert!(matches!(
            w.check_transition("new", "nowhere"),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn validation_names_each_problem() {
        let mut w = default_workflow();
        w.initial = "resolved".into();
        w.states.push(w.states[0].clone());
        w.transitions.insert("ghost".into(), vec!["limbo".into()]);
        w.types.push("Bad Type".into());
        let Err(Error::Invalid { fields, .. }) = w.validate() else {
            panic!("invalid expected");
        };
        let paths: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert!(paths.contains(&"initial"), "{paths:?}");
        assert!(paths.contains(&"states[5].key"), "{paths:?}");
        assert!(paths.contains(&"transitions.ghost"), "{paths:?}");
        assert!(paths.contains(&"transitions.ghost[0]"), "{paths:?}");
        assert!(paths.contains(&"types[4]"), "{paths:?}");
    }
}
