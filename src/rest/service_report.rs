//! `/reports/service`: the service-desk report (volumes, SLA compliance, business response
//! and resolution times, satisfaction; overall, per team and per agent).

use super::auth::Auth;
use super::error::ApiResult;
use super::records::PdfResponse;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::Error;
use crm_desk::report_pdf;
use crm_desk::reports::{self, Bound};
use crm_desk::workflow::StateCategory;
use crm_records::export::print::Printing;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use uuid::Uuid;

#[derive(Tags)]
enum ReportTag {
    /// Reports over records and tickets.
    Reports,
}

pub struct ServiceReportApi(pub AppState);

/// One SLA target: tickets without its due time are not counted.
#[derive(Object)]
pub struct ServiceReportTarget {
    /// Met by the due time.
    pub met: i64,
    /// Met after the due time, or not met and past it.
    pub breached: i64,
    /// Not met and not yet due.
    pub pending: i64,
    /// met / (met + breached) × 100, one decimal; null while nothing is decided.
    #[oai(nullable)]
    pub compliance_pct: Option<f64>,
}

/// Both SLA targets.
#[derive(Object)]
pub struct ServiceReportSla {
    pub first_response: ServiceReportTarget,
    pub resolution: ServiceReportTarget,
}

/// A median over the tickets that have the value.
#[derive(Object)]
pub struct ServiceReportMedian {
    /// Whole business seconds, net of SLA pauses; null when `count` is 0.
    #[oai(nullable)]
    pub median: Option<i64>,
    pub count: i64,
}

/// Satisfaction surveys of the tickets.
#[derive(Object)]
pub struct ServiceReportCsat {
    pub sent: i64,
    pub rated: i64,
    /// rated / sent × 100, one decimal; null when none was sent.
    #[oai(nullable)]
    pub response_rate_pct: Option<f64>,
    /// Mean rating (1-5), two decimals; null when none was rated.
    #[oai(nullable)]
    pub average: Option<f64>,
}

/// The metrics of a group of tickets.
#[derive(Object)]
pub struct ServiceReportMetrics {
    /// Tickets in the group.
    pub total: i64,
    pub sla: ServiceReportSla,
    /// Median business seconds to the first public staff reply.
    pub first_response_business_seconds: ServiceReportMedian,
    /// Median business seconds to resolution.
    pub resolution_business_seconds: ServiceReportMedian,
    pub csat: ServiceReportCsat,
}

/// Tickets in one state of the workflow.
#[derive(Object)]
pub struct ServiceReportStatus {
    pub status: String,
    pub name: String,
    /// open, resolved or closed.
    #[oai(nullable)]
    pub category: Option<String>,
    pub count: i64,
}

/// Tickets of one priority.
#[derive(Object)]
pub struct ServiceReportPriority {
    pub priority: String,
    pub count: i64,
}

/// Tickets of one type (`none`: untyped).
#[derive(Object)]
pub struct ServiceReportType {
    #[oai(rename = "type")]
    pub ticket_type: String,
    pub count: i64,
}

/// The metrics of one team's tickets.
#[derive(Object)]
pub struct ServiceReportTeam {
    /// Null for tickets without a team.
    #[oai(nullable)]
    pub team_id: Option<Uuid>,
    #[oai(nullable)]
    pub team_name: Option<String>,
    #[oai(flatten)]
    pub metrics: ServiceReportMetrics,
}

/// The metrics of one assignee's tickets.
#[derive(Object)]
pub struct ServiceReportAgent {
    /// Null for unassigned tickets.
    #[oai(nullable)]
    pub user_id: Option<Uuid>,
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(flatten)]
    pub metrics: ServiceReportMetrics,
}

/// The service report over the tickets created in `[from, to)`.
#[derive(Object)]
pub struct ServiceReport {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub to: DateTime<Utc>,
    #[oai(flatten)]
    pub overall: ServiceReportMetrics,
    /// Every state of the workflow, in workflow order, zero counts included.
    pub by_status: Vec<ServiceReportStatus>,
    /// low, normal, high, urgent.
    pub by_priority: Vec<ServiceReportPriority>,
    /// The workflow's types, then `none` for untyped tickets.
    pub by_type: Vec<ServiceReportType>,
    /// Teams by name, then tickets without a team (`team_id` null).
    pub by_team: Vec<ServiceReportTeam>,
    /// Assignees by name, then unassigned tickets (`user_id` null).
    pub by_agent: Vec<ServiceReportAgent>,
}

impl From<reports::Target> for ServiceReportTarget {
    fn from(t: reports::Target) -> Self {
        ServiceReportTarget {
            met: t.met,
            breached: t.breached,
            pending: t.pending,
            compliance_pct: t.compliance_pct,
        }
    }
}

impl From<reports::Median> for ServiceReportMedian {
    fn from(m: reports::Median) -> Self {
        ServiceReportMedian {
            median: m.median,
            count: m.count,
        }
    }
}

