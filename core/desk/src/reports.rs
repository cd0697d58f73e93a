//! The service report: the live tickets created in a date range, within the caller's ticket
//! scope, counted by status, priority and type, with SLA compliance, median business response
//! and resolution times and satisfaction, overall, per team and per agent. Aggregated in
//! PostgreSQL in one pass (`GROUPING SETS`), so a large range never ships tickets to the server.

use super::workflow::{self, StateCategory};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::{Error, FieldError, Result};
use crm_records::meta::{ObjectKey, TICKET_PRIORITIES};
use crm_records::scope::CallerScope;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use std::collections::HashMap;
use uuid::Uuid;

/// How far back the report looks when `from` is not given.
pub const DEFAULT_DAYS: i64 = 30;

/// The label of tickets without a type in `by_type`.
pub const UNTYPED: &str = "none";

/// One end of the date range as the caller wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A calendar day: its start (midnight) in the tenant's time zone.
    Day(NaiveDate),
    /// An exact instant.
    At(DateTime<Utc>),
}

impl Bound {
    /// Parses `2025-03-01` or an RFC 3339 date-time (`2025-03-01T09:00:00+08:00`).
    pub fn parse(field: &str, raw: &str) -> std::result::Result<Bound, FieldError> {
        let s = raw.trim();
        if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Bound::Day(day));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Bound::At(t.with_timezone(&Utc)))
            .map_err(|_| {
                FieldError::new(
                    field,
                    "invalid",
                    format!(
                        "'{raw}' is not a date; use a date like 2025-03-01 or a date-time like \
                         2025-03-01T09:00:00+08:00"
                    ),
                )
            })
    }

    fn resolve(self, zone: chrono_tz::Tz) -> DateTime<Utc> {
        match self {
            Bound::At(t) => t,
            // Midnight can fall into a DST gap in a few zones: take the first hour that exists.
            Bound::Day(d) => (0..4)
                .filter_map(|h| d.and_hms_opt(h, 0, 0))
                .find_map(|local| zone.from_local_datetime(&local).earliest())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| d.and_time(chrono::NaiveTime::MIN).and_utc()),
        }
    }
}

/// The tenant's time zone (`settings.timezone`), which calendar days are read in.
async fn tenant_zone(tx: &mut TenantTx) -> Result<chrono_tz::Tz> {
    let zone: String = sqlx::query_scalar("SELECT timezone FROM settings")
        .fetch_one(tx.conn())
        .await?;
    Ok(zone.parse().unwrap_or_else(|_| {
        tracing::warn!(timezone = %zone, "tenant time zone not recognised; using Asia/Shanghai");
        chrono_tz::Asia::Shanghai
    }))
}

/// The range `[from, to)`: `to` defaults to `now`, `from` to [`DEFAULT_DAYS`] before `to`;
/// days are read in the tenant's time zone. 422 on `from` when it is not before `to`.
async fn range(
    tx: &mut TenantTx,
    from: Option<Bound>,
    to: Option<Bound>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let zone = if matches!(from, Some(Bound::Day(_))) || matches!(to, Some(Bound::Day(_))) {
        tenant_zone(tx).await?
    } else {
        chrono_tz::UTC
    };
    let to = to.map_or(now, |b| b.resolve(zone));
    let from = from.map_or(to - Duration::days(DEFAULT_DAYS), |b| b.resolve(zone));
    if from >= to {
        return Err(Error::invalid_field(
            "from",
            "invalid",
            format!(
                "from ({}) must be before to ({}); to is exclusive",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ));
    }
    Ok((from, to))
}

/// One SLA target over a group of tickets. Tickets without that due time are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Target {
    /// Done by the due time.
    pub met: i64,
    /// Done after the due time, or not done and past it.
    pub breached: i64,
    /// Not done and not yet due.
    pub pending: i64,
    /// met / (met + breached) × 100, one decimal; `None` when nothing is decided yet.
    pub compliance_pct: Option<f64>,
}

/// Both SLA targets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sla {
    pub first_response: Target,
    pub resolution: Target,
}

/// The median of a duration over the tickets that have it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Median {
    /// Whole seconds (the mean of the two middle values for an even count).
    pub median: Option<i64>,
    pub count: i64,
}

/// Satisfaction surveys of the group's tickets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Csat {
    pub sent: i64,
    pub rated: i64,
    /// rated / sent × 100, one decimal; `None` when none was sent.
    pub response_rate_pct: Option<f64>,
    /// Mean rating (1-5), two decimals; `None` when none was rated.
    pub average: Option<f64>,
}

/// What the report says about any group of tickets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    pub total: i64,
    pub sla: Sla,
    /// Net business seconds to the first public staff reply.
    pub first_response_business_seconds: Median,
    /// Net business seconds to resolution.
    pub resolution_business_seconds: Median,
    pub csat: Csat,
}

