//! The sales report: funnel, forecast, won/lost by owner and by source, for a date range,
//! within the caller's scope. Aggregated in SQL from opportunities and their stage history,
//! so a pipeline of any size costs the server no memory.

use super::engine::Access;
use super::meta::ObjectKey;
use super::sales::{self, LOST, WON};
use chrono::{DateTime, Utc};
use crm_core::authz::Permission;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
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

/// Builds the report for opportunities of `pipeline` (default: the first) visible to
/// `access`, which needs `reports:read`. Every figure is aggregated by PostgreSQL (four
/// queries over the same visible set); no opportunity is loaded into memory.
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
    let stages: Vec<String> = p.stages.iter().map(|s| s.key.clone()).collect();
    let set = Visible {
        access,
        pipeline,
        from,
        to,
        stages: &stages,
    };
    let funnel = funnel(tx, &set, &p).await?;
    let forecast = forecast(tx, &set).await?;
    let (by_owner, by_source) = closed(tx, &set).await?;
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

/// The opportunities a report covers: one pipeline, the caller's scope, a date range.
struct Visible<'a> {
    access: &'a Access<'a>,
    pipeline: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The pipeline's open stage keys, in order; `won` comes after them.
    stages: &'a [String],
}

impl Visible<'_> {
    /// `WITH o AS (visible opportunities), h AS (their stage changes)`. Binds: the pipeline,
    /// then the scope's values.
    fn prefix(&self) -> QueryBuilder<'static, Postgres> {
        let mut q = QueryBuilder::<Postgres>::new(
            "WITH o AS (SELECT o.id, o.stage, coalesce(o.amount, 0)::float8 AS amount, \
             o.currency, o.status, o.owner_id, c.source, o.created_at, \
             to_char(o.expected_close, 'YYYY-MM') AS close_month, \
             coalesce(o.probability, 0) AS probability \
             FROM opportunities o JOIN customers c ON c.id = o.customer_id \
             WHERE o.deleted_at IS NULL AND o.pipeline_id = ",
        );
        q.push_bind(self.pipeline);
        // The scope predicate names the bare owner column; qualify through a subquery.
        q.push(" AND o.id IN (SELECT id FROM opportunities WHERE true");
        self.access
            .scope
            .push_predicate(&mut q, ObjectKey::Opportunities.owner_column());
        q.push(
            ")), h AS (SELECT h.record_id, h.at, h.id, h.changes -> 'stage' ->> 'after' AS stage \
             FROM record_history h JOIN o ON o.id = h.record_id \
             WHERE h.object = 'opportunities' AND h.changes ? 'stage') ",
        );
        q
    }
}

/// `idx(stage)`: an open stage's position in `k.keys` (the funnel's bound stage array), `won`
/// after the last one, NULL otherwise.
fn idx(stage: &str) -> String {
    format!(
        "(CASE WHEN {stage} = '{WON}' THEN cardinality(k.keys) \
         ELSE array_position(k.keys, {stage}) - 1 END)"
    )
}

