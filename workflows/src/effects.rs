//! The effects a rule's script returns, carried out through the services: each effect under
//! the rule's run-as role (its permissions, scopes and masking), all of a run's effects or
//! none (a savepoint), with what each made (ids) for the run log. Also what effects need
//! around them: resolving users and teams named in scripts, assignment, the webhook host
//! allow-list, and the mail templates.

use crate::approvals::{self, NewApproval, StepInput};
use crate::executor::{schema_of, Outcome, RunAs};
use crate::memo::WorkflowMemo;
use crate::payloads::{FollowUp, PluginCall, WebhookCall};
use crate::rule_mail::send_email;
use crate::rules::RuleVersion;
use chrono::{Duration, Utc};
use crm_core::audit::Actor;
use crm_core::authz::Permission;
use crm_core::crypto::{DataKey, MasterKey};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, NewJob};
use crm_core::{Error, Result};
use crm_desk as desk;
use crm_records::engine::Access;
use crm_records::meta::{ObjectKey, RecordAction};
use crm_records::service::{self, CreateOptions};
use crm_rules_protocol::Effect;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Everything an effect needs.
pub(crate) struct EffectCtx<'a> {
    /// The rule version acting; `None` for a plugin's actions (which cannot request
    /// approvals or schedule follow-ups: those belong to a rule).
    pub(crate) version: Option<&'a RuleVersion>,
    pub(crate) object: ObjectKey,
    pub(crate) record_id: Option<Uuid>,
    /// The record as the effects left it so far (refreshed after each change to it).
    pub(crate) record: Value,
    pub(crate) actor: Actor,
    pub(crate) run_as: Arc<RunAs>,
    pub(crate) data_key: Option<DataKey>,
    /// Opens the data key of other objects' encrypted fields (`create_record`).
    pub(crate) master: Option<&'a MasterKey>,
    pub(crate) key: &'a str,
}

impl<'a> EffectCtx<'a> {
    fn access(&self, object: ObjectKey) -> Access<'_> {
        self.run_as
            .access(&self.actor, object, self.data_key.as_ref())
    }

    fn require(&self, permission: Permission) -> Result<()> {
        if self.run_as.grants.holds(permission) {
            Ok(())
        } else if self.version.is_none() {
            Err(Error::forbidden(
                "auth.forbidden",
                format!(
                    "the plugin install lacks {}; an administrator can grant it on the install",
                    permission.as_str()
                ),
            ))
        } else {
            Err(Error::forbidden(
                "rule.forbidden",
                format!(
                    "the rule runs as role '{}', which lacks {}; give the role that permission or run the rule as another role",
                    self.run_as.role,
                    permission.as_str()
                ),
            ))
        }
    }

    fn rule(&self, action: &str) -> Result<&'a RuleVersion> {
        self.version.ok_or_else(|| {
            effect_error(format!(
                "{action} is an action of rules only; a plugin cannot use it"
            ))
        })
    }

    pub(crate) fn record_id(&self) -> Result<Uuid> {
        self.record_id
            .ok_or_else(|| effect_error("this action needs a record; the run has none"))
    }

    pub(crate) fn field_uuid(&self, key: &str) -> Option<Uuid> {
        self.record[key]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
    }
}

pub(crate) fn effect_error(message: impl Into<String>) -> Error {
    Error::invalid_field("effects", "effect_failed", message)
}