/// Tickets in one status.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusCount {
    pub status: String,
    pub name: String,
    /// `None` only for a status the workflow no longer has.
    pub category: Option<StateCategory>,
    pub count: i64,
}

/// Tickets of one priority, type, … (a key and its count).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCount {
    pub key: String,
    pub count: i64,
}

/// The metrics of one team's tickets; `team_id` `None` for tickets without a team.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamMetrics {
    pub team_id: Option<Uuid>,
    pub team_name: Option<String>,
    pub metrics: Metrics,
}

/// The metrics of one assignee's tickets; `user_id` `None` for unassigned tickets.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentMetrics {
    pub user_id: Option<Uuid>,
    pub name: Option<String>,
    pub metrics: Metrics,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overall: Metrics,
    /// Every workflow state in workflow order (zero counts included).
    pub by_status: Vec<StatusCount>,
    /// low, normal, high, urgent.
    pub by_priority: Vec<KeyCount>,
    /// The workflow's types, then [`UNTYPED`].
    pub by_type: Vec<KeyCount>,
    /// Teams by name, then tickets without a team.
    pub by_team: Vec<TeamMetrics>,
    /// Assignees by name, then unassigned tickets.
    pub by_agent: Vec<AgentMetrics>,
}

/// `part / whole` as a percentage rounded half up to one decimal; `None` when `whole` is 0.
fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| ((part * 2000 + whole) / (2 * whole)) as f64 / 10.0)
}

// One pass over the range's tickets: each grouping set yields rows labelled by `dimension`.
// `now_at` carries the report's "now" on every row; NULL comparisons leave tickets without a
// due time out of every SLA count.
const AGGREGATE: &str = "\
    SELECT CASE WHEN grouping(b.team_id) = 0 THEN 'team' \
                WHEN grouping(b.assignee_id) = 0 THEN 'agent' \
                WHEN grouping(b.status) = 0 THEN 'status' \
                WHEN grouping(b.priority) = 0 THEN 'priority' \
                WHEN grouping(b.ticket_type) = 0 THEN 'type' \
                ELSE 'all' END AS dimension, \
      b.team_id, b.assignee_id, b.status, b.priority, b.ticket_type, \
      count(*) AS total, \
      count(*) FILTER (WHERE b.fr_at <= b.fr_due) AS fr_met, \
      count(*) FILTER (WHERE b.fr_at > b.fr_due OR (b.fr_at IS NULL AND b.fr_due < b.now_at)) AS fr_breached, \
      count(*) FILTER (WHERE b.fr_at IS NULL AND b.fr_due >= b.now_at) AS fr_pending, \
      count(*) FILTER (WHERE b.res_at <= b.res_due) AS res_met, \
      count(*) FILTER (WHERE b.res_at > b.res_due OR (b.res_at IS NULL AND b.res_due < b.now_at)) AS res_breached, \
      count(*) FILTER (WHERE b.res_at IS NULL AND b.res_due >= b.now_at) AS res_pending, \
      round((percentile_cont(0.5) WITHIN GROUP (ORDER BY b.fr_secs))::numeric)::int8 AS fr_median, \
      count(b.fr_secs) AS fr_count, \
      round((percentile_cont(0.5) WITHIN GROUP (ORDER BY b.res_secs))::numeric)::int8 AS res_median, \
      count(b.res_secs) AS res_count, \
      count(s.ticket_id) AS csat_sent, \
      count(s.rating) AS csat_rated, \
      round(avg(s.rating), 2)::float8 AS csat_average \
    FROM base b LEFT JOIN csat_surveys s ON s.ticket_id = b.id \
    GROUP BY GROUPING SETS ((), (b.team_id), (b.assignee_id), (b.status), (b.priority), (b.ticket_type))";

fn target(row: &PgRow, prefix: &str) -> Result<Target> {
    let met: i64 = row.try_get(format!("{prefix}_met").as_str())?;
    let breached: i64 = row.try_get(format!("{prefix}_breached").as_str())?;
    Ok(Target {
        met,
        breached,
        pending: row.try_get(format!("{prefix}_pending").as_str())?,
        compliance_pct: percent(met, met + breached),
    })
}

fn metrics(row: &PgRow) -> Result<Metrics> {
    let sent: i64 = row.try_get("csat_sent")?;
    let rated: i64 = row.try_get("csat_rated")?;
    Ok(Metrics {
        total: row.try_get("total")?,
        sla: Sla {
            first_response: target(row, "fr")?,
            resolution: target(row, "res")?,
        },
        first_response_business_seconds: Median {
            median: row.try_get("fr_median")?,
            count: row.try_get("fr_count")?,
        },
        resolution_business_seconds: Median {
            median: row.try_get("res_median")?,
            count: row.try_get("res_count")?,
        },
        csat: Csat {
            sent,
            rated,
            response_rate_pct: percent(rated, sent),
            average: row.try_get("csat_average")?,
        },
    })
}

