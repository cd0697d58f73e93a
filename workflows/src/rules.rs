//! Rules as the company's admins write them: versioned definitions (every save is a new
//! version; runs name the version that ran), the run log, and the bookkeeping that turns a
//! rule off after too many failures in a row.

use crate::memo::WorkflowMemo;
use crate::sandbox::{SandboxError, SandboxPool};
use crate::trigger::Trigger;
use chrono::{DateTime, Utc};
use crm_core::audit::Actor;
use crm_core::authz::{policy, scope_rank, Caller, Grants, Permission};
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::TenantTx;
use crm_core::jobs::{self, NewJob};
use crm_core::{Error, FieldError, Result};
use crm_records::meta::ObjectKey;
use serde::Serialize;
use serde_json::Value;
use sqlx::FromRow;
use std::sync::Arc;
use uuid::Uuid;

/// Job kind of a schedule trigger's next firing.
pub const CRON_JOB: &str = "rule.cron";

/// What an admin writes.
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub name: String,
    pub object: String,
    pub trigger: Value,
    pub condition: Option<String>,
    pub script: String,
    pub enabled: bool,
    /// The role the rule acts as: its permissions, record scopes and masking (default: the
    /// saver's most powerful role). It may not hold more than the saver.
    pub run_as_role: Option<String>,
}

/// A rule with its current version.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Rule {
    pub id: Uuid,
    pub name: String,
    pub object: String,
    pub trigger: Value,
    pub condition: Option<String>,
    pub script: String,
    pub enabled: bool,
    pub run_as_role: String,
    pub version: i32,
    pub version_id: Option<i64>,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const RULE_COLUMNS: &str = "id, name, object, trigger, condition, script, enabled, run_as_role, \
    version, version_id, consecutive_failures, disabled_reason, created_by, updated_by, created_at, updated_at";

/// One saved version of a rule: what runs.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RuleVersion {
    pub id: i64,
    pub rule_id: Uuid,
    pub version: i32,
    pub name: String,
    pub object: String,
    pub trigger: Value,
    pub condition: Option<String>,
    pub script: String,
    pub enabled: bool,
    pub run_as_role: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const VERSION_COLUMNS: &str = "id, rule_id, version, name, object, trigger, condition, script, \
    enabled, run_as_role, created_by, created_at";

impl RuleVersion {
    pub fn object_key(&self) -> Result<ObjectKey> {
        ObjectKey::named(&self.object)
            .ok_or_else(|| Error::internal(format!("rule on unknown object {}", self.object)))
    }
}

/// One entry of the run log.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RuleRun {
    pub id: i64,
    pub rule_id: Uuid,
    pub rule_version_id: i64,
    pub version: i32,
    pub trigger: Value,
    pub record_id: Option<Uuid>,
    /// `succeeded`, `not_matched` or `failed`.
    pub outcome: String,
    pub effects: Value,
    pub error: Option<Value>,
    pub duration_us: i64,
    pub created_at: DateTime<Utc>,
}

pub(crate) const RUN_COLUMNS: &str = "id, rule_id, rule_version_id, version, trigger, record_id, \
    outcome, effects, error, duration_us, created_at";

/// A rule input checked and compiled.
struct Checked {
    name: String,
    object: ObjectKey,
    trigger: Trigger,
    condition: Option<String>,
    script: String,
    enabled: bool,
    run_as_role: String,
}

