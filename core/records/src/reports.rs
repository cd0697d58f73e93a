//! The sales report: funnel, forecast, won/lost by owner and by source, for a date range,
//! within the caller's scope. Computed from opportunities and their stage history.

use super::engine::Access;
use super::meta::ObjectKey;
use super::sales::{self, LOST, WON};
use chrono::{DateTime, Utc};
use crm_core::authz::Permission;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, Row};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Money per currency.
pub type Amounts = BTreeMap<String, f64>;

/// One stage of the funnel.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelStage {
    pub key: String,
    pub name: String,
    /// Opportunities (created in the range) that reached this stage or a later one.
    pub reached: i64,
    pub amount: Amounts,
    /// reached(this stage) / reached(previous stage); `None` for the first stage.
    pub conversion_from_previous: Option<f64>,
    /// Median days spent in the stage by opportunities that left it.
    pub median_days: Option<f64>,
}

/// A group of closed opportunities.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Closed {
    pub won: i64,
    pub lost: i64,
    pub won_amount: Amounts,
    pub lost_amount: Amounts,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SalesReport {
    pub pipeline_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub funnel: Vec<FunnelStage>,
    /// Open opportunities expected to close in each month (YYYY-MM): amount × probability.
    pub forecast: BTreeMap<String, Amounts>,
    /// Closed in the range, by owner id.
    pub by_owner: BTreeMap<String, Closed>,
    /// Closed in the range, by the customer's source.
    pub by_source: BTreeMap<String, Closed>,
}

