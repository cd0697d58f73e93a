//! `/approvals`: requests with ordered steps, decisions, recall. A pending approval locks its
//! record (409 `record.pending_approval` on edits).

use super::auth::Auth;
use super::error::ApiResult;
use super::{Created, Tag};
use crate::server::AppState;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::authz::acting_user;
use crm_core::authz::Permission;
use crm_core::context::page_size;
use crm_core::Error;
use crm_records::meta::{ObjectKey, RecordAction};
use crm_records::CallerScope;
use crm_workflows::approvals::{self, Approval, ApprovalQuery, NewApproval, StepInput};
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

/// `30m`, `8h`, `2d`, `1w`, `1h30m` in seconds.
fn duration(field: &str, raw: &str) -> Result<i64, Error> {
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
    if !digits.is_empty() || total <= 0 || total > 3650 * 86_400 {
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
        let ctx = auth.0;
        let manage = self
            .0
            .permissions_of(&ctx)
            .await?
            .contains(&Permission::WorkflowsManage);
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let user = acting_user(&mut tx, &ctx.principal).await?;
        let mine = mine.0.unwrap_or(false);
        if (mine || !manage) && user.is_none() {
            return Err(
                Error::forbidden("approval.no_user", "this credential acts for no user").into(),
            );
        }
        let page = approvals::list(
            &mut tx,
            ApprovalQuery {
                status: status.0.as_deref(),
                object: object.0.as_deref(),
                record_id: record_id.0,
                waiting_for: if mine { user } else { None },
                involving: if manage { None } else { user },
                cursor: cursor.0.as_deref(),
                limit: page_size(limit.0),
            },
        )
        .await?;
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
        let ctx = auth.0;
        let body = body.0;
        let object = ObjectKey::parse(&body.object).ok_or_else(|| {
            Error::invalid_field(
                "object",
                "unknown_object",
                format!("'{}' is not an object", body.object),
            )
        })?;
        self.0
            .require(&ctx, object.permission(RecordAction::Update))
            .await?;
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
        let (mut tx, caller) = self.0.begin(&ctx).await?;
        crm_records::engine::ensure_visible(
            &mut tx,
            object,
            caller.record_scope(object),
            body.record_id,
            crm_records::engine::Visibility::Live,
        )
        .await?;
        let user = caller.user_id;
        let a = approvals::request(
            &mut tx,
            &Actor::of(&ctx),
            NewApproval {
                object,
                record_id: body.record_id,
                title: body.title,
                steps,
                requested_by: user,
                rule_id: None,
                rule_version_id: None,
                on_approve: Vec::new(),
                on_reject: Vec::new(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Created::Created(Json(a.into())))
    }

    /// One approval with its decisions.
    #[oai(path = "/approvals/:id", method = "get")]
    async fn get(&self, auth: Auth, id: Path<Uuid>) -> ApiResult<Json<ApprovalOut>> {
        let ctx = auth.0;
        let manage = self
            .0
            .permissions_of(&ctx)
            .await?
            .contains(&Permission::WorkflowsManage);
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let a = approvals::get(&mut tx, id.0).await?;
        let user = acting_user(&mut tx, &ctx.principal).await?;
        if !manage && !user.is_some_and(|u| approvals::involves(&a, u)) {
            return Err(
                Error::not_found("approval.not_found", format!("no approval {}", id.0)).into(),
            );
        }
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
        let ctx = auth.0;
        let manage = self
            .0
            .permissions_of(&ctx)
            .await?
            .contains(&Permission::WorkflowsManage);
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let user = acting_user(&mut tx, &ctx.principal).await?;
        let a = approvals::recall(&mut tx, &Actor::of(&ctx), user, id.0, manage).await?;
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
        let ctx = auth.0;
        let mut tx = self.0.db.tenant_tx(&ctx.tenant).await?;
        let Some(user) = acting_user(&mut tx, &ctx.principal).await? else {
            return Err(Error::forbidden(
                "approval.not_an_approver",
                "this credential acts for no user",
            )
            .into());
        };
        let a = approvals::decide(
            &mut tx,
            &Actor::of(&ctx),
            user,
            id,
            approve,
            comment.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(a.into()))
    }
}