/// Maps a sandbox failure at save time: a script error is the admin's to fix (422 with its
/// position), anything else is ours (503).
pub fn compile_error(e: SandboxError) -> Error {
    match e {
        SandboxError::Script {
            code,
            message,
            part,
            line,
            column,
        } => {
            let code: &'static str = match code.as_str() {
                "compile.syntax" => "compile.syntax",
                "compile.unknown_function" => "compile.unknown_function",
                "compile.unknown_variable" => "compile.unknown_variable",
                "compile.eval_forbidden" => "compile.eval_forbidden",
                "compile.import_forbidden" => "compile.import_forbidden",
                "compile.action_in_condition" => "compile.action_in_condition",
                c if c.starts_with("limit.") => "compile.too_large",
                _ => "compile.error",
            };
            let at = match (&part, line, column) {
                (Some(p), Some(l), Some(c)) => format!(" ({p}, line {l}, column {c})"),
                (Some(p), _, _) => format!(" ({p})"),
                _ => String::new(),
            };
            Error::Script {
                code,
                message: format!("{message}{at}"),
                part,
                line,
                column,
            }
        }
        SandboxError::Killed { reason } => Error::Unavailable(format!("rule sandbox: {reason}")),
        SandboxError::Unavailable(m) => Error::Unavailable(format!("rule sandbox: {m}")),
        SandboxError::Busy { waited_ms } => crate::sandbox::busy(waited_ms),
    }
}

/// Longest rule name, in characters after trimming.
pub const NAME_MAX_CHARS: usize = 200;

async fn check(
    tx: &mut TenantTx,
    pool: &SandboxPool,
    saver: &Caller,
    input: RuleInput,
) -> Result<Checked> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
        errors.push(FieldError::new(
            "name",
            "invalid_length",
            format!("1 to {NAME_MAX_CHARS} characters"),
        ));
    }
    let object = crate::objects::known(tx, &input.object).await?;
    if object.is_none() {
        errors.push(crate::objects::unknown("object", &input.object));
    }
    let run_as_role = match input.run_as_role.clone() {
        Some(role) => role,
        None => highest_role(tx, saver).await?,
    };
    let role_known: Option<String> = sqlx::query_scalar("SELECT name FROM roles WHERE name = $1")
        .bind(&run_as_role)
        .fetch_optional(tx.conn())
        .await?;
    if role_known.is_none() {
        errors.push(FieldError::new(
            "run_as_role",
            "unknown_role",
            format!("no role '{run_as_role}'"),
        ));
    } else {
        // A rule acts with its role's permissions and scopes: only someone who holds at
        // least as much may make a rule act so.
        let role_grants = Grants::of_roles(tx, std::slice::from_ref(&run_as_role)).await?;
        saver.grants.ensure_may_grant(&role_grants).map_err(|e| {
            Error::forbidden(
                "auth.escalation",
                format!("the rule would run as role '{run_as_role}': {e}; choose a role you hold"),
            )
        })?;
    }
    if input.script.trim().is_empty() {
        errors.push(FieldError::new(
            "script",
            "required",
            "write the rule's actions, e.g. notify(record.owner_id, \"…\")",
        ));
    }
    let Some(object) = object else {
        return Err(Error::invalid(errors));
    };
    let tz: String = sqlx::query_scalar("SELECT timezone FROM settings")
        .fetch_one(tx.conn())
        .await?;
    let trigger = match Trigger::parse(object, &input.trigger, &tz) {
        Ok(t) => Some(t),
        Err(Error::Invalid { fields, .. }) => {
            errors.extend(fields);
            None
        }
        Err(e) => return Err(e),
    };
    if !errors.is_empty() {
        return Err(Error::invalid(errors));
    }
    let trigger = trigger.ok_or_else(|| Error::internal("trigger missing after checks"))?;
    let condition = input
        .condition
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    pool.compile(Some(tx.tenant().id), condition.as_deref(), &input.script)
        .await
        .map_err(compile_error)?;
    Ok(Checked {
        name,
        object,
        trigger,
        condition,
        script: input.script,
        enabled: input.enabled,
        run_as_role,
    })
}

fn not_found(id: Uuid) -> Error {
    Error::not_found("rule.not_found", format!("no rule {id}"))
}