struct Opp {
    stage: String,
    amount: f64,
    currency: String,
    status: String,
    owner: Option<Uuid>,
    source: Option<String>,
    created_at: DateTime<Utc>,
    expected_close_month: Option<String>,
    probability: i64,
    /// (time, stage entered), oldest first, starting with the stage it was created in.
    path: Vec<(DateTime<Utc>, String)>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Builds the report for opportunities of `pipeline` (default: the first) visible to
/// `access`, which needs `reports:read`.
pub async fn sales(
    tx: &mut TenantTx,
    access: &Access<'_>,
    pipeline: Option<Uuid>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SalesReport> {
    access.require_permission(Permission::ReportsRead)?;
    if from >= to {
        return Err(Error::invalid_field(
            "from",
            "invalid",
            "from must be before to",
        ));
    }
    let pipeline = match pipeline {
        Some(id) => id,
        None => sales::list(tx)
            .await?
            .first()
            .map(|p| p.id)
            .ok_or_else(|| Error::not_found("pipeline.not_found", "there is no pipeline yet"))?,
    };
    let p = sales::get(tx, pipeline).await?;
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT o.id, o.stage, coalesce(o.amount, 0)::float8, o.currency, o.status, o.owner_id, c.source, o.created_at, \
         to_char(o.expected_close, 'YYYY-MM'), coalesce(o.probability, 0) \
         FROM opportunities o JOIN customers c ON c.id = o.customer_id \
         WHERE o.deleted_at IS NULL AND o.pipeline_id = ",
    );
    q.push_bind(pipeline);
    // The scope predicate names the bare owner column; qualify through a subquery.
    q.push(" AND o.id IN (SELECT id FROM opportunities WHERE true");
    access
        .scope
        .push_predicate(&mut q, ObjectKey::Opportunities.owner_column());
    q.push(")");
    let rows = q.build().persistent(false).fetch_all(tx.conn()).await?;
    let mut opps: HashMap<Uuid, Opp> = HashMap::with_capacity(rows.len());
    for r in &rows {
        opps.insert(
            r.try_get(0)?,
            Opp {
                stage: r.try_get(1)?,
                amount: r.try_get(2)?,
                currency: r.try_get(3)?,
                status: r.try_get(4)?,
                owner: r.try_get(5)?,
                source: r.try_get(6)?,
                created_at: r.try_get(7)?,
                expected_close_month: r.try_get(8)?,
                probability: r.try_get(9)?,
                path: Vec::new(),
            },
        );
    }
    let ids: Vec<Uuid> = opps.keys().copied().collect();
    let history: Vec<(Uuid, DateTime<Utc>, Value)> = sqlx::query_as(
        "SELECT record_id, at, changes -> 'stage' FROM record_history \
         WHERE object = 'opportunities' AND record_id = ANY($1) AND changes ? 'stage' ORDER BY at, id",
    )
    .bind(&ids)
    .fetch_all(tx.conn())
    .await?;
    for (id, at, change) in history {
        if let (Some(o), Some(stage)) = (opps.get_mut(&id), change["after"].as_str()) {
            o.path.push((at, stage.to_owned()));
        }
    }

    let open_keys: Vec<&str> = p.stages.iter().map(|s| s.key.as_str()).collect();
    let index_of = |stage: &str| -> Option<usize> {
        if stage == WON {
            Some(open_keys.len())
        } else {
            open_keys.iter().position(|k| *k == stage)
        }
    };
    let in_range = |t: DateTime<Utc>| t >= from && t < to;

    // Funnel over opportunities created in the range.
    let mut reached = vec![0i64; open_keys.len() + 1];
    let mut reached_amount: Vec<Amounts> = vec![Amounts::new(); open_keys.len() + 1];
    let mut stints: HashMap<String, Vec<f64>> = HashMap::new();
    for o in opps.values().filter(|o| in_range(o.created_at)) {
        let max = o
            .path
            .iter()
            .filter_map(|(_, s)| index_of(s))
            .max()
            .or_else(|| index_of(&o.stage));
        if let Some(max) = max {
            for k in 0..=max {
                reached[k] += 1;
                *reached_amount[k].entry(o.currency.clone()).or_default() += o.amount;
            }
        }
        for pair in o.path.windows(2) {
            let days = (pair[1].0 - pair[0].0).num_seconds() as f64 / 86_400.0;
            stints.entry(pair[0].1.clone()).or_default().push(days);
        }
    }
    let mut funnel = Vec::new();
    let names: Vec<(String, String)> = p
        .stages
        .iter()
        .map(|s| (s.key.clone(), s.name.clone()))
        .chain([(WON.to_owned(), "赢单 Won".to_owned())])
        .collect();
    for (k, (key, name)) in names.into_iter().enumerate() {
        let conversion_from_previous =
            (k > 0 && reached[k - 1] > 0).then(|| reached[k] as f64 / reached[k - 1] as f64);
        funnel.push(FunnelStage {
            median_days: median(stints.remove(&key).unwrap_or_default()),
            key,
            name,
            reached: reached[k],
            amount: reached_amount[k].clone(),
            conversion_from_previous,
        });
    }

    // Forecast: open opportunities by expected close month (inside the range).
    let mut forecast: BTreeMap<String, Amounts> = BTreeMap::new();
    let (from_month, to_month) = (
        from.format("%Y-%m").to_string(),
        to.format("%Y-%m").to_string(),
    );
    for o in opps.values().filter(|o| o.status == "open") {
        if let Some(month) = o
            .expected_close_month
            .as_ref()
            .filter(|m| **m >= from_month && **m <= to_month)
        {
            *forecast
                .entry(month.clone())
                .or_default()
                .entry(o.currency.clone())
                .or_default() += o.amount * o.probability as f64 / 100.0;
        }
    }

    // Won/lost closed in the range (closing time: entering won or lost).
    let mut by_owner: BTreeMap<String, Closed> = BTreeMap::new();
    let mut by_source: BTreeMap<String, Closed> = BTreeMap::new();
    for o in opps
        .values()
        .filter(|o| o.status == WON || o.status == LOST)
    {
        let closed_at = o
            .path
            .iter()
            .rev()
            .find(|(_, s)| s == &o.status)
            .map(|(t, _)| *t)
            .unwrap_or(o.created_at);
        if !in_range(closed_at) {
            continue;
        }
        let owner = o
            .owner
            .map(|u| u.to_string())
            .unwrap_or_else(|| "none".into());
        let source = o.source.clone().unwrap_or_else(|| "unknown".into());
        for group in [
            by_owner.entry(owner).or_default(),
            by_source.entry(source).or_default(),
        ] {
            if o.status == WON {
                group.won += 1;
                *group.won_amount.entry(o.currency.clone()).or_default() += o.amount;
            } else {
                group.lost += 1;
                *group.lost_amount.entry(o.currency.clone()).or_default() += o.amount;
            }
        }
    }
    Ok(SalesReport {
        pipeline_id: p.id,
        from,
        to,
        funnel,
        forecast,
        by_owner,
        by_source,
    })
}
