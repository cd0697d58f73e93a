//! The limits the server enforces on request bodies, written into the OpenAPI documents.
//!
//! Handlers and services check their input themselves and answer 422 `validation.failed`
//! listing every bad field; poem-openapi's validators would refuse the request first with
//! their own 400, so the request types carry none. This module owns the tables of
//! `(schema, property, constraint)` and writes them into `components.schemas` of the
//! generated documents (staff API and portal). Every number comes from the constant the
//! validator uses; an entry whose schema or property the document lacks is reported, and the
//! unit tests keep the tables in step with the request types.

use crm_core::authz::{Permission, Scope};
use crm_core::domain::{DisplayName, Email, Password, RoleName};
use crm_core::users::LOCALES;
use crm_desk::{assignment, comments, csat, sla};
use crm_records::meta::{FieldKey, FieldType, ObjectKey, ACTIVITY_DIRECTIONS, TICKET_PRIORITIES};
use crm_records::sales::Stage;
use crm_records::{customers, fields, register, values};
use crm_tenants::{slug::RESERVED, TenantSlug};
use crm_workflows::{approvals, manage, rules, StepMode};
use schema::{each, len, named, note, on, one_of, patched, per_key, plus, range, Limit, Rule};

mod schema;

/// The staff API's document (`/api/openapi.json`) with the request limits written in.
pub fn document(spec: &str) -> String {
    patch(spec, &api())
}

/// The customer portal's document (`/portal/api/openapi.json`) with its request limits.
pub fn portal_document(spec: &str) -> String {
    patch(spec, &portal())
}

/// A built-in object's or a custom object's key.
const OBJECT_KEY: &str = "^[a-z][a-z0-9_]{1,23}$";
/// `object:action`.
const PERMISSION: &str = "^[a-z][a-z0-9_]{1,23}:[a-z_]+$";

const TRIMMED: &str = "Surrounding whitespace is trimmed before the limits apply.";