/// The saver's most powerful role (most permissions, then widest scopes, then name): what a
/// rule runs as when its definition names no role.
async fn highest_role(tx: &mut TenantTx, saver: &Caller) -> Result<String> {
    let roles = policy::subject_roles(tx, &saver.principal.subject()).await?;
    let mut best: Option<((usize, u32), String)> = None;
    for role in roles {
        let g = Grants::of_roles(tx, std::slice::from_ref(&role)).await?;
        let rank = (
            g.permissions.len(),
            g.scopes.values().map(|s| u32::from(scope_rank(*s))).sum(),
        );
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, role));
        }
    }
    best.map(|(_, role)| role).ok_or_else(|| {
        Error::invalid_field(
            "run_as_role",
            "no_role",
            "you hold no role for the rule to run as; name one in run_as_role",
        )
    })
}

/// Creates a rule (version 1).
pub async fn create(
    tx: &mut TenantTx,
    pool: &SandboxPool,
    saver: &Caller,
    input: RuleInput,
) -> Result<Rule> {
    saver.require(Permission::WorkflowsManage)?;
    let user = saver.user_id;
    let c = check(tx, pool, saver, input).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO rules (id, name, object, trigger, trigger_kind, trigger_event, trigger_fields, \
           condition, script, enabled, run_as_role, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
    )
    .bind(id)
    .bind(&c.name)
    .bind(c.object.as_str())
    .bind(c.trigger.to_json())
    .bind(c.trigger.kind())
    .bind(c.trigger.event())
    .bind(c.trigger.fields())
    .bind(&c.condition)
    .bind(&c.script)
    .bind(c.enabled)
    .bind(&c.run_as_role)
    .bind(user)
    .execute(tx.conn())
    .await?;
    save_version(tx, id, 1, &c, user).await?;
    get(tx, id).await
}

/// Replaces a rule's definition: a new version. Re-enabling clears the failure count.
pub async fn update(
    tx: &mut TenantTx,
    pool: &SandboxPool,
    saver: &Caller,
    id: Uuid,
    input: RuleInput,
) -> Result<Rule> {
    saver.require(Permission::WorkflowsManage)?;
    let user = saver.user_id;
    let current = get_for_update(tx, id).await?;
    let c = check(tx, pool, saver, input).await?;
    let version = current.version + 1;
    let reenabled = c.enabled && !current.enabled;
    sqlx::query(
        "UPDATE rules SET name = $2, object = $3, trigger = $4, trigger_kind = $5, trigger_event = $6, \
           trigger_fields = $7, condition = $8, script = $9, enabled = $10, run_as_role = $11, \
           version = $12, updated_by = $13, updated_at = now(), \
           consecutive_failures = CASE WHEN $14 THEN 0 ELSE consecutive_failures END, \
           disabled_reason = CASE WHEN $10 THEN NULL ELSE disabled_reason END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&c.name)
    .bind(c.object.as_str())
    .bind(c.trigger.to_json())
    .bind(c.trigger.kind())
    .bind(c.trigger.event())
    .bind(c.trigger.fields())
    .bind(&c.condition)
    .bind(&c.script)
    .bind(c.enabled)
    .bind(&c.run_as_role)
    .bind(version)
    .bind(user)
    .bind(reenabled)
    .execute(tx.conn())
    .await?;
    save_version(tx, id, version, &c, user).await?;
    get(tx, id).await
}

async fn save_version(
    tx: &mut TenantTx,
    rule: Uuid,
    version: i32,
    c: &Checked,
    user: Option<Uuid>,
) -> Result<()> {
    let version_id: i64 = sqlx::query_scalar(
        "INSERT INTO rule_versions (rule_id, version, name, object, trigger, condition, script, enabled, \
           run_as_role, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(rule)
    .bind(version)
    .bind(&c.name)
    .bind(c.object.as_str())
    .bind(c.trigger.to_json())
    .bind(&c.condition)
    .bind(&c.script)
    .bind(c.enabled)
    .bind(&c.run_as_role)
    .bind(user)
    .fetch_one(tx.conn())
    .await?;
    sqlx::query("UPDATE rules SET version_id = $2 WHERE id = $1")
        .bind(rule)
        .bind(version_id)
        .execute(tx.conn())
        .await?;
    if c.enabled {
        schedule_next(tx, rule, version_id, &c.trigger, Utc::now()).await?;
    }
    Ok(())
}

/// Enqueues a schedule trigger's next firing after `after` (nothing for other triggers). The
/// job names the version: a job of a version since replaced does nothing.
pub async fn schedule_next(
    tx: &mut TenantTx,
    rule: Uuid,
    version_id: i64,
    trigger: &Trigger,
    after: DateTime<Utc>,
) -> Result<()> {
    let next = trigger
        .next_fire(after)
        .map_err(|e| Error::internal(format!("stored cron no longer parses: {e}")))?;
    if let Some(at) = next {
        jobs::enqueue(
            tx,
            NewJob::of(&crate::payloads::CronFiring {
                rule_id: rule,
                version_id,
                fire_at: at,
                after: None,
                visited: 0,
            })?
            .dedupe(format!("cron:{version_id}:{}", at.timestamp()))
            .at(at),
        )
        .await?;
    }
    Ok(())
}

/// A live rule.
pub async fn get(tx: &mut TenantTx, id: Uuid) -> Result<Rule> {
    sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM rules WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| not_found(id))
}

async fn get_for_update(tx: &mut TenantTx, id: Uuid) -> Result<Rule> {
    sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM rules WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| not_found(id))
}

