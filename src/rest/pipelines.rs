//! `/pipelines`: sales pipelines and their board.

use super::auth::Auth;
use super::error::ApiResult;
use super::records::open;
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::{self, Actor};
use crm_core::authz::Permission;
use crm_core::Error;
use crm_records::query::{self, Filter, ListQuery, Op};
use crm_records::sales::{self, Pipeline, Stage};
use crm_records::ObjectKey;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct PipelinesApi(pub AppState);

#[derive(Object, Clone)]
pub struct StageIn {
    /// `[a-z][a-z0-9_]*`; `won` and `lost` are reserved for the terminal stages.
    pub key: String,
    pub name: String,
    /// Default win probability, 0-100.
    pub probability: i64,
}

#[derive(Object)]
pub struct PipelineOut {
    pub id: Uuid,
    pub name: String,
    /// Open stages in order (the terminal stages `won` and `lost` are implied).
    pub stages: Vec<StageIn>,
    pub position: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Pipeline> for PipelineOut {
    fn from(p: Pipeline) -> Self {
        PipelineOut {
            id: p.id,
            name: p.name,
            stages: p
                .stages
                .into_iter()
                .map(|s| StageIn {
                    key: s.key,
                    name: s.name,
                    probability: s.probability,
                })
                .collect(),
            position: p.position,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Object)]
pub struct CreatePipelineRequest {
    pub name: String,
    pub stages: Vec<StageIn>,
}

#[derive(Object)]
pub struct PatchPipelineRequest {
    pub name: Option<String>,
    /// Replaces the open stages (a stage with open opportunities cannot be removed).
    pub stages: Option<Vec<StageIn>>,
}

/// One column of the board.
#[derive(Object)]
pub struct BoardColumn {
    pub key: String,
    pub name: String,
    pub probability: i64,
    /// Live opportunities in the stage (that the caller sees).
    pub count: i64,
    /// Sum of amounts, per currency.
    pub amount: BTreeMap<String, f64>,
    /// Sum of amount × probability / 100, per currency.
    pub weighted_amount: BTreeMap<String, f64>,
    /// The first page of the stage's opportunities, newest first.
    pub items: Vec<Value>,
    /// Next page: GET /opportunities?filter[pipeline_id]=…&filter[stage]=…&cursor=…
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Object)]
pub struct Board {
    pub pipeline: PipelineOut,
    pub columns: Vec<BoardColumn>,
}

fn stages_of(input: &[StageIn]) -> Vec<Stage> {
    input
        .iter()
        .map(|s| Stage {
            key: s.key.clone(),
            name: s.name.clone(),
            probability: s.probability,
        })
        .collect()
}

#[OpenApi(tag = "Tag::Records")]
impl PipelinesApi {
    /// All pipelines.
    #[oai(path = "/pipelines", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<PipelineOut>>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::CustomersRead).await?;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let all = sales::list(&mut tx).await?;
        tx.commit().await?;
        Ok(Json(all.into_iter().map(Into::into).collect()))
    }

    /// Create a pipeline with ordered stages and default probabilities.
    #[oai(path = "/pipelines", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<CreatePipelineRequest>,
    ) -> ApiResult<Created<PipelineOut>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::TenantManage).await?;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let p = sales::create(&mut tx, &body.name, &stages_of(&body.stages)).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "pipeline.created",
            Some(("pipeline", p.id.to_string())),
            serde_json::json!({"name": p.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(p.into())))
    }

    /// One pipeline.
    #[oai(path = "/pipelines/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<PipelineOut>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::CustomersRead).await?;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let p = sales::get(&mut tx, id.0).await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Rename a pipeline or replace its stages.
    #[oai(path = "/pipelines/:id", method = "patch")]
    async fn patch(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<PatchPipelineRequest>,
    ) -> ApiResult<Json<PipelineOut>> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::TenantManage).await?;
        let stages = body.stages.as_deref().map(stages_of);
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let p = sales::update(&mut tx, id.0, body.name.as_deref(), stages.as_deref()).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "pipeline.updated",
            Some(("pipeline", p.id.to_string())),
            serde_json::json!({"name": p.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Delete a pipeline no opportunity uses.
    #[oai(path = "/pipelines/:id", method = "delete")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let ctx = auth.0;
        self.0.require(&ctx, Permission::TenantManage).await?;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        sales::delete(&mut tx, id.0).await?;
        audit::record(
            &mut tx,
            &Actor::of(&ctx),
            "pipeline.deleted",
            Some(("pipeline", id.0.to_string())),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(NoContent::NoContent)
    }

    /// The board: one column per stage (open stages, then won and lost) with counts, sums
    /// per currency, weighted sums and the first `limit` opportunities (default 20).
    #[oai(path = "/pipelines/:id/board", method = "get")]
    async fn board(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Board>> {
        let ctx = auth.0;
        let (mut tx, rc) = open(
            &self.0,
            &ctx,
            ObjectKey::Opportunities,
            Permission::CustomersRead,
        )
        .await?;
        let pipeline = sales::get(&mut tx, id.0).await?;
        let access = rc.access();
        let sums = sales::stage_sums(&mut tx, access.scope, pipeline.id).await?;
        let mut columns = Vec::new();
        let terminal = [
            Stage {
                key: sales::WON.into(),
                name: "赢单 Won".into(),
                probability: 100,
            },
            Stage {
                key: sales::LOST.into(),
                name: "输单 Lost".into(),
                probability: 0,
            },
        ];
        for stage in pipeline.stages.iter().chain(terminal.iter()) {
            let mut column = BoardColumn {
                key: stage.key.clone(),
                name: stage.name.clone(),
                probability: stage.probability,
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
                limit: limit.0.unwrap_or(20).clamp(1, 200),
                ..ListQuery::default()
            };
            let page = query::list(&mut tx, &rc.schema, &access, &lq).await?;
            column.items = page.items;
            column.next_cursor = page.next_cursor;
            columns.push(column);
        }
        tx.commit().await?;
        Ok(Json(Board {
            pipeline: pipeline.into(),
            columns,
        }))
    }

    /// The sales report for a pipeline (default: the first) and date range (default: the
    /// last 90 days to 180 days ahead): the funnel of opportunities created in the range
    /// (reached count and amount per stage, stage-to-stage conversion, median days per
    /// stage), the weighted forecast by expected close month, and won/lost closed in the range
    /// by owner and by customer source. Within the caller's scope.
    #[oai(path = "/reports/sales", method = "get")]
    async fn sales_report(
        &self,
        auth: Auth,
        pipeline_id: Query<Option<Uuid>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Value>> {
        let ctx = auth.0;
        let now = Utc::now();
        let from = from.0.unwrap_or(now - chrono::Duration::days(90));
        let to = to.0.unwrap_or(now + chrono::Duration::days(180));
        if from >= to {
            return Err(Error::invalid_field("from", "invalid", "from must be before to").into());
        }
        let (mut tx, rc) = open(
            &self.0,
            &ctx,
            ObjectKey::Opportunities,
            Permission::ReportsRead,
        )
        .await?;
        let pipeline = match pipeline_id.0 {
            Some(id) => id,
            None => sales::list(&mut tx)
                .await?
                .first()
                .map(|p| p.id)
                .ok_or_else(|| {
                    Error::not_found("pipeline.not_found", "there is no pipeline yet")
                })?,
        };
        let report = crm_records::reports::sales(&mut tx, &rc.access(), pipeline, from, to).await?;
        tx.commit().await?;
        Ok(Json(
            serde_json::to_value(report).map_err(|e| Error::internal(e.to_string()))?,
        ))
    }
}
