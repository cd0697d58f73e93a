//! `/pipelines`: sales pipelines and their board.

use super::auth::Auth;
use super::error::ApiResult;
use super::records::{open, PdfResponse};
use super::{Created, NoContent, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::Error;
use crm_records::export::{self, print, print::Printing};
use crm_records::pipelines;
use crm_records::reports;
use crm_records::sales::{Pipeline, Stage};
use crm_records::ObjectKey;
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct PipelinesApi(pub AppState);

/// The sales report's range: by default the last 90 days to 180 days ahead.
fn sales_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (
        from.unwrap_or(now - chrono::Duration::days(90)),
        to.unwrap_or(now + chrono::Duration::days(180)),
    )
}

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

impl From<pipelines::BoardColumn> for BoardColumn {
    fn from(c: pipelines::BoardColumn) -> Self {
        BoardColumn {
            key: c.stage.key,
            name: c.stage.name,
            probability: c.stage.probability,
            count: c.count,
            amount: c.amount,
            weighted_amount: c.weighted_amount,
            items: c.items,
            next_cursor: c.next_cursor,
        }
    }
}

#[OpenApi(tag = "Tag::Records")]
impl PipelinesApi {
    /// All pipelines.
    #[oai(path = "/pipelines", method = "get")]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<PipelineOut>>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let all = pipelines::list(&mut tx, &caller).await?;
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
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let stages = stages_of(&body.stages);
        let p = pipelines::create(&mut tx, &caller, &actor, &body.name, &stages).await?;
        tx.commit().await?;
        Ok(Created::Created(Json(p.into())))
    }

    /// One pipeline.
    #[oai(path = "/pipelines/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<PipelineOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let p = pipelines::get(&mut tx, &caller, id.0).await?;
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
        let stages = body.stages.as_deref().map(stages_of);
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let name = body.name.as_deref();
        let p = pipelines::update(&mut tx, &caller, &actor, id.0, name, stages.as_deref()).await?;
        tx.commit().await?;
        Ok(Json(p.into()))
    }

    /// Delete a pipeline no opportunity uses.
    #[oai(path = "/pipelines/:id", method = "delete")]
    async fn delete(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<NoContent> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        pipelines::delete(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
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
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Opportunities).await?;
        let limit = limit.0.unwrap_or(20);
        let (pipeline, columns) =
            pipelines::board(&mut tx, &rc.schema, &rc.access(), id.0, limit).await?;
        tx.commit().await?;
        Ok(Json(Board {
            pipeline: pipeline.into(),
            columns: columns.into_iter().map(Into::into).collect(),
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
        let (from, to) = sales_range(from.0, to.0);
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Opportunities).await?;
        let report = reports::sales(&mut tx, &rc.access(), pipeline_id.0, from, to).await?;
        tx.commit().await?;
        Ok(Json(
            serde_json::to_value(report).map_err(|e| Error::internal(e.to_string()))?,
        ))
    }

    /// The same sales report as a printable PDF (Chinese or English, as your locale, else
    /// `Accept-Language`, else the company's): funnel, forecast, won and lost by owner and by
    /// customer source. Audited as `reports.exported`.
    #[oai(path = "/reports/sales/pdf", method = "get")]
    async fn sales_report_pdf(
        &self,
        auth: Auth,
        pipeline_id: Query<Option<Uuid>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        req: &Request,
    ) -> ApiResult<PdfResponse> {
        let (from, to) = sales_range(from.0, to.0);
        let (mut tx, rc) = open(&self.0, &auth, ObjectKey::Opportunities).await?;
        let lang = export::caller_lang(&mut tx, &rc.caller, req.header("accept-language")).await?;
        let printing = Printing {
            by: &rc.ctx.principal.name,
            lang,
        };
        let doc =
            print::sales_report(&mut tx, &rc.access(), pipeline_id.0, from, to, &printing).await?;
        let bytes = self.0.pdf_font.render(doc).await?;
        tx.commit().await?;
        Ok(PdfResponse::pdf(bytes, "sales-report.pdf"))
    }
}