/// `(id, name)` of `ids` by `sql` (teams or users), in name order.
async fn names_in_order(
    tx: &mut TenantTx,
    sql: &'static str,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(sql).bind(ids).fetch_all(tx.conn()).await?)
}

/// Groups keyed by an optional id, ordered like `named` (teams or users by name), then the
/// ids without a name, then the `None` group.
fn in_name_order(
    mut groups: HashMap<Option<Uuid>, Metrics>,
    named: Vec<(Uuid, String)>,
) -> Vec<(Option<Uuid>, Option<String>, Metrics)> {
    let mut out = Vec::with_capacity(groups.len());
    for (id, name) in named {
        if let Some(m) = groups.remove(&Some(id)) {
            out.push((Some(id), Some(name), m));
        }
    }
    let none = groups.remove(&None);
    let mut rest: Vec<_> = groups.into_iter().collect();
    rest.sort_by_key(|(id, _)| *id);
    out.extend(rest.into_iter().map(|(id, m)| (id, None, m)));
    if let Some(m) = none {
        out.push((None, None, m));
    }
    out
}

/// Builds the report over the live tickets created in `[from, to)` (see [`range`]) that the
/// caller's ticket scope shows (`reports:read`); SLA targets not met by `now` are pending or
/// breached against `now`.
pub async fn service(
    tx: &mut TenantTx,
    caller: &Caller,
    from: Option<Bound>,
    to: Option<Bound>,
    now: DateTime<Utc>,
) -> Result<ServiceReport> {
    caller.require(Permission::ReportsRead)?;
    let scope = caller.record_scope(ObjectKey::Tickets);
    let (from, to) = range(tx, from, to, now).await?;
    let wf = workflow::load(tx).await?;
    let mut q = QueryBuilder::<Postgres>::new(
        "WITH base AS (SELECT id, team_id, assignee_id, status, priority, \"type\" AS ticket_type, \
         first_response_due_at AS fr_due, first_responded_at AS fr_at, \
         resolution_due_at AS res_due, resolved_at AS res_at, \
         first_response_seconds AS fr_secs, resolution_seconds AS res_secs, ",
    );
    q.push_bind(now)
        .push("::timestamptz AS now_at FROM tickets WHERE deleted_at IS NULL AND created_at >= ")
        .push_bind(from)
        .push(" AND created_at < ")
        .push_bind(to);
    scope.push_predicate(&mut q, ObjectKey::Tickets.owner_column());
    q.push(") ").push(AGGREGATE);
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;

    let mut overall = Metrics::default();
    let mut statuses: HashMap<String, i64> = HashMap::new();
    let mut priorities: HashMap<String, i64> = HashMap::new();
    let mut types: HashMap<Option<String>, i64> = HashMap::new();
    let mut teams: HashMap<Option<Uuid>, Metrics> = HashMap::new();
    let mut agents: HashMap<Option<Uuid>, Metrics> = HashMap::new();
    for row in &rows {
        let dimension: String = row.try_get("dimension")?;
        let total: i64 = row.try_get("total")?;
        match dimension.as_str() {
            "team" => {
                teams.insert(row.try_get("team_id")?, metrics(row)?);
            }
            "agent" => {
                agents.insert(row.try_get("assignee_id")?, metrics(row)?);
            }
            "status" => {
                statuses.insert(row.try_get("status")?, total);
            }
            "priority" => {
                priorities.insert(row.try_get("priority")?, total);
            }
            "type" => {
                types.insert(row.try_get("ticket_type")?, total);
            }
            _ => overall = metrics(row)?,
        }
    }

    let mut by_status: Vec<StatusCount> = wf
        .states
        .iter()
        .map(|s| StatusCount {
            count: statuses.remove(&s.key).unwrap_or(0),
            status: s.key.clone(),
            name: s.name.clone(),
            category: Some(s.category),
        })
        .collect();
    // The workflow refuses to drop a state live tickets are in; should one still be found,
    // it is listed so the counts add up to `total`.
    let mut orphans: Vec<(String, i64)> = statuses.into_iter().collect();
    orphans.sort();
    by_status.extend(orphans.into_iter().map(|(status, count)| StatusCount {
        name: status.clone(),
        status,
        category: None,
        count,
    }));
    let by_priority = TICKET_PRIORITIES
        .iter()
        .map(|p| KeyCount {
            key: (*p).to_owned(),
            count: priorities.get(*p).copied().unwrap_or(0),
        })
        .collect();
    let mut by_type: Vec<KeyCount> = wf
        .types
        .iter()
        .map(|t| KeyCount {
            count: types.remove(&Some(t.clone())).unwrap_or(0),
            key: t.clone(),
        })
        .collect();
    let untyped = types.remove(&None).unwrap_or(0);
    let mut orphans: Vec<(String, i64)> = types
        .into_iter()
        .filter_map(|(t, n)| t.map(|t| (t, n)))
        .collect();
    orphans.sort();
    by_type.extend(
        orphans
            .into_iter()
            .map(|(key, count)| KeyCount { key, count }),
    );
    by_type.push(KeyCount {
        key: UNTYPED.to_owned(),
        count: untyped,
    });

    let team_ids: Vec<Uuid> = teams.keys().flatten().copied().collect();
    let team_names = names_in_order(
        tx,
        "SELECT id, name FROM teams WHERE id = ANY($1) ORDER BY name, id",
        &team_ids,
    )
    .await?;
    let user_ids: Vec<Uuid> = agents.keys().flatten().copied().collect();
    let user_names = names_in_order(
        tx,
        "SELECT id, name FROM users WHERE id = ANY($1) ORDER BY name, id",
        &user_ids,
    )
    .await?;
    Ok(ServiceReport {
        from,
        to,
        overall,
        by_status,
        by_priority,
        by_type,
        by_team: in_name_order(teams, team_names)
            .into_iter()
            .map(|(team_id, team_name, metrics)| TeamMetrics {
                team_id,
                team_name,
                metrics,
            })
            .collect(),
        by_agent: in_name_order(agents, user_names)
            .into_iter()
            .map(|(user_id, name, metrics)| AgentMetrics {
                user_id,
                name,
                metrics,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_days_or_instants() {
        assert_eq!(
            Bound::parse("from", " 2025-03-01 "),
            Ok(Bound::Day(
                NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")
            ))
        );
        let at = Bound::parse("to", "2025-03-01T09:00:00+08:00").expect("date-time");
        assert_eq!(
            at,
            Bound::At(
                Utc.with_ymd_and_hms(2025, 3, 1, 1, 0, 0)
                    .single()
                    .expect("utc")
            )
        );
        for bad in ["2025-02-30", "yesterday", "2025-03-01T09:00:00", ""] {
            let e = Bound::parse("from", bad).expect_err(bad);
            assert_eq!((e.field.as_str(), e.code), ("from", "invalid"));
        }
    }

    #[test]
    fn a_day_starts_at_midnight_in_the_tenant_zone() {
        let day = Bound::Day(NaiveDate::from_ymd_opt(2025, 3, 1).expect("date"));
        assert_eq!(
            day.resolve(chrono_tz::Asia::Shanghai),
            Utc.with_ymd_and_hms(2025, 2, 28, 16, 0, 0)
                .single()
                .expect("utc")
        );
        // Midnight does not exist in Havana on the spring-forward day: 01:00 is the start.
        let gap = Bound::Day(NaiveDate::from_ymd_opt(2025, 3, 9).expect("date"));
        assert_eq!(
            gap.resolve(chrono_tz::America::Havana),
            Utc.with_ymd_and_hms(2025, 3, 9, 5, 0, 0)
                .single()
                .expect("utc")
        );
    }

    #[test]
    fn percentages_round_half_up_to_one_decimal() {
        assert_eq!(percent(2, 3), Some(66.7));
        assert_eq!(percent(1, 3), Some(33.3));
        assert_eq!(percent(1, 16), Some(6.3));
        assert_eq!(percent(3, 3), Some(100.0));
        assert_eq!(percent(0, 5), Some(0.0));
        assert_eq!(percent(0, 0), None);
    }

    #[test]
    fn groups_follow_name_order_with_the_none_group_last() {
        let (a, b, gone) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let m = |total| Metrics {
            total,
            ..Metrics::default()
        };
        let groups = HashMap::from([
            (None, m(1)),
            (Some(a), m(2)),
            (Some(b), m(3)),
            (Some(gone), m(4)),
        ]);
        let named = vec![(b, "Anna".to_owned()), (a, "Bob".to_owned())];
        let order: Vec<(Option<Uuid>, Option<String>, i64)> = in_name_order(groups, named)
            .into_iter()
            .map(|(id, name, m)| (id, name, m.total))
            .collect();
        assert_eq!(
            order,
            [
                (Some(b), Some("Anna".to_owned()), 3),
                (Some(a), Some("Bob".to_owned()), 2),
                (Some(gone), None, 4),
                (None, None, 1),
            ]
        );
    }
}