/// Applies every effect or none: on the first failure the savepoint is rolled back and the
/// run is `failed` with that error.
pub(crate) async fn apply_all(
    tx: &mut TenantTx,
    mut ctx: EffectCtx<'_>,
    effects: Vec<Effect>,
) -> Result<Outcome> {
    // In a transaction shared by several jobs, a failed effect fails the job instead: the
    // worker then runs it again alone, where the savepoint lets the run be logged as failed.
    // That saves two round trips per run in the common case, where every effect succeeds.
    let guarded = !tx.is_shared();
    if guarded {
        sqlx::query("SAVEPOINT rule_effects")
            .execute(tx.conn())
            .await?;
    }
    // Approvals lock their record: request them after the other effects on it.
    let mut ordered: Vec<(usize, Effect)> = effects.into_iter().enumerate().collect();
    ordered.sort_by_key(|(i, e)| (matches!(e, Effect::RequestApproval { .. }), *i));
    let mut done = vec![Value::Null; ordered.len()];
    for (i, effect) in ordered {
        match apply(tx, &mut ctx, i, &effect).await {
            Ok(result) => {
                if effect.writes_records() {
                    tx.memo::<WorkflowMemo>().records_written = true;
                }
                // The run log keeps each effect as JSON with what it made.
                let mut logged = logged(&effect);
                if let (Value::Object(map), false) = (&mut logged, result.is_null()) {
                    map.insert("result".into(), result);
                }
                done[i] = logged;
            }
            Err(e) => {
                if !guarded {
                    return Err(e);
                }
                sqlx::query("ROLLBACK TO SAVEPOINT rule_effects")
                    .execute(tx.conn())
                    .await?;
                if matches!(
                    e,
                    Error::Database(_) | Error::Internal(_) | Error::Unavailable(_)
                ) {
                    // Not the rule's fault: let the job retry.
                    return Err(e);
                }
                let mut effects: Vec<Value> = done.into_iter().filter(|e| !e.is_null()).collect();
                effects.push(logged(&effect));
                let message = match &e {
                    Error::Invalid { fields, .. } if !fields.is_empty() => fields
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                let mut error = json!({
                    "code": e.code(),
                    "message": format!("{} (effect {}): {message}", effect.action(), i + 1),
                    "effect": i,
                });
                // The fields and their codes, as the API's 422 lists them.
                if let Error::Invalid { fields, .. } = &e {
                    error["errors"] = fields
                        .iter()
                        .map(|f| json!({ "field": f.field, "code": f.code, "message": f.message }))
                        .collect();
                }
                return Ok(Outcome {
                    outcome: "failed",
                    effects,
                    error: Some(error),
                });
            }
        }
    }
    if guarded {
        sqlx::query("RELEASE SAVEPOINT rule_effects")
            .execute(tx.conn())
            .await?;
    }
    Ok(Outcome {
        outcome: "succeeded",
        effects: done,
        error: None,
    })
}

/// An effect as the run log and the API show it.
pub(crate) fn logged(effect: &Effect) -> Value {
    serde_json::to_value(effect).unwrap_or_else(|_| json!({ "action": effect.action() }))
}

/// Carries out one effect; returns what it made (ids) for the run log.
async fn apply(
    tx: &mut TenantTx,
    ctx: &mut EffectCtx<'_>,
    index: usize,
    effect: &Effect,
) -> Result<Value> {
    match effect {
        Effect::SetField { key, value } => {
            ctx.require(ctx.object.permission(RecordAction::Update))?;
            let id = ctx.record_id()?;
            let schema = schema_of(tx, ctx.object).await?;
            let mut body = Map::new();
            body.insert(key.clone(), value.clone());
            ctx.record = service::update(
                tx,
                &schema,
                &ctx.access(ctx.object),
                id,
                None,
                &Value::Object(body),
            )
            .await?;
            Ok(Value::Null)
        }
        Effect::AssignTo { target } => assign(tx, ctx, target).await,
        Effect::CreateTask {
            title,
            due_in_seconds,
            assignee,
            notes,
            priority,
            ..
        } => {
            ctx.require(ObjectKey::Tasks.permission(RecordAction::Create))?;
            let due = Utc::now() + Duration::seconds(*due_in_seconds);
            let assignee = match assignee.as_deref() {
                Some(who) => resolve_user(tx, ctx, who).await?,
                None => owner_of(ctx).ok_or_else(|| {
                    effect_error("the record has no owner; give the task an assignee")
                })?,
            };
            let mut body = json!({
                "title": title,
                "due_at": due,
                "remind_at": due,
                "assignee_id": assignee,
            });
            if let Some(notes) = notes {
                body["notes"] = json!(notes);
            }
            if let Some(priority) = priority {
                body["priority"] = json!(priority);
            }
            for (key, value) in related(ctx) {
                body[key] = json!(value);
            }
            let schema = schema_of(tx, ObjectKey::Tasks).await?;
            let task = service::create(
                tx,
                &schema,
                &ctx.access(ObjectKey::Tasks),
                &body,
                CreateOptions::default(),
            )
            .await?;
            Ok(json!({ "task_id": task["id"] }))
        }
        Effect::AddComment { text: body, public } => {
            let public = *public;
            let id = ctx.record_id()?;
            if ctx.object == ObjectKey::Tickets {
                ctx.require(Permission::TicketsUpdate)?;
                let c = desk::comments::add(
                    tx,
                    id,
                    desk::comments::Author::Staff(None),
                    body,
                    public,
                    &ctx.actor,
                )
                .await?;
                Ok(json!({ "comment_id": c.id }))
            } else {
                // Other records keep notes as activities on their timeline.
                ctx.require(ObjectKey::Activities.permission(RecordAction::Create))?;
                let mut note = json!({
                    "kind": "note",
                    "subject": body.chars().take(120).collect::<String>(),
                    "body": body,
                });
                for (key, value) in related(ctx) {
                    note[key] = json!(value);
                }
                let schema = schema_of(tx, ObjectKey::Activities).await?;
                let a = service::create(
                    tx,
                    &schema,
                    &ctx.access(ObjectKey::Activities),
                    &note,
                    CreateOptions::default(),
                )
                .await?;
                Ok(json!({ "activity_id": a["id"] }))
            }
        }
        Effect::SendEmail { template, to } => send_email(tx, ctx, index, template, to).await,
        Effect::RequestApproval {
            title,
            steps,
            on_approve,
            on_reject,
        } => {
            ctx.require(ctx.object.permission(RecordAction::Update))?;
            let id = ctx.record_id()?;
            let rule = ctx.rule("request_approval")?;
            let steps = steps
                .iter()
                .map(|s| StepInput {
                    approvers: s.approvers.clone(),
                    mode: s.mode.as_str().to_owned(),
                    quorum: s.quorum,
                    escalate_after_seconds: s.escalate_after_seconds,
                })
                .collect();
            let approval = approvals::request(
                tx,
                &ctx.actor,
                NewApproval {
                    object: ctx.object,
                    record_id: id,
                    title: title.clone().or_else(|| Some(rule.name.clone())),
                    steps,
                    requested_by: None,
                    rule_id: Some(rule.rule_id),
                    rule_version_id: Some(rule.id),
                    on_approve: on_approve.clone(),
                    on_reject: on_reject.clone(),
                },
            )
            .await?;
            Ok(json!({ "approval_id": approval.id }))
        }
        Effect::Schedule {
            delay_seconds,
            then,
            ..
        } => {
            let delay = *delay_seconds;
            let rule = ctx.rule("schedule")?;
            let origin = format!("{}:fx{index}", ctx.key);
            let mut job = NewJob::of(&FollowUp {
                rule_id: rule.rule_id,
                rule_version_id: Some(rule.id),
                object: Some(ctx.object.as_str().to_owned()),
                record_id: ctx.record_id,
                actions: vec![(**then).clone()],
                origin: origin.clone(),
            })?
            .dedupe(origin.clone())
            .at(Utc::now() + Duration::seconds(delay));
            job.subject_id = ctx.record_id;
            let job_id = jobs::enqueue(tx, job).await?;
            Ok(json!({ "job_id": job_id, "run_at": Utc::now() + Duration::seconds(delay) }))
        }
        Effect::Webhook { url, payload } => {
            let rule = ctx.rule("webhook")?;
            check_webhook_host(tx, url).await?;
            let key = format!("{}:fx{index}", ctx.key);
            let body = json!({
                "rule": { "id": rule.rule_id, "name": rule.name, "version": rule.version },
                "object": ctx.object.as_str(),
                "record_id": ctx.record_id,
                "payload": payload,
                "idempotency_key": key,
            });
            let job_id = jobs::enqueue(
                tx,
                NewJob::of(&WebhookCall {
                    url: url.clone(),
                    body,
                    key: key.clone(),
                })?
                .dedupe(format!("webhook:{key}")),
            )
            .await?;
            Ok(json!({ "job_id": job_id }))
        }
        Effect::CreateRecord { object, fields } => create_record(tx, ctx, object, fields).await,
        Effect::CallPlugin { plugin, payload } => {
            // Rules only: a plugin calling plugins could loop without a rule's depth limit.
            let rule = ctx.rule("call_plugin")?;
            let key = format!("{}:fx{index}", ctx.key);
            let job_id = jobs::enqueue(
                tx,
                NewJob::of(&PluginCall {
                    plugin: plugin.clone(),
                    object: ctx.object.as_str().to_owned(),
                    record_id: ctx.record_id,
                    payload: payload.clone(),
                    rule_id: rule.rule_id,
                    rule_name: rule.name.clone(),
                    key: key.clone(),
                })?
                .dedupe(format!("plugin-call:{key}")),
            )
            .await?;
            Ok(json!({ "job_id": job_id }))
        }
        Effect::Notify { user, text: body } => {
            let user = resolve_user(tx, ctx, user).await?;
            let title: String = body.chars().take(200).collect();
            let id = crm_core::notifications::create(
                tx,
                crm_core::notifications::NewNotification {
                    user_id: user,
                    kind: "rule",
                    title: &title,
                    body: Some(body),
                    record: ctx.record_id.map(|r| (ctx.object.as_str(), r)),
                    job_id: None,
                },
            )
            .await?;
            Ok(json!({ "notification_id": id, "user_id": user }))
        }
    }
}

/// `create_record(object, fields)`: a record of any object the tenant has, built-in or its
/// own, made by the record service as the rule's run-as role — which checks the permission
/// (403 `auth.forbidden`) and validates the fields (422 with the API's codes) itself.
async fn create_record(
    tx: &mut TenantTx,
    ctx: &EffectCtx<'_>,
    object: &str,
    fields: &Value,
) -> Result<Value> {
    let object = ObjectKey::named(object).ok_or_else(|| crm_core::objects::not_found(object))?;
    let schema = schema_of(tx, object).await?;
    let data_key = schema.data_key(tx, ctx.master).await?;
    let access = ctx.run_as.access(&ctx.actor, object, data_key.as_ref());
    let record = service::create(tx, &schema, &access, fields, CreateOptions::default()).await?;
    Ok(json!({ "object": object.as_str(), "record_id": record["id"] }))
}

/// The customer, contact and opportunity a record hangs off, for the tasks and notes a rule
/// creates about it.
fn related(ctx: &EffectCtx<'_>) -> Vec<(&'static str, Uuid)> {
    let mut out = Vec::new();
    let own = ctx.record_id;
    let field = |k: &str| ctx.field_uuid(k);
    match ctx.object {
        ObjectKey::Customers => out.extend(own.map(|id| ("customer_id", id))),
        ObjectKey::Contacts => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            if field("customer_id").is_some() {
                out.extend(own.map(|id| ("contact_id", id)));
            }
        }
        ObjectKey::Opportunities => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            out.extend(field("contact_id").map(|c| ("contact_id", c)));
            out.extend(own.map(|id| ("opportunity_id", id)));
        }
        ObjectKey::Tickets => {
            out.extend(field("customer_id").map(|c| ("customer_id", c)));
            out.extend(field("contact_id").map(|c| ("contact_id", c)));
        }
        ObjectKey::Activities | ObjectKey::Tasks => {
            for k in ["customer_id", "contact_id", "opportunity_id"] {
                out.extend(field(k).map(|c| (k, c)));
            }
        }
        // A custom object's records hang off what its relation fields name; a task about one
        // links to none of the built-in records.
        ObjectKey::Custom(_) => {}
    }
    out
}

