//! What callers do with sales pipelines: read them (`customers:read`), manage them
//! (`tenant:manage`, audited), and see a pipeline's board — one column per stage with its
//! count, sums per currency and first opportunities, within the caller's opportunity scope.

use super::access::Access;
use super::meta::{ObjectKey, RecordAction};
use super::query::{self, Filter, ListQuery, Op};
use super::sales::{self, Pipeline, Stage, LOST, WON};
use super::schema::ObjectSchema;
use crm_core::audit::{self, Actor};
use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::error::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Every pipeline, in position order.
pub async fn list(tx: &mut TenantTx, caller: &Caller) -> Result<Vec<Pipeline>> {
    caller.require(Permission::CustomersRead)?;
    sales::list(tx).await
}

/// One pipeline.
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Pipeline> {
    caller.require(Permission::CustomersRead)?;
    sales::get(tx, id).await
}

/// Creates a pipeline with ordered open stages.
pub async fn create(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    name: &str,
    stages: &[Stage],
) -> Result<Pipeline> {
    caller.require(Permission::TenantManage)?;
    let p = sales::create(tx, name, stages).await?;
    audit::record(
        tx,
        actor,
        "pipeline.created",
        Some(("pipeline", p.id.to_string())),
        serde_json::json!({ "name": p.name }),
    )
    .await?;
    Ok(p)
}

/// Renames a pipeline or replaces its open stages.
pub async fn update(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    name: Option<&str>,
    stages: Option<&[Stage]>,
) -> Result<Pipeline> {
    caller.require(Permission::TenantManage)?;
    let p = sales::update(tx, id, name, stages).await?;
    audit::record(
        tx,
        actor,
        "pipeline.updated",
        Some(("pipeline", p.id.to_string())),
        serde_json::json!({ "name": p.name }),
    )
    .await?;
    Ok(p)
}

/// Deletes a pipeline no opportunity uses.
pub async fn delete(tx: &mut TenantTx, caller: &Caller, actor: &Actor, id: Uuid) -> Result<()> {
    caller.require(Permission::TenantManage)?;
    sales::delete(tx, id).await?;
    audit::record(
        tx,
        actor,
        "pipeline.deleted",
        Some(("pipeline", id.to_string())),
        serde_json::json!({}),
    )
    .await
}

/// One column of a board.
pub struct BoardColumn {
    pub stage: Stage,
    /// Live opportunities in the stage that the caller sees.
    pub count: i64,
    /// Sum of amounts, per currency.
    pub amount: BTreeMap<String, f64>,
    /// Sum of amount × probability / 100, per currency.
    pub weighted_amount: BTreeMap<String, f64>,
    /// The first page of the stage's opportunities.
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// A pipeline's board: its open stages, then won and lost, each with up to `limit`
/// opportunities. `schema` is the opportunities' schema.
pub async fn board(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    id: Uuid,
    limit: i64,
) -> Result<(Pipeline, Vec<BoardColumn>)> {
    access.require(ObjectKey::Opportunities, RecordAction::Read)?;
    let pipeline = sales::get(tx, id).await?;
    let sums = sales::stage_sums(tx, access.scope(), pipeline.id).await?;
    let terminal = [
        Stage {
            key: WON.into(),
            name: "赢单 Won".into(),
            probability: 100,
        },
        Stage {
            key: LOST.into(),
            name: "输单 Lost".into(),
            probability: 0,
        },
    ];
    let mut columns = Vec::new();
    for stage in pipeline.stages.iter().chain(terminal.iter()) {
        let mut column = BoardColumn {
            stage: stage.clone(),
            count: 0,
            amount: BTreeMap::new(),
            weighted_amount: BTreeMap::new(),
            items: Vec::new(),
            next_cursor: None,
        };
        for sum in sums.iter().filter(|s| s.stage == stage.key) {
            column.count += sum.count;
            column.amount.insert(sum.currency.clone(), sum.amount);
            column
                .weighted_amount
                .insert(sum.currency.clone(), sum.weighted);
        }
        let lq = ListQuery {
            filters: vec![
                Filter {
                    field: "pipeline_id".into(),
                    op: Op::Eq,
                    value: pipeline.id.to_string(),
                },
                Filter {
                    field: "stage".into(),
                    op: Op::Eq,
                    value: stage.key.clone(),
                },
            ],
            limit: limit.clamp(1, 200),
            ..ListQuery::default()
        };
        let page = query::list(tx, schema, access, &lq).await?;
        column.items = page.items;
        column.next_cursor = page.next_cursor;
        columns.push(column);
    }
    Ok((pipeline, columns))
}
