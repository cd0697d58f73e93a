//! What starts a rule: a record event, a schedule (cron in a time zone) or a person (manual).
//! Parsed and checked when the rule is saved, so a typo is a 422 rather than a rule that
//! silently never fires.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use crm_core::{Error, Result};
use crm_records::meta::ObjectKey;
use serde_json::{json, Value};

/// The actions whose events a rule may listen to (`<object>.<action>`).
pub const EVENT_ACTIONS: &[&str] = &[
    "created",
    "updated",
    "deleted",
    "restored",
    "purged",
    "merged",
    "assigned",
    "status_changed",
    "commented",
    "attachment_added",
    "attachment_deleted",
    "reminder_due",
    "sla_warning",
    "sla_breached",
    "approval_requested",
    "approval_decided",
    "approval_escalated",
    "approval_recalled",
];

/// A parsed trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// `{"event": "customer.updated", "fields": ["level"]}`: fires on the event; for updates
    /// with `fields`, only when one of them changed. `"imports": false` skips the records an
    /// import writes (a bulk load need not send a welcome mail per row).
    Event {
        event: String,
        fields: Option<Vec<String>>,
        imports: bool,
    },
    /// `{"schedule": "0 9 * * 1-5", "timezone": "Asia/Shanghai"}`: fires at each matching
    /// minute and runs once for every live record of the object that meets the condition.
    Schedule { cron: String, timezone: Tz },
    /// `{"manual": true}`: runs when someone asks (`POST /rules/{id}/run`).
    Manual,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_field("trigger", "invalid_trigger", message)
}