/// The staff API's request limits, one line per property.
#[rustfmt::skip]
fn api() -> Vec<Limit> {
    let display_name = || trimmed(len(1, DisplayName::MAX_CHARS));
    // Custom objects extend both lists per tenant: the tenant's API document names them.
    let objects = || vec![
        Rule::Pattern(OBJECT_KEY.into()),
        note(&format!(
            "A built-in object ({}) or one of the company's custom objects (GET /api/v1/objects).",
            ObjectKey::ALL.iter().map(ObjectKey::as_str).collect::<Vec<_>>().join(", ")
        )),
    ];
    let permissions = || vec![
        Rule::Pattern(PERMISSION.into()),
        note(&format!(
            "One of {}, or `<custom object>:read|create|update|delete|purge|export`.",
            Permission::ALL.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )),
    ];
    let scopes = || named(Scope::ALL, Scope::as_str);
    let tag = || trimmed(len(1, values::TAG_MAX_CHARS));
    let text = |max| trimmed(vec![Rule::MaxLength(max)]);
    let label = || len(1, fields::LABEL_MAX_CHARS);
    let bare = note("Options have no surrounding whitespace.");
    let option = || plus(len(1, fields::OPTION_MAX_CHARS), bare.clone());
    let sla_name = || trimmed(len(1, sla::NAME_MAX_CHARS));
    let minutes = || range(sla::MIN_TARGET_MINUTES.into(), sla::MAX_TARGET_MINUTES.into());
    let some = || vec![Rule::MinItems(1)];
    let steps = vec![Rule::MinItems(1), Rule::MaxItems(approvals::MAX_STEPS)];
    let failures = range(manage::MIN_FAILURE_LIMIT.into(), manage::MAX_FAILURE_LIMIT.into());
    vec![
        on("SignupRequest", "tenant_slug", slug()),
        on("SignupRequest", "tenant_name", display_name()),
        on("SignupRequest", "admin_email", email()),
        on("SignupRequest", "admin_password", password()),
        on("SignupRequest", "admin_name", display_name()),
        on("LoginRequest", "email", email()),
        on("ChangePasswordRequest", "new_password", password()),
        on("CreateUserRequest", "email", email()),
        on("CreateUserRequest", "name", display_name()),
        on("CreateUserRequest", "password", password()),
        each("CreateUserRequest", "roles", role_name()),
        on("CreateUserRequest", "locale", one_of(LOCALES)),
        on("PatchUserRequest", "name", display_name()),
        on("PatchUserRequest", "email", email()),
        each("PatchUserRequest", "roles", role_name()),
        on("PatchUserRequest", "locale", one_of(LOCALES)),
        on("ResetPasswordRequest", "new_password", password()),
        on("CreateRoleRequest", "name", role_name()),
        each("CreateRoleRequest", "permissions", permissions()),
        per_key("CreateRoleRequest", "scopes", scopes()),
        each("PatchRoleRequest", "permissions", permissions()),
        per_key("PatchRoleRequest", "scopes", scopes()),
        on("CreateTeamRequest", "name", display_name()),
        on("PatchTeamRequest", "name", display_name()),
        on("CreateApiKeyRequest", "name", display_name()),
        on("CreateApiKeyRequest", "role", role_name()),
        on("CreateTagRequest", "name", tag()),
        on("CreateTagRequest", "color", vec![Rule::Pattern(COLOR.into())]),
        each("AddTagsRequest", "tags", tag()),
        per_key("MergeRequest", "keep", one_of(customers::MERGE_CHOICES)),
        on("RegisterRequest", "kind", one_of(register::KINDS)),
        on("RegisterRequest", "direction", one_of(ACTIVITY_DIRECTIONS)),
        on("RegisterRequest", "subject", text(values::TEXT_MAX_CHARS)),
        on("RegisterRequest", "body", text(values::LONG_TEXT_MAX_CHARS)),
        on("CreateFieldRequest", "key", field_key()),
        on("CreateFieldRequest", "label", label()),
        per_key("CreateFieldRequest", "labels", label()),
        on("CreateFieldRequest", "type", named(FieldType::CUSTOM, FieldType::as_str)),
        each("CreateFieldRequest", "options", option()),
        on("CreateFieldRequest", "target", objects()),
        on("PatchFieldRequest", "label", label()),
        each("PatchFieldRequest", "options", option()),
        on("StageIn", "key", key(Stage::KEY_MAX_LEN)),
        on("StageIn", "name", display_name()),
        on("StageIn", "probability", range(0, Stage::MAX_PROBABILITY)),
        on("CreatePipelineRequest", "name", display_name()),
        on("CreatePipelineRequest", "stages", some()),
        on("PatchPipelineRequest", "name", display_name()),
        on("PatchPipelineRequest", "stages", some()),
        on("PolicyRequest", "name", sla_name()),
        each("PolicyRequest", "priorities", one_of(TICKET_PRIORITIES)),
        each("PolicyRequest", "customer_levels", one_of(sla::LEVELS)),
        on("PolicyRequest", "first_response_minutes", minutes()),
        on("PolicyRequest", "resolution_minutes", minutes()),
        on("CalendarRequest", "name", sla_name()),
        on("CommentRequest", "body", comment_body()),
        on("AssignmentRequest", "mode", one_of(assignment::MODES)),
        on("ApprovalRequest", "object", objects()),
        on("ApprovalRequest", "steps", steps),
        on("StepRequest", "approvers", some()),
        on("StepRequest", "mode", named(StepMode::ALL, StepMode::as_str)),
        on("StepRequest", "escalate_after", escalation()),
        on("RuleRequest", "name", trimmed(len(1, rules::NAME_MAX_CHARS))),
        on("RuleRequest", "object", objects()),
        on("RuleRequest", "script", vec![Rule::MinLength(1)]),
        each("WorkflowSettings", "webhook_hosts", host()),
        on("WorkflowSettings", "failure_limit", failures),
    ]
}