/// Live rules, oldest first (ids are time-ordered UUIDv7).
pub async fn list(tx: &mut TenantTx, cursor: Option<&str>, limit: i64) -> Result<Page<Rule>> {
    let after: Option<Uuid> = parse_cursor(cursor)?;
    let mut items: Vec<Rule> = sqlx::query_as(&format!(
        "SELECT {RULE_COLUMNS} FROM rules WHERE deleted_at IS NULL \
           AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |r| r.id);
    Ok(Page { items, next_cursor })
}

/// Deletes a rule: it stops firing; its versions and runs stay for the record.
pub async fn delete(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let done = sqlx::query(
        "UPDATE rules SET deleted_at = now(), enabled = false, updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// All versions of a rule, newest first.
pub async fn versions(tx: &mut TenantTx, id: Uuid) -> Result<Vec<RuleVersion>> {
    get(tx, id).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE rule_id = $1 ORDER BY version DESC"
    ))
    .bind(id)
    .fetch_all(tx.conn())
    .await?)
}

/// A version through the transaction's memo: versions never change once saved, so a job
/// group running many events of one rule reads it once.
pub async fn version_memo(tx: &mut TenantTx, version_id: i64) -> Result<Arc<RuleVersion>> {
    if let Some(v) = tx.memo::<WorkflowMemo>().versions.get(&version_id) {
        return Ok(v.clone());
    }
    let v = Arc::new(version(tx, version_id).await?);
    tx.memo::<WorkflowMemo>()
        .versions
        .insert(version_id, v.clone());
    Ok(v)
}

/// One version by its id.
pub async fn version(tx: &mut TenantTx, version_id: i64) -> Result<RuleVersion> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE id = $1"
    ))
    .bind(version_id)
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| {
        Error::not_found(
            "rule.version_not_found",
            format!("no rule version {version_id}"),
        )
    })
}

/// The run log of a rule, newest first.
pub async fn runs(
    tx: &mut TenantTx,
    id: Uuid,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<RuleRun>> {
    get(tx, id).await?;
    let before: Option<i64> = parse_cursor(cursor)?;
    let mut items: Vec<RuleRun> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM rule_runs WHERE rule_id = $1 \
           AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |r| r.id);
    Ok(Page { items, next_cursor })
}

