//! Printable documents ([`pdf::Document`]) of one record and of the sales report, in the
//! reader's language: labels as the web app shows them, select options by their labels,
//! users and related records by name, times in the company's time zone. A record's page
//! needs its object's read and export permissions and shows what the reader may see
//! (masked values stay masked); the sales report needs `reports:read`, like its JSON. Both
//! are audited (`<object>.exported`, `reports.exported`) in the caller's transaction.

use super::pdf::{Block, Document};
use super::{csv::cell, lang_key, Columns, HeaderStyle};
use crate::engine::{self, Access, Visibility};
use crate::expand;
use crate::labels;
use crate::meta::{FieldType, RecordAction};
use crate::reports::{self, Amounts, Closed};
use crate::schema::ObjectSchema;
use chrono::{DateTime, Utc};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use crm_core::mail::Lang;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Words of the printed pages, `(English, Chinese)`.
pub fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::ZhCn => zh,
    }
}

/// What a printed page says about its making.
pub struct Printing<'a> {
    /// Who prints (shown under the title).
    pub by: &'a str,
    pub lang: Lang,
}

/// The company's time zone, which printed times are shown in.
pub async fn zone(tx: &mut TenantTx) -> Result<chrono_tz::Tz> {
    let zone: String = sqlx::query_scalar("SELECT timezone FROM settings")
        .fetch_one(tx.conn())
        .await?;
    Ok(zone.parse().unwrap_or(chrono_tz::Asia::Shanghai))
}

/// `2025-03-01 09:30` in `zone`.
pub fn local(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string()
}

/// The subtitle line every printed page has: who printed it and when.
pub fn printed_line(p: &Printing<'_>, zone: chrono_tz::Tz) -> String {
    format!(
        "{} {} · {} ({zone})",
        t(p.lang, "Printed by", "打印人"),
        p.by,
        local(Utc::now(), zone),
    )
}

/// The printable page of record `id`: every field the reader may see, by label.
pub async fn record(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    p: &Printing<'_>,
) -> Result<Document> {
    access.require(schema.object, RecordAction::Read)?;
    access.require_permission(schema.object.export_permission())?;
    let record = engine::fetch(tx, schema, access, id, Visibility::Live, false).await?;
    let mut one = [record];
    // Related records by name: every relation to a record object, expanded as a get would.
    let relations: BTreeMap<String, Vec<String>> = schema
        .all()
        .filter(|f| f.ty == FieldType::Relation && f.target.is_some())
        .map(|f| (f.path(), Vec::new()))
        .collect();
    if !relations.is_empty() {
        expand::apply(tx, schema, access, &mut one, &relations).await?;
    }
    let [record] = one;
    let columns = Columns::resolve(schema, None, p.lang, HeaderStyle::Labels)?;
    let users: Vec<Uuid> = columns
        .items
        .iter()
        .filter(|c| c.ty == Some(FieldType::User))
        .filter_map(|c| c.value_in(&record).as_str()?.parse().ok())
        .collect();
    let names = crm_core::users::names(tx, &users).await?;
    let zone = zone(tx).await?;
    let pairs = columns
        .items
        .iter()
        .map(|c| {
            let value = c.value_in(&record);
            let text = match (c.ty, value) {
                (_, Value::Null) => String::new(),
                (Some(FieldType::User), Value::String(id)) => id
                    .parse::<Uuid>()
                    .ok()
                    .and_then(|u| names.get(&u).cloned())
                    .unwrap_or_else(|| id.clone()),
                (Some(FieldType::Relation), Value::String(id)) => {
                    let shown = &record["expanded"][c.path.as_str()];
                    let target = schema.resolve(&c.path).and_then(|f| f.target);
                    target
                        .and_then(|o| shown[expand::display_field(o)].as_str())
                        .map_or_else(|| id.clone(), str::to_owned)
                }
                (Some(FieldType::Boolean), Value::Bool(b)) => if *b {
                    t(p.lang, "Yes", "是")
                } else {
                    t(p.lang, "No", "否")
                }
                .to_owned(),
                (Some(FieldType::Select), Value::String(o)) => {
                    c.option_labels.get(o).cloned().unwrap_or_else(|| o.clone())
                }
                (_, Value::String(s)) if c.ty.is_none() || c.ty == Some(FieldType::Datetime) => s
                    .parse::<DateTime<Utc>>()
                    .map_or_else(|_| s.clone(), |at| local(at, zone)),
                (_, other) => cell(other),
            };
            (c.label.clone(), text)
        })
        .collect();
    crm_core::audit::record(
        tx,
        access.actor(),
        &format!("{}.exported", schema.object),
        Some((schema.object.as_str(), id.to_string())),
        json!({ "format": "pdf", "rows": 1 }),
    )
    .await?;
    let noun = object_noun(schema, p.lang);
    let name = ["name", "subject", "title"]
        .iter()
        .find_map(|k| record[*k].as_str())
        .unwrap_or_default();
    Ok(Document {
        title: if name.is_empty() {
            noun.clone()
        } else {
            format!("{noun}：{name}")
        },
        subtitle: vec![printed_line(p, zone)],
        blocks: vec![Block::Fields(pairs)],
        footer: format!("TC CRM · {noun} {id}"),
        language: lang_key(p.lang).to_owned(),
    })
}