/// Funnel over opportunities created in the range: how many reached each stage (the furthest
/// stage of their history, or their current stage), with amounts and median days per stage.
async fn funnel(
    tx: &mut TenantTx,
    set: &Visible<'_>,
    p: &sales::Pipeline,
) -> Result<Vec<FunnelStage>> {
    let mut q = set.prefix();
    q.push(", k AS (SELECT ");
    q.push_bind(set.stages.to_vec());
    q.push(format!(
        "::text[] AS keys), m AS (SELECT o.amount, o.currency, coalesce((SELECT max({hidx}) FROM h \
         WHERE h.record_id = o.id), {oidx}) AS top FROM o, k WHERE o.created_at >= ",
        hidx = idx("h.stage"),
        oidx = idx("o.stage"),
    ));
    q.push_bind(set.from)
        .push(" AND o.created_at < ")
        .push_bind(set.to);
    q.push(
        ") SELECT s::int4, m.currency, count(*), sum(m.amount) FROM m \
         CROSS JOIN generate_series(0, m.top) s WHERE m.top IS NOT NULL \
         GROUP BY s, m.currency",
    );
    let rows: Vec<(i32, String, i64, f64)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    let n = set.stages.len() + 1;
    let mut reached = vec![0i64; n];
    let mut amounts = vec![Amounts::new(); n];
    for (stage, currency, count, amount) in rows {
        if let Some(k) = usize::try_from(stage).ok().filter(|k| *k < n) {
            reached[k] += count;
            *amounts[k].entry(currency).or_default() += amount;
        }
    }

    // Days between consecutive stage changes, the earlier stage's stint.
    let mut q = set.prefix();
    q.push(
        ", s AS (SELECT h.stage, extract(epoch FROM lead(h.at) OVER \
         (PARTITION BY h.record_id ORDER BY h.at, h.id) - h.at)::float8 / 86400 AS days \
         FROM h JOIN o ON o.id = h.record_id WHERE o.created_at >= ",
    );
    q.push_bind(set.from)
        .push(" AND o.created_at < ")
        .push_bind(set.to);
    q.push(
        ") SELECT stage, percentile_cont(0.5) WITHIN GROUP (ORDER BY days) FROM s \
         WHERE days IS NOT NULL AND stage IS NOT NULL GROUP BY stage",
    );
    let medians: HashMap<String, f64> = q
        .build_query_as::<(String, f64)>()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?
        .into_iter()
        .collect();

    let names = p
        .stages
        .iter()
        .map(|s| (s.key.clone(), s.name.clone()))
        .chain([(WON.to_owned(), "赢单 Won".to_owned())]);
    Ok(names
        .enumerate()
        .map(|(k, (key, name))| FunnelStage {
            median_days: medians.get(&key).copied(),
            conversion_from_previous: (k > 0 && reached[k - 1] > 0)
                .then(|| reached[k] as f64 / reached[k - 1] as f64),
            key,
            name,
            reached: reached[k],
            amount: std::mem::take(&mut amounts[k]),
        })
        .collect())
}

/// Open opportunities by expected close month inside the range: amount × probability.
async fn forecast(tx: &mut TenantTx, set: &Visible<'_>) -> Result<BTreeMap<String, Amounts>> {
    let mut q = set.prefix();
    q.push("SELECT close_month, currency, sum(amount * probability / 100.0)::float8 FROM o WHERE status = 'open' AND close_month >= ");
    q.push_bind(set.from.format("%Y-%m").to_string())
        .push(" AND close_month <= ")
        .push_bind(set.to.format("%Y-%m").to_string())
        .push(" GROUP BY close_month, currency");
    let rows: Vec<(String, String, f64)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    let mut forecast: BTreeMap<String, Amounts> = BTreeMap::new();
    for (month, currency, amount) in rows {
        *forecast
            .entry(month)
            .or_default()
            .entry(currency)
            .or_default() += amount;
    }
    Ok(forecast)
}

/// Won and lost opportunities closed in the range (closing time: when they last entered
/// their closed status, else their creation), by owner and by the customer's source.
async fn closed(
    tx: &mut TenantTx,
    set: &Visible<'_>,
) -> Result<(BTreeMap<String, Closed>, BTreeMap<String, Closed>)> {
    let mut q = set.prefix();
    q.push(format!(
        ", c AS (SELECT o.*, coalesce((SELECT max(h.at) FROM h WHERE h.record_id = o.id \
         AND h.stage = o.status), o.created_at) AS closed_at FROM o \
         WHERE o.status IN ('{WON}', '{LOST}')) \
         SELECT grouping(owner_id)::int4, coalesce(owner_id::text, 'none'), \
         coalesce(source, 'unknown'), status, currency, count(*), sum(amount) FROM c \
         WHERE closed_at >= "
    ));
    q.push_bind(set.from)
        .push(" AND closed_at < ")
        .push_bind(set.to)
        .push(" GROUP BY GROUPING SETS ((owner_id, status, currency), (source, status, currency))");
    let rows: Vec<(i32, String, String, String, String, i64, f64)> = q
        .build_query_as()
        .persistent(false)
        .fetch_all(tx.conn())
        .await?;
    let (mut by_owner, mut by_source) = (BTreeMap::new(), BTreeMap::new());
    for (by_source_set, owner, source, status, currency, count, amount) in rows {
        let group: &mut Closed = if by_source_set == 1 {
            by_source.entry(source).or_default()
        } else {
            by_owner.entry(owner).or_default()
        };
        let (n, sum) = if status == WON {
            (&mut group.won, &mut group.won_amount)
        } else {
            (&mut group.lost, &mut group.lost_amount)
        };
        *n += count;
        *sum.entry(currency).or_default() += amount;
    }
    Ok((by_owner, by_source))
}