/// Counts a failed run against the rule: one more failure in a row, and reaching the
/// company's limit (`settings.rule_failure_limit`) turns the rule off and tells the admins.
/// (Any other outcome resets the count, in the statement that logs the run.) Returns whether
/// the rule was turned off.
pub async fn count_failure(tx: &mut TenantTx, rule: Uuid, error: &str) -> Result<bool> {
    let row: Option<(i32, i32, bool, String)> = sqlx::query_as(
        "UPDATE rules SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 \
         RETURNING consecutive_failures, (SELECT rule_failure_limit FROM settings), enabled, name",
    )
    .bind(rule)
    .fetch_optional(tx.conn())
    .await?;
    let Some((failures, limit, enabled, name)) = row else {
        return Ok(false);
    };
    if !enabled || failures < limit {
        return Ok(false);
    }
    // Runs later in this transaction (a job group) must see the rule as off.
    tx.memo::<WorkflowMemo>().turned_off.insert(rule);
    let reason = format!("turned off after {failures} failed runs in a row; last error: {error}");
    sqlx::query(
        "UPDATE rules SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1",
    )
    .bind(rule)
    .bind(&reason)
    .execute(tx.conn())
    .await?;
    notify_admins(tx, rule, &name, &reason).await?;
    Ok(true)
}

async fn notify_admins(tx: &mut TenantTx, rule: Uuid, name: &str, reason: &str) -> Result<()> {
    let domain = tx.tenant().id.to_string();
    let admins: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT u.id, u.email, COALESCE(u.locale, s.locale) FROM users u CROSS JOIN settings s \
         JOIN casbin_rule r ON r.ptype = 'g' AND r.v0 = 'u:' || u.id::text AND r.v1 = $1 AND r.v2 = $2 \
         WHERE u.status = 'active'",
    )
    .bind(crm_core::authz::ADMIN_ROLE)
    .bind(domain)
    .fetch_all(tx.conn())
    .await?;
    for (user, email, locale) in admins {
        let zh = locale.as_deref() == Some("zh-CN");
        let title = if zh {
            format!("规则「{name}」已自动停用")
        } else {
            format!("Rule \"{name}\" was turned off")
        };
        let body = if zh {
            format!("规则连续运行失败，系统已将其停用。请在规则的运行记录中查看原因，修正后重新启用。\n\n{reason}")
        } else {
            format!("The rule failed too many times in a row, so it was turned off. See its run log, fix it and enable it again.\n\n{reason}")
        };
        crm_core::notifications::create(
            tx,
            crm_core::notifications::NewNotification {
                user_id: user,
                kind: "rule.disabled",
                title: &title,
                body: Some(&body),
                record: None,
                job_id: None,
            },
        )
        .await?;
        let mailed = crm_core::mail::enqueue(
            tx,
            &crm_core::mail::OutgoingMail {
                to: vec![email],
                subject: title.clone(),
                text: body,
                purpose: "rule.disabled".into(),
            },
            format!(
                "rule-disabled:{rule}:{user}:{}",
                Utc::now().timestamp_micros()
            ),
            None,
        )
        .await;
        // Over the mail quota the in-app notification still tells them; the rule is off
        // all the same (a refused message leaves nothing behind).
        match mailed {
            Err(crm_core::Error::TooManyRequests { message, .. }) => {
                tracing::warn!(rule = %rule, %message, "rule-disabled mail over the quota");
            }
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// The company's workflow settings: webhook allow-list and failure limit.
pub async fn settings(tx: &mut TenantTx) -> Result<(Vec<String>, i32)> {
    Ok(
        sqlx::query_as("SELECT webhook_hosts, rule_failure_limit FROM settings")
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Replaces the workflow settings (values checked by the caller).
pub async fn set_settings(tx: &mut TenantTx, hosts: &[String], failure_limit: i32) -> Result<()> {
    sqlx::query(
        "UPDATE settings SET webhook_hosts = $1, rule_failure_limit = $2, updated_at = now()",
    )
    .bind(hosts)
    .bind(failure_limit)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The actor a rule's effects are written under.
pub fn actor(version: &RuleVersion, run_key: &str, depth: u8) -> Actor {
    Actor::rule(
        version.rule_id,
        &version.name,
        format!("rule:{run_key}"),
        depth,
    )
}
