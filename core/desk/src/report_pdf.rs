//! The service report as a printable PDF document: the same figures as `reports::service`,
//! laid out for paper in the reader's language, audited as `reports.exported`.

use super::reports::{self, AgentMetrics, Bound, KeyCount, Metrics, TeamMetrics};
use chrono::Utc;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::mail::Lang;
use crm_records::export::lang_key;
use crm_records::export::pdf::{Block, Document};
use crm_records::export::print::{self, local, pct, printed_line, t, Printing};
use serde_json::json;

/// Business seconds as hours, one decimal.
fn hours(seconds: Option<i64>, lang: Lang) -> String {
    seconds.map_or_else(String::new, |s| {
        format!("{:.1} {}", s as f64 / 3600.0, t(lang, "h", "小时"))
    })
}

fn compliance(pct_value: Option<f64>) -> String {
    pct(pct_value.map(|p| p / 100.0))
}

/// The printable service report over `[from, to)` (defaults as `reports::service`).
pub async fn service(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    from: Option<Bound>,
    to: Option<Bound>,
    p: &Printing<'_>,
) -> Result<Document> {
    let report = reports::service(tx, caller, from, to, Utc::now()).await?;
    crm_core::audit::record(
        tx,
        actor,
        "reports.exported",
        None,
        json!({ "report": "service", "format": "pdf", "from": report.from, "to": report.to }),
    )
    .await?;
    let zone = print::zone(tx).await?;
    let lang = p.lang;
    let o = &report.overall;
    let overall = Block::Fields(vec![
        (t(lang, "Tickets", "工单数").into(), o.total.to_string()),
        (
            t(lang, "First response SLA", "首次响应 SLA 达成率").into(),
            target_text(&o.sla.first_response, lang),
        ),
        (
            t(lang, "Resolution SLA", "解决 SLA 达成率").into(),
            target_text(&o.sla.resolution, lang),
        ),
        (
            t(lang, "Median first response", "首次响应时长中位数").into(),
            hours(o.first_response_business_seconds.median, lang),
        ),
        (
            t(lang, "Median resolution", "解决时长中位数").into(),
            hours(o.resolution_business_seconds.median, lang),
        ),
        (
            t(lang, "Satisfaction", "满意度").into(),
            format!(
                "{} {} · {} {}{}",
                o.csat.sent,
                t(lang, "sent", "已发送"),
                o.csat.rated,
                t(lang, "rated", "已评价"),
                o.csat
                    .average
                    .map_or_else(String::new, |a| format!(" · {a:.2} / 5")),
            ),
        ),
    ]);
    let counts = |rows: Vec<(String, i64)>, first: &str| Block::Table {
        columns: vec![first.to_owned(), t(lang, "Tickets", "工单数").into()],
        rows: rows
            .into_iter()
            .map(|(k, n)| vec![k, n.to_string()])
            .collect(),
    };
    let option = |k: &KeyCount| {
        crm_records::labels::option_labels(std::slice::from_ref(&k.key))[&k.key][lang_key(lang)]
            .as_str()
            .map_or_else(|| k.key.clone(), str::to_owned)
    };
    let by_status = counts(
        report
            .by_status
            .iter()
            .map(|s| (s.name.clone(), s.count))
            .collect(),
        t(lang, "Status", "状态"),
    );
    let by_priority = counts(
        report
            .by_priority
            .iter()
            .map(|k| (option(k), k.count))
            .collect(),
        t(lang, "Priority", "优先级"),
    );
    let by_type = counts(
        report
            .by_type
            .iter()
            .map(|k| (k.key.clone(), k.count))
            .collect(),
        t(lang, "Type", "类型"),
    );
    let none = t(lang, "(none)", "（无）");
    let teams = metrics_table(
        t(lang, "Team", "团队"),
        report.by_team.iter().map(
            |TeamMetrics {
                 team_name, metrics, ..
             }| { (team_name.clone().unwrap_or_else(|| none.into()), metrics) },
        ),
        lang,
    );
    let agents = metrics_table(
        t(lang, "Assignee", "处理人"),
        report
            .by_agent
            .iter()
            .map(|AgentMetrics { name, metrics, .. }| {
                (name.clone().unwrap_or_else(|| none.into()), metrics)
            }),
        lang,
    );
    let title = t(lang, "Service report", "服务报表");
    Ok(Document {
        title: title.to_owned(),
        subtitle: vec![
            format!(
                "{} {} – {}",
                t(lang, "Tickets created", "工单创建时间"),
                local(report.from, zone),
                local(report.to, zone)
            ),
            printed_line(p, zone),
        ],
        blocks: vec![
            Block::Heading(t(lang, "Overall", "总体").into()),
            overall,
            Block::Heading(t(lang, "By status", "按状态").into()),
            by_status,
            Block::Heading(t(lang, "By priority", "按优先级").into()),
            by_priority,
            Block::Heading(t(lang, "By type", "按类型").into()),
            by_type,
            Block::Heading(t(lang, "By team", "按团队").into()),
            teams,
            Block::Heading(t(lang, "By assignee", "按处理人").into()),
            agents,
        ],
        footer: format!("TC CRM · {title}"),
        language: lang_key(lang).to_owned(),
    })
}

fn target_text(target: &reports::Target, lang: Lang) -> String {
    let counts = format!(
        "{} {} · {} {} · {} {}",
        target.met,
        t(lang, "met", "达成"),
        target.breached,
        t(lang, "breached", "超时"),
        target.pending,
        t(lang, "pending", "进行中"),
    );
    match target.compliance_pct {
        Some(_) => format!("{} ({counts})", compliance(target.compliance_pct)),
        None => counts,
    }
}

/// One row of metrics per group (team, assignee).
fn metrics_table<'a>(
    first: &str,
    groups: impl Iterator<Item = (String, &'a Metrics)>,
    lang: Lang,
) -> Block {
    Block::Table {
        columns: vec![
            first.to_owned(),
            t(lang, "Tickets", "工单数").into(),
            t(lang, "First response SLA", "首次响应 SLA").into(),
            t(lang, "Resolution SLA", "解决 SLA").into(),
            t(lang, "Median first response", "首次响应中位数").into(),
            t(lang, "Median resolution", "解决中位数").into(),
            t(lang, "Satisfaction", "满意度").into(),
        ],
        rows: groups
            .map(|(name, m)| {
                vec![
                    name,
                    m.total.to_string(),
                    compliance(m.sla.first_response.compliance_pct),
                    compliance(m.sla.resolution.compliance_pct),
                    hours(m.first_response_business_seconds.median, lang),
                    hours(m.resolution_business_seconds.median, lang),
                    m.csat
                        .average
                        .map_or_else(String::new, |a| format!("{a:.2}")),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_hours() {
        assert_eq!(hours(Some(5400), Lang::En), "1.5 h");
        assert_eq!(hours(Some(7200), Lang::ZhCn), "2.0 小时");
        assert_eq!(hours(None, Lang::En), "");
        assert_eq!(compliance(Some(87.5)), "87.5%");
    }
}