fn owner_of(ctx: &EffectCtx<'_>) -> Option<Uuid> {
    ctx.field_uuid(ctx.object.owner_column())
        .or_else(|| ctx.field_uuid("owner_id"))
}

/// A user named in a script: a user id, `user:<id or e-mail>`, an e-mail, or a role of the
/// record — `owner`, `assignee`, `creator`, `manager` (the owner's manager).
pub(crate) async fn resolve_user(
    tx: &mut TenantTx,
    ctx: &EffectCtx<'_>,
    who: &str,
) -> Result<Uuid> {
    let who = who.trim();
    let who = who.strip_prefix("user:").unwrap_or(who);
    let found: Option<Uuid> = match who {
        "owner" => owner_of(ctx),
        "assignee" => ctx.field_uuid("assignee_id"),
        "creator" => ctx.field_uuid("created_by"),
        "manager" => match owner_of(ctx) {
            Some(owner) => {
                sqlx::query_scalar::<_, Option<Uuid>>("SELECT manager_id FROM users WHERE id = $1")
                    .bind(owner)
                    .fetch_optional(tx.conn())
                    .await?
                    .flatten()
            }
            None => None,
        },
        _ => {
            let id = Uuid::parse_str(who).ok();
            sqlx::query_scalar(
                "SELECT id FROM users WHERE status = 'active' AND (id = $1 OR lower(email) = lower($2))",
            )
            .bind(id)
            .bind(who)
            .fetch_optional(tx.conn())
            .await?
        }
    };
    let Some(user) = found else {
        return Err(effect_error(format!(
            "'{who}' names no active user (use a user id, an e-mail, or owner / assignee / creator / manager)"
        )));
    };
    // Rule effects never change users, so within one transaction the answer holds.
    let known = tx.memo::<WorkflowMemo>().active_users.get(&user).copied();
    let active = match known {
        Some(active) => active,
        None => {
            let active = sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM users WHERE id = $1 AND status = 'active'",
            )
            .bind(user)
            .fetch_optional(tx.conn())
            .await?
            .is_some();
            tx.memo::<WorkflowMemo>().active_users.insert(user, active);
            active
        }
    };
    if active {
        Ok(user)
    } else {
        Err(effect_error(format!("'{who}' is not an active user")))
    }
}