/// What one record of the object is called in `lang`.
fn object_noun(schema: &ObjectSchema, lang: Lang) -> String {
    match &schema.def {
        Some(def) => def
            .labels
            .get(lang_key(lang))
            .cloned()
            .unwrap_or_else(|| def.name.clone()),
        None => labels::object_labels(schema.object)
            .get(lang_key(lang))
            .and_then(Value::as_str)
            .map_or_else(|| schema.object.to_string(), str::to_owned),
    }
}

/// Money per currency: `CNY 12,000.00; USD 300.00`.
fn money(amounts: &Amounts) -> String {
    amounts
        .iter()
        .map(|(currency, amount)| format!("{currency} {}", thousands(*amount)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `1234567.5` → `1,234,567.50`.
fn thousands(amount: f64) -> String {
    let fixed = format!("{:.2}", amount.abs());
    let (whole, cents) = fixed.split_once('.').unwrap_or((&fixed, "00"));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if amount < 0.0 { "-" } else { "" };
    format!("{sign}{grouped}.{cents}")
}

/// A share (0.25) as `25.0%`; nothing when there is none.
pub fn pct(share: Option<f64>) -> String {
    share.map_or_else(String::new, |s| format!("{:.1}%", s * 100.0))
}

/// The printable sales report (the same figures as `GET /reports/sales`).
pub async fn sales_report(
    tx: &mut TenantTx,
    access: &Access<'_>,
    pipeline: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    p: &Printing<'_>,
) -> Result<Document> {
    let report = reports::sales(tx, access, pipeline, from, to).await?;
    let pipeline = crate::sales::get(tx, report.pipeline_id).await?;
    let zone = zone(tx).await?;
    let lang = p.lang;
    let owners: Vec<Uuid> = report
        .by_owner
        .keys()
        .filter_map(|k| k.parse().ok())
        .collect();
    let names: HashMap<Uuid, String> = crm_core::users::names(tx, &owners).await?;
    let funnel = Block::Table {
        columns: vec![
            t(lang, "Stage", "阶段").into(),
            t(lang, "Reached", "到达数").into(),
            t(lang, "Amount", "金额").into(),
            t(lang, "Conversion", "转化率").into(),
            t(lang, "Median days", "停留天数中位数").into(),
        ],
        rows: report
            .funnel
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.reached.to_string(),
                    money(&s.amount),
                    pct(s.conversion_from_previous),
                    s.median_days
                        .map_or_else(String::new, |d| format!("{d:.1}")),
                ]
            })
            .collect(),
    };
    let forecast = Block::Table {
        columns: vec![
            t(lang, "Expected close", "预计成交月份").into(),
            t(lang, "Weighted amount", "加权金额").into(),
        ],
        rows: report
            .forecast
            .iter()
            .map(|(month, amounts)| vec![month.clone(), money(amounts)])
            .collect(),
    };
    let closed_columns = |first: &str| {
        vec![
            first.to_owned(),
            t(lang, "Won", "赢单").into(),
            t(lang, "Won amount", "赢单金额").into(),
            t(lang, "Lost", "输单").into(),
            t(lang, "Lost amount", "输单金额").into(),
        ]
    };
    let closed_row = |name: String, c: &Closed| {
        vec![
            name,
            c.won.to_string(),
            money(&c.won_amount),
            c.lost.to_string(),
            money(&c.lost_amount),
        ]
    };
    let by_owner = Block::Table {
        columns: closed_columns(t(lang, "Owner", "负责人")),
        rows: report
            .by_owner
            .iter()
            .map(|(owner, c)| {
                let name = owner
                    .parse::<Uuid>()
                    .ok()
                    .and_then(|u| names.get(&u).cloned())
                    .unwrap_or_else(|| t(lang, "(none)", "（无）").to_owned());
                closed_row(name, c)
            })
            .collect(),
    };
    let by_source = Block::Table {
        columns: closed_columns(t(lang, "Customer source", "客户来源")),
        rows: report
            .by_source
            .iter()
            .map(|(source, c)| closed_row(source.clone(), c))
            .collect(),
    };
    crm_core::audit::record(
        tx,
        access.actor(),
        "reports.exported",
        None,
        json!({ "report": "sales", "format": "pdf", "from": from, "to": to }),
    )
    .await?;
    let title = t(lang, "Sales report", "销售报表");
    Ok(Document {
        title: format!("{title} · {}", pipeline.name),
        subtitle: vec![
            format!(
                "{} {} – {}",
                t(lang, "Period", "统计期间"),
                local(from, zone),
                local(to, zone)
            ),
            printed_line(p, zone),
        ],
        blocks: vec![
            Block::Heading(t(lang, "Funnel", "销售漏斗").into()),
            funnel,
            Block::Heading(t(lang, "Forecast", "成交预测").into()),
            forecast,
            Block::Heading(t(lang, "Won and lost by owner", "按负责人统计赢单/输单").into()),
            by_owner,
            Block::Heading(
                t(
                    lang,
                    "Won and lost by customer source",
                    "按客户来源统计赢单/输单",
                )
                .into(),
            ),
            by_source,
        ],
        footer: format!("TC CRM · {title}"),
        language: lang_key(lang).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_per_currency() {
        assert_eq!(thousands(1_234_567.5), "1,234,567.50");
        assert_eq!(thousands(999.0), "999.00");
        assert_eq!(thousands(-1000.0), "-1,000.00");
        let amounts: Amounts = [("CNY".to_owned(), 12000.0), ("USD".to_owned(), 3.5)].into();
        assert_eq!(money(&amounts), "CNY 12,000.00; USD 3.50");
    }
}