impl From<reports::Metrics> for ServiceReportMetrics {
    fn from(m: reports::Metrics) -> Self {
        ServiceReportMetrics {
            total: m.total,
            sla: ServiceReportSla {
                first_response: m.sla.first_response.into(),
                resolution: m.sla.resolution.into(),
            },
            first_response_business_seconds: m.first_response_business_seconds.into(),
            resolution_business_seconds: m.resolution_business_seconds.into(),
            csat: ServiceReportCsat {
                sent: m.csat.sent,
                rated: m.csat.rated,
                response_rate_pct: m.csat.response_rate_pct,
                average: m.csat.average,
            },
        }
    }
}

fn category_name(c: StateCategory) -> &'static str {
    match c {
        StateCategory::Open => "open",
        StateCategory::Resolved => "resolved",
        StateCategory::Closed => "closed",
    }
}

impl From<reports::ServiceReport> for ServiceReport {
    fn from(r: reports::ServiceReport) -> Self {
        ServiceReport {
            from: r.from,
            to: r.to,
            overall: r.overall.into(),
            by_status: r
                .by_status
                .into_iter()
                .map(|s| ServiceReportStatus {
                    status: s.status,
                    name: s.name,
                    category: s.category.map(|c| category_name(c).to_owned()),
                    count: s.count,
                })
                .collect(),
            by_priority: r
                .by_priority
                .into_iter()
                .map(|p| ServiceReportPriority {
                    priority: p.key,
                    count: p.count,
                })
                .collect(),
            by_type: r
                .by_type
                .into_iter()
                .map(|t| ServiceReportType {
                    ticket_type: t.key,
                    count: t.count,
                })
                .collect(),
            by_team: r
                .by_team
                .into_iter()
                .map(|t| ServiceReportTeam {
                    team_id: t.team_id,
                    team_name: t.team_name,
                    metrics: t.metrics.into(),
                })
                .collect(),
            by_agent: r
                .by_agent
                .into_iter()
                .map(|a| ServiceReportAgent {
                    user_id: a.user_id,
                    name: a.name,
                    metrics: a.metrics.into(),
                })
                .collect(),
        }
    }
}

/// Parses the optional `from` and `to`, reporting both when both are wrong.
fn bounds(from: Option<&str>, to: Option<&str>) -> ApiResult<(Option<Bound>, Option<Bound>)> {
    let mut errors = Vec::new();
    let mut parse = |field: &str, raw: Option<&str>| match raw.map(|r| Bound::parse(field, r)) {
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    let (from, to) = (parse("from", from), parse("to", to));
    if errors.is_empty() {
        Ok((from, to))
    } else {
        Err(Error::invalid(errors).into())
    }
}

#[OpenApi(tag = "ReportTag::Reports")]
impl ServiceReportApi {
    /// The service report over the live tickets created in `[from, to)` that the caller's
    /// ticket scope shows: counts by status, priority and type; SLA compliance (first response
    /// and resolution: met, breached, pending); median business seconds to first response and
    /// to resolution; satisfaction surveys sent, rated and their mean rating; the same metrics
    /// per team and per assignee. `from` and `to` take a date (its midnight in the tenant's
    /// time zone) or an RFC 3339 date-time; `to` defaults to now and `from` to 30 days before
    /// `to`. Needs `reports:read`.
    #[oai(path = "/reports/service", method = "get")]
    async fn service_report(
        &self,
        auth: Auth,
        /// Start (inclusive): `2025-03-01` or `2025-03-01T09:00:00+08:00`.
        from: Query<Option<String>>,
        /// End (exclusive), same forms as `from`.
        to: Query<Option<String>>,
    ) -> ApiResult<Json<ServiceReport>> {
        let (from, to) = bounds(from.0.as_deref(), to.0.as_deref())?;
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let report = reports::service(&mut tx, &caller, from, to, Utc::now()).await?;
        tx.commit().await?;
        Ok(Json(report.into()))
    }

    /// The same service report as a printable PDF, in your language (your locale, else
    /// `Accept-Language`, else the company's). Needs `reports:read`; audited as
    /// `reports.exported`.
    #[oai(path = "/reports/service/pdf", method = "get")]
    async fn service_report_pdf(
        &self,
        auth: Auth,
        /// Start (inclusive), as for the JSON report.
        from: Query<Option<String>>,
        /// End (exclusive).
        to: Query<Option<String>>,
        req: &Request,
    ) -> ApiResult<PdfResponse> {
        let (from, to) = bounds(from.0.as_deref(), to.0.as_deref())?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let lang =
            crm_records::export::caller_lang(&mut tx, &caller, req.header("accept-language"))
                .await?;
        let printing = Printing {
            by: &ctx.principal.name,
            lang,
        };
        let doc =
            report_pdf::service(&mut tx, &caller, &Actor::of(&ctx), from, to, &printing).await?;
        let bytes = self.0.pdf_font.render(doc).await?;
        tx.commit().await?;
        Ok(PdfResponse::pdf(bytes, "service-report.pdf"))
    }
}
