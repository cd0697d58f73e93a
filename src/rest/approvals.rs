//! `/approvals`: requests with ordered steps, decisions, recall. A pending approval locks its
//! record (409 `record.pending_approval` on edits).

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::context::page_size;
use crm_core::Error;
use crm_workflows::approval_service::{self, ApprovalFilter};
use crm_workflows::approvals::{Approval, StepInput};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

pub struct ApprovalsApi(pub AppState);

#[derive(Object)]
pub struct StepRequest {
    /// User ids or e-mails, `role:<name>`, `team:<id or name>`, `owner`, `manager`.
    pub approvers: Vec<String>,
    /// `any` (default), `all` or `quorum`.
    pub mode: Option<String>,
    /// For `quorum`: approvals needed.
    pub quorum: Option<i64>,
    /// Business time before the step escalates, e.g. `8h`, `2d`.
    pub escalate_after: Option<String>,
}

#[derive(Object)]
pub struct ApprovalRequest {
    /// A built-in object (`opportunities`) or one of the company's own (`claims`).
    pub object: String,
    pub record_id: Uuid,
    pub title: Option<String>,
    pub steps: Vec<StepRequest>,
}

#[derive(Object)]
pub struct DecisionRequest {
    pub comment: Option<String>,
}

#[derive(Object)]
pub struct DecisionOut {
    pub step: i32,
    pub user_id: Uuid,
    /// `approve` or `reject`.
    pub decision: String,
    #[oai(skip_serializing_if_is_none)]
    pub comment: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct ApprovalOut {
    pub id: Uuid,
    pub object: String,
    pub record_id: Uuid,
    pub title: String,
    /// `pending`, `approved`, `rejected` or `recalled`.
    pub status: String,
    /// Each step: `approvers` (as given), `users` (resolved), `mode`, `quorum`,
    /// `escalate_after_seconds`, `escalated_at`, `escalated_to`.
    pub steps: Value,
    /// 0-based.
    pub current_step: i32,
    #[oai(skip_serializing_if_is_none)]
    pub requested_by: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    pub rule_id: Option<Uuid>,
    pub decisions: Vec<DecisionOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<Approval> for ApprovalOut {
    fn from(a: Approval) -> Self {
        ApprovalOut {
            id: a.id,
            object: a.object,
            record_id: a.record_id,
            title: a.title,
            status: a.status,
            steps: a.steps,
            current_step: a.current_step,
            requested_by: a.requested_by,
            rule_id: a.rule_id,
            decisions: a
                .decisions
                .into_iter()
                .map(|d| DecisionOut {
                    step: d.step,
                    user_id: d.user_id,
                    decision: d.decision,
                    comment: d.comment,
                    created_at: d.created_at,
                })
                .collect(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            decided_at: a.decided_at,
        }
    }
}

#[derive(Object)]
pub struct ApprovalPage {
    pub items: Vec<ApprovalOut>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// Longest escalation delay: ten years.
pub const MAX_ESCALATION_DAYS: i64 = 3650;

/// `30m`, `8h`, `2d`, `1w`, `1h30m` in seconds.
pub(super) fn duration(field: &str, raw: &str) -> Result<i64, Error> {
    let bad = || {
        Error::invalid_field(
            field,
            "invalid_duration",
            format!("'{raw}' is not a duration; write e.g. \"30m\", \"8h\", \"2d\" or \"1w\""),
        )
    };
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !digits.is_empty() || total <= 0 || total > MAX_ESCALATION_DAYS * 86_400 {
        return Err(bad());
    }
    Ok(total)
}

#[OpenApi(tag = "Tag::Account")]
impl ApprovalsApi {
    /// Approvals, newest first. `mine=true`: pending ones waiting for my decision. Callers
    /// without `workflows:manage` see only approvals they requested or decide on.
    #[oai(path = "/approvals", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        status: Query<Option<String>>,
        mine: Query<Option<bool>>,
        object: Query<Option<String>>,
        record_id: Query<Option<Uuid>>,
        cursor: Query<Option<String>>,
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<ApprovalPage>> {
        let filter = ApprovalFilter {
            status: status.0.as_deref(),
            mine: mine.0.unwrap_or(false),
            object: object.0.as_deref(),
            record_id: record_id.0,
            cursor: cursor.0.as_deref(),
            limit: page_size(limit.0),
        };
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let page = approval_service::list(&mut tx, &caller, filter).await?;
        tx.commit().await?;
        Ok(Json(ApprovalPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Requests an approval of a record (needs permission to update it).
    #[oai(path = "/approvals", method = "post")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<ApprovalRequest>,
    ) -> ApiResult<Created<ApprovalOut>> {
        let body = body.0;
        let mut steps = Vec::with_capacity(body.steps.len());
        for (i, s) in body.steps.into_iter().enumerate() {
            steps.push(StepInput {
                approvers: s.approvers,
                mode: s.mode.unwrap_or_else(|| "any".into()),
                quorum: s.quorum,
                escalate_after_seconds: match s.escalate_after {
                    Some(d) => Some(duration(&format!("steps[{i}].escalate_after"), &d)?),
                    None => None,
                },
            });
        }
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let (actor, title) = (Actor::of(&ctx), body.title);
        let a = approval_service::request(
            &mut tx,
            &caller,
            &actor,
            &body.object,
            body.record_id,
            title,
            steps,
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(a.into())))
    }

    /// One approval with its decisions.
    #[oai(path = "/approvals/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<ApprovalOut>> {
        let (mut tx, caller, _) = self.0.begin(&auth).await?;
        let a = approval_service::get(&mut tx, &caller, id.0).await?;
        tx.commit().await?;
        Ok(Json(a.into()))
    }

    /// Approves the current step (as one of its approvers).
    #[oai(path = "/approvals/:id/approve", method = "post")]
    async fn approve(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<DecisionRequest>,
    ) -> ApiResult<Json<ApprovalOut>> {
        self.decide(auth, id.0, true, body.0.comment).await
    }

    /// Rejects the approval (as an approver of the current step).
    #[oai(path = "/approvals/:id/reject", method = "post")]
    async fn reject(
        &self,
        auth: Auth,
        id: Path<Uuid>,
        body: Json<DecisionRequest>,
    ) -> ApiResult<Json<ApprovalOut>> {
        self.decide(auth, id.0, false, body.0.comment).await
    }

    /// Recalls a pending approval (its requester, or `workflows:manage`).
    #[oai(path = "/approvals/:id/recall", method = "post")]
    async fn recall(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<ApprovalOut>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let a = approval_service::recall(&mut tx, &caller, &Actor::of(&ctx), id.0).await?;
        tx.commit().await?;
        Ok(Json(a.into()))
    }
}

impl ApprovalsApi {
    async fn decide(
        &self,
        auth: Auth,
        id: Uuid,
        approve: bool,
        comment: Option<String>,
    ) -> ApiResult<Json<ApprovalOut>> {
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let actor = Actor::of(&ctx);
        let comment = comment.as_deref();
        let a = approval_service::decide(&mut tx, &caller, &actor, id, approve, comment).await?;
        tx.commit().await?;
        Ok(Json(a.into()))
    }
}
