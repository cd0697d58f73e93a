//! What callers do with approvals, checked against their [`Caller`]: request one on a record
//! they may update and see; read, decide and recall the ones they are part of (holders of
//! `workflows:manage` see and recall every one). The approval mechanics live in
//! [`approvals`].

use super::approvals::{self, Approval, ApprovalQuery, NewApproval, StepInput};
use crm_core::audit::Actor;
use crm_core::authz::{Caller, Permission};
use crm_core::context::Page;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_records::{engine, CallerScope, RecordAction, Visibility};
use uuid::Uuid;

/// Which approvals to list.
pub struct ApprovalFilter<'a> {
    pub status: Option<&'a str>,
    /// Only the pending ones waiting for the caller's decision.
    pub mine: bool,
    pub object: Option<&'a str>,
    pub record_id: Option<Uuid>,
    pub cursor: Option<&'a str>,
    pub limit: i64,
}

fn no_user() -> Error {
    Error::forbidden("approval.no_user", "this credential acts for no user")
}

/// Approvals, newest first: every one for `workflows:manage`, otherwise those the caller
/// requested or decides on.
pub async fn list(
    tx: &mut TenantTx,
    caller: &Caller,
    filter: ApprovalFilter<'_>,
) -> Result<Page<Approval>> {
    let manage = caller.holds(Permission::WorkflowsManage);
    let user = caller.user_id;
    if (filter.mine || !manage) && user.is_none() {
        return Err(no_user());
    }
    approvals::list(
        tx,
        ApprovalQuery {
            status: filter.status,
            object: filter.object,
            record_id: filter.record_id,
            waiting_for: if filter.mine { user } else { None },
            involving: if manage { None } else { user },
            cursor: filter.cursor,
            limit: filter.limit,
        },
    )
    .await
}

/// One approval with its decisions (404 unless the caller may see it).
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid) -> Result<Approval> {
    let a = approvals::get(tx, id).await?;
    let involved = caller.user_id.is_some_and(|u| approvals::involves(&a, u));
    if !caller.holds(Permission::WorkflowsManage) && !involved {
        return Err(Error::not_found(
            "approval.not_found",
            format!("no approval {id}"),
        ));
    }
    Ok(a)
}

/// Requests an approval of a record the caller may update and sees, of a built-in object or
/// one of the company's own (422 `unknown_object` on `object` for neither).
pub async fn request(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    object: &str,
    record_id: Uuid,
    title: Option<String>,
    steps: Vec<StepInput>,
) -> Result<Approval> {
    let object = crate::objects::require(tx, object, "object").await?;
    caller.require(object.permission(RecordAction::Update))?;
    let scope = caller.record_scope(object);
    engine::ensure_visible(tx, object, scope, record_id, Visibility::Live).await?;
    approvals::request(
        tx,
        actor,
        NewApproval {
            object,
            record_id,
            title,
            steps,
            requested_by: caller.user_id,
            rule_id: None,
            rule_version_id: None,
            on_approve: Vec::new(),
            on_reject: Vec::new(),
        },
    )
    .await
}

/// Approves (`approve`) or rejects the current step as one of its approvers.
pub async fn decide(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    approve: bool,
    comment: Option<&str>,
) -> Result<Approval> {
    let Some(user) = caller.user_id else {
        return Err(Error::forbidden(
            "approval.not_an_approver",
            "this credential acts for no user",
        ));
    };
    approvals::decide(tx, actor, user, id, approve, comment).await
}

/// Recalls a pending approval (its requester, or `workflows:manage`).
pub async fn recall(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
) -> Result<Approval> {
    let manage = caller.holds(Permission::WorkflowsManage);
    approvals::recall(tx, actor, caller.user_id, id, manage).await
}