impl Trigger {
    /// Parses a trigger of a rule on `object`. `default_tz` is the company's time zone.
    pub fn parse(object: ObjectKey, raw: &Value, default_tz: &str) -> Result<Trigger> {
        let Some(map) = raw.as_object() else {
            return Err(invalid(
                "the trigger is an object: {\"event\": \"customer.created\"}, {\"schedule\": \"0 9 * * 1-5\", \"timezone\": \"Asia/Shanghai\"}, {\"manual\": true} or {\"approval\": \"decided\"}",
            ));
        };
        let allowed: &[&str] = if map.contains_key("event") {
            &["event", "fields", "imports"]
        } else if map.contains_key("schedule") {
            &["schedule", "timezone"]
        } else if map.contains_key("manual") {
            &["manual"]
        } else if map.contains_key("approval") {
            &["approval"]
        } else {
            return Err(invalid(
                "name what starts the rule: \"event\", \"schedule\", \"manual\" or \"approval\"",
            ));
        };
        if let Some(extra) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "this trigger does not take '{extra}'; it takes {}",
                allowed.join(", ")
            )));
        }
        if let Some(event) = map.get("event") {
            let event = event
                .as_str()
                .ok_or_else(|| invalid("\"event\" is a string such as \"customer.created\""))?;
            let prefix = object.singular();
            let action = event
                .strip_prefix(prefix)
                .and_then(|a| a.strip_prefix('.'))
                .ok_or_else(|| {
                    invalid(format!(
                        "a rule on {} listens to {prefix}.* events, not '{event}'",
                        object.as_str()
                    ))
                })?;
            if !EVENT_ACTIONS.contains(&action) {
                return Err(invalid(format!(
                    "unknown event '{event}'; the events are {prefix}.{}",
                    EVENT_ACTIONS.join(&format!(", {prefix}."))
                )));
            }
            let fields = match map.get("fields") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) if action == "updated" => {
                    let mut out = Vec::with_capacity(items.len());
                    for f in items {
                        match f.as_str() {
                            Some(f) if !f.is_empty() && f.len() <= 70 => out.push(f.to_owned()),
                            _ => return Err(invalid(
                                "\"fields\" lists field keys such as [\"level\", \"cf_region\"]",
                            )),
                        }
                    }
                    if out.is_empty() {
                        return Err(invalid(
                            "\"fields\" must name at least one field (leave it out to fire on every update)",
                        ));
                    }
                    Some(out)
                }
                Some(_) if action != "updated" => {
                    return Err(invalid("\"fields\" only applies to .updated events"))
                }
                Some(_) => return Err(invalid("\"fields\" is an array of field keys")),
            };
            let imports = match map.get("imports") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(invalid(
                        "\"imports\" is true (the default: imported records fire the rule too) or false",
                    ))
                }
            };
            return Ok(Trigger::Event {
                event: event.to_owned(),
                fields,
                imports,
            });
        }
        if let Some(cron) = map.get("schedule") {
            let cron = cron
                .as_str()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    invalid("\"schedule\" is a cron expression such as \"0 9 * * 1-5\"")
                })?;
            let tz_name = match map.get("timezone") {
                None | Some(Value::Null) => default_tz,
                Some(Value::String(s)) => s.as_str(),
                Some(_) => {
                    return Err(invalid(
                        "\"timezone\" is an IANA name such as \"Asia/Shanghai\"",
                    ))
                }
            };
            let timezone: Tz = tz_name.parse().map_err(|_| {
                invalid(format!(
                    "unknown time zone '{tz_name}'; use an IANA name such as \"Asia/Shanghai\""
                ))
            })?;
            if cron.split_whitespace().count() != 5 {
                return Err(invalid(format!(
                    "'{cron}' is not a five-field cron expression (minute hour day-of-month month day-of-week)"
                )));
            }
            let trigger = Trigger::Schedule {
                cron: cron.to_owned(),
                timezone,
            };
            trigger
                .next_fire(Utc::now())
                .map_err(|e| invalid(format!("'{cron}' is not a cron expression: {e}")))?;
            return Ok(trigger);
        }
        if let Some(manual) = map.get("manual") {
            return match manual {
                Value::Bool(true) => Ok(Trigger::Manual),
                _ => Err(invalid("a manual trigger is {\"manual\": true}")),
            };
        }
        match map.get("approval").and_then(Value::as_str) {
            Some("decided") => Ok(Trigger::Event {
                event: format!("{}.approval_decided", object.singular()),
                fields: None,
                imports: true,
            }),
            _ => Err(invalid(
                "an approval trigger is {\"approval\": \"decided\"} (fires when an approval of the record is approved or rejected)",
            )),
        }
    }

    /// `event`, `schedule` or `manual`.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Event { .. } => "event",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Manual => "manual",
        }
    }

    /// The event name, for event triggers.
    pub fn event(&self) -> Option<&str> {
        match self {
            Trigger::Event { event, .. } => Some(event),
            _ => None,
        }
    }

    /// The changed fields an update trigger waits for.
    pub fn fields(&self) -> Option<&[String]> {
        match self {
            Trigger::Event { fields, .. } => fields.as_deref(),
            _ => None,
        }
    }

    /// The canonical JSON form (what the API shows and the version stores).
    pub fn to_json(&self) -> Value {
        match self {
            Trigger::Event {
                event,
                fields,
                imports,
            } => {
                let mut out = json!({ "event": event });
                if let Some(f) = fields {
                    out["fields"] = json!(f);
                }
                if !imports {
                    out["imports"] = json!(false);
                }
                out
            }
            Trigger::Schedule { cron, timezone } => {
                json!({ "schedule": cron, "timezone": timezone.name() })
            }
            Trigger::Manual => json!({ "manual": true }),
        }
    }

    /// The first firing strictly after `after`, for schedules (`Ok(None)` otherwise).
    pub fn next_fire(
        &self,
        after: DateTime<Utc>,
    ) -> std::result::Result<Option<DateTime<Utc>>, String> {
        match self {
            Trigger::Schedule { cron, timezone } => {
                let local = after.with_timezone(timezone);
                cron_parser::parse(cron, &local)
                    .map(|next| Some(next.with_timezone(&Utc)))
                    .map_err(|e| e.to_string())
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(object: ObjectKey, v: Value) -> Result<Trigger> {
        Trigger::parse(object, &v, "Asia/Shanghai")
    }

    #[test]
    fn events_must_belong_to_the_object() {
        assert_eq!(
            parse(
                ObjectKey::Customers,
                json!({"event": "customer.updated", "fields": ["level"]})
            )
            .expect("ok"),
            Trigger::Event {
                event: "customer.updated".into(),
                fields: Some(vec!["level".into()]),
                imports: true,
            }
        );
        let quiet = parse(
            ObjectKey::Customers,
            json!({"event": "customer.created", "imports": false}),
        )
        .expect("ok");
        assert_eq!(
            quiet.to_json(),
            json!({"event": "customer.created", "imports": false})
        );
        for bad in [
            json!({"event": "ticket.created"}),
            json!({"event": "customer.exploded"}),
            json!({"event": "customer.created", "fields": ["level"]}),
            json!({"event": "customer.updated", "fields": []}),
            json!({"event": "customer.updated", "colour": 1}),
            json!({"event": "customer.created", "imports": "no"}),
            json!({"manual": false}),
            json!({"approval": "maybe"}),
            json!({}),
            json!("customer.created"),
        ] {
            assert!(parse(ObjectKey::Customers, bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(
            parse(ObjectKey::Opportunities, json!({"approval": "decided"}))
                .expect("ok")
                .event(),
            Some("opportunity.approval_decided")
        );
    }

    #[test]
    fn cron_fires_in_its_time_zone() {
        let t = parse(
            ObjectKey::Customers,
            json!({"schedule": "0 9 * * 1-5", "timezone": "Asia/Shanghai"}),
        )
        .expect("ok");
        // Friday 2026-11-20 10:00 Shanghai (02:00 UTC): next is Monday 09:00 Shanghai.
        let after: DateTime<Utc> = "2026-11-20T02:00:00Z".parse().expect("time");
        let next = t.next_fire(after).expect("cron").expect("fires");
        assert_eq!(next.to_rfc3339(), "2026-11-23T01:00:00+00:00");
        // Same expression in New York: 09:00 EST is 14:00 UTC, later the same Friday.
        let ny = parse(
            ObjectKey::Customers,
            json!({"schedule": "0 9 * * 1-5", "timezone": "America/New_York"}),
        )
        .expect("ok");
        let next = ny.next_fire(after).expect("cron").expect("fires");
        assert_eq!(next.to_rfc3339(), "2026-11-20T14:00:00+00:00");
        // The company's zone is the default.
        let default = parse(ObjectKey::Customers, json!({"schedule": "30 8 * * *"})).expect("ok");
        assert_eq!(
            default.to_json(),
            json!({"schedule": "30 8 * * *", "timezone": "Asia/Shanghai"})
        );
        for bad in ["61 * * * *", "* * * *", "every day", "0 9 * * 1-5 2026"] {
            assert!(
                parse(ObjectKey::Customers, json!({ "schedule": bad })).is_err(),
                "{bad}"
            );
        }
        assert!(parse(
            ObjectKey::Customers,
            json!({"schedule": "0 9 * * *", "timezone": "Mars/Base"})
        )
        .is_err());
    }
}
