//! `/jobs`: the tenant's durable jobs (reminders, mail), so failures are visible and a dead
//! job can be run again after its cause is fixed.

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::context::page_size;
use crm_core::jobs::{self, JobQuery, JobView};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

pub struct JobsApi(pub AppState);

#[derive(Object)]
pub struct JobOut {
    pub id: i64,
    /// `task.reminder`, `mail.send`, …
    pub kind: String,
    /// The record the job is about.
    #[oai(skip_serializing_if_is_none)]
    pub subject_id: Option<Uuid>,
    /// `pending`, `running`, `done`, `dead` (out of attempts) or `cancelled`.
    pub status: String,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why the last attempt failed.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobView> for JobOut {
    fn from(j: JobView) -> Self {
        JobOut {
            id: j.id,
            kind: j.kind,
            subject_id: j.subject_id,
            status: j.status,
            run_at: j.run_at,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Object)]
pub struct JobPage {
    pub items: Vec<JobOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[OpenApi(tag = "Tag::Account")]
impl JobsApi {
    /// Jobs, newest first; filter by `status` (e.g. `dead`), `kind`, `subject_id`.
    #[oai(path = "/jobs", method = "get")]
    async fn list(
        &self,
        auth: Auth,
        status: Query<Option<String>>,
        kind: Query<Option<String>>,
        subject_id: Query<Option<Uuid>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<JobPage>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = jobs::list(
            &mut tx,
            &caller,
            JobQuery {
                status: status.0.as_deref(),
                kind: kind.0.as_deref(),
                subject_id: subject_id.0,
                cursor: cursor.0.as_deref(),
                limit: page_size(limit.0),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Json(JobPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// One job.
    #[oai(path = "/jobs/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<i64>) -> ApiResult<Json<JobOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let job = jobs::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(job.into()))
    }

    /// Runs a dead or cancelled job again now (409 for any other status).
    #[oai(path = "/jobs/:id/retry", method = "post")]
    async fn retry(&self, auth: Auth, id: Path<i64>) -> ApiResult<Json<JobOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let job = jobs::retry(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(job.into()))
    }
}