/// The portal's request limits.
fn portal() -> Vec<Limit> {
    let rating = || range(csat::MIN_RATING, csat::MAX_RATING);
    let comment = || trimmed(vec![Rule::MaxLength(csat::MAX_COMMENT_CHARS)]);
    vec![
        on("CommentRequest", "body", comment_body()),
        on("RatingRequest", "rating", rating()),
        on("RatingRequest", "comment", comment()),
        on("SurveyRatingRequest", "rating", rating()),
        on("SurveyRatingRequest", "comment", comment()),
    ]
}

/// `#rrggbb`, as `crm_records::tags::valid_color` checks it.
const COLOR: &str = "^#[0-9A-Fa-f]{6}$";
/// `30m`, `8h`, `1h30m`, as `super::approvals::duration` reads it.
const DURATION: &str = "^([0-9]+[smhdw])+$";

fn email() -> Vec<Rule> {
    let bytes = Email::MAX_BYTES;
    let note_text = format!("At most {bytes} bytes (UTF-8) once trimmed and lower-cased.");
    vec![note(&note_text)]
}

fn password() -> Vec<Rule> {
    let rules = len(Password::MIN_CHARS, Password::MAX_CHARS);
    plus(
        rules,
        note("Not one character repeated. The company's password policy may ask more: by default 10 characters and not a common password (GET /api/v1/settings/security)."),
    )
}

fn slug() -> Vec<Rule> {
    let rules = len(TenantSlug::MIN_LEN, TenantSlug::MAX_LEN);
    let rules = plus(rules, Rule::Pattern("^[a-z0-9]+(-[a-z0-9]+)*$".into()));
    let reserved = format!("Not a reserved name: {}.", RESERVED.join(", "));
    plus(rules, note(&reserved))
}

fn role_name() -> Vec<Rule> {
    let (min, max) = (RoleName::MIN_LEN, RoleName::MAX_LEN);
    let pattern = format!("^[a-z][a-z0-9_-]{{{},{}}}$", min - 1, max - 1);
    plus(len(min, max), Rule::Pattern(pattern))
}

fn field_key() -> Vec<Rule> {
    let reserved = "SQL keywords, system field names and keys ending in `_bidx` are reserved.";
    plus(key(FieldKey::MAX_LEN), note(reserved))
}

/// 1-`max` characters a-z, 0-9, '_', starting with a letter.
fn key(max: usize) -> Vec<Rule> {
    let pattern = format!("^[a-z][a-z0-9_]{{0,{}}}$", max - 1);
    plus(len(1, max), Rule::Pattern(pattern))
}

fn comment_body() -> Vec<Rule> {
    trimmed(len(1, comments::MAX_BODY_CHARS))
}

fn escalation() -> Vec<Rule> {
    let days = super::approvals::MAX_ESCALATION_DAYS;
    let total = format!("More than zero and at most {days} days in all. {TRIMMED}");
    vec![Rule::Pattern(DURATION.into()), note(&total)]
}

fn host() -> Vec<Rule> {
    let label = format!("[A-Za-z0-9-]{{1,{}}}", manage::MAX_HOST_LABEL_LEN);
    let pattern = format!("^(\\*\\.)?{label}(\\.{label})+$");
    let max = manage::MAX_HOST_LEN;
    let each = format!("Each host: at most {max} characters besides a leading `*.`. {TRIMMED}");
    vec![Rule::Pattern(pattern), note(&each)]
}

fn trimmed(rules: Vec<Rule>) -> Vec<Rule> {
    plus(rules, note(TRIMMED))
}

fn patch(spec: &str, limits: &[Limit]) -> String {
    match patched(spec, limits) {
        Ok((doc, problems)) => {
            for problem in problems {
                tracing::error!(%problem, "a request limit is missing from the OpenAPI document");
            }
            doc
        }
        Err(error) => {
            tracing::error!(%error, "the OpenAPI document could not be read; limits left out");
            spec.to_owned()
        }
    }
}

#[cfg(test)]
mod tests;