async fn team_id(tx: &mut TenantTx, raw: &str) -> Result<Uuid> {
    let id = Uuid::parse_str(raw).ok();
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM teams WHERE id = $1 OR name = $2")
        .bind(id)
        .bind(raw)
        .fetch_optional(tx.conn())
        .await?;
    found.ok_or_else(|| effect_error(format!("no team '{raw}'")))
}

/// `assign_to`: a user (see [`resolve_user`]); `team:<id or name>` (tickets: the team, which
/// assigns by its own mode); `round_robin` / `least_loaded` (tickets: within the ticket's
/// team), or `round_robin:<team>` / `least_loaded:<team>` for any record.
async fn assign(tx: &mut TenantTx, ctx: &mut EffectCtx<'_>, target: &str) -> Result<Value> {
    ctx.require(ctx.object.permission(RecordAction::Update))?;
    let id = ctx.record_id()?;
    let owner_col = ctx.object.owner_column();
    let (strategy, team) = match target.split_once(':') {
        Some(("round_robin", t)) => (Some("round_robin"), Some(t)),
        Some(("least_loaded", t)) => (Some("least_open"), Some(t)),
        _ if target == "round_robin" => (Some("round_robin"), None),
        _ if target == "least_loaded" => (Some("least_open"), None),
        _ => (None, None),
    };
    let body = if let Some(team_ref) = target.strip_prefix("team:") {
        if ctx.object != ObjectKey::Tickets {
            return Err(effect_error(
                "only tickets belong to teams; for other records use round_robin:<team> or a user",
            ));
        }
        let team = team_id(tx, team_ref).await?;
        json!({ "team_id": team })
    } else if let Some(strategy) = strategy {
        let team = match team {
            Some(t) => team_id(tx, t).await?,
            None if ctx.object == ObjectKey::Tickets => ctx.field_uuid("team_id").ok_or_else(|| {
                effect_error("the ticket has no team; assign it to a team first or name one: round_robin:<team>")
            })?,
            None => {
                return Err(effect_error(format!(
                    "name the team to pick from: {target}:<team id or name>"
                )))
            }
        };
        let Some(user) = desk::assignment::pick_with(tx, team, Some(strategy)).await? else {
            return Err(effect_error("nobody in the team is active and available"));
        };
        json!({ owner_col: user })
    } else {
        let user = resolve_user(tx, ctx, target).await?;
        json!({ owner_col: user })
    };
    let schema = schema_of(tx, ctx.object).await?;
    ctx.record = service::update(tx, &schema, &ctx.access(ctx.object), id, None, &body).await?;
    Ok(body)
}

/// Whether the company's admin allowed webhooks to the URL's host (`settings.webhook_hosts`:
/// `hooks.example.com`, or `*.example.com` for its subdomains).
pub async fn check_webhook_host(tx: &mut TenantTx, url: &str) -> Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| effect_error(format!("'{url}' is not a URL")))?;
    let host = parsed
        .host_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| effect_error(format!("'{url}' has no host")))?;
    let allowed: Vec<String> = sqlx::query_scalar("SELECT webhook_hosts FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let ok = allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => a == host,
        }
    });
    if ok {
        Ok(())
    } else {
        Err(Error::forbidden(
            "rule.webhook_host_not_allowed",
            format!("webhooks to '{host}' are not allowed; an admin can add the host under PUT /api/v1/settings/workflows"),
        ))
    }
}
