use super::schema::At;
use super::*;
use crate::config::Config;
use crate::server::AppState;
use serde_json::{json, Value};
use std::sync::Arc;

/// The documents as the server generates them, from a state that never connects.
fn generated() -> (String, String) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .expect("a lazy pool");
    let dir = std::env::temp_dir().join("tc-crm-limits-test");
    let files = Arc::new(crm_core::files::LocalStore::new(dir).expect("a file store"));
    let rules = crm_workflows::RuleEngine {
        pool: Arc::new(crm_workflows::SandboxPool::new(Default::default())),
        master: None,
    };
    let state = AppState::new(Config::default(), pool, None, files, rules);
    let api = crate::rest::service(state.clone()).spec();
    (api, crate::rest::portal::service(state).spec())
}

/// Asserts every rule of `limits` is in `doc` where the table puts it.
fn assert_written(doc: &str, limits: &[Limit]) {
    let doc: Value = serde_json::from_str(doc).expect("JSON");
    for limit in limits {
        let property = &doc["components"]["schemas"][limit.schema]["properties"][limit.property];
        let target = match limit.at {
            At::Property => property,
            At::Items => &property["items"],
            At::Values => &property["additionalProperties"],
        };
        for rule in &limit.rules {
            let (keyword, value, _) = rule.keyword();
            let ok = match rule {
                Rule::Note(text) => property["description"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(text.as_str())),
                _ => target[keyword] == value,
            };
            let (schema, name) = (limit.schema, limit.property);
            assert!(ok, "{schema}.{name} lacks {keyword}: {value}");
        }
    }
}

#[tokio::test]
async fn every_limit_lands_in_the_documents() {
    let (api_spec, portal_spec) = generated();
    for (spec, limits) in [(&api_spec, api()), (&portal_spec, portal())] {
        let (doc, problems) = patched(spec, &limits).expect("patched");
        assert_eq!(problems, Vec::<String>::new());
        assert_written(&doc, &limits);
    }
    let doc: Value = serde_json::from_str(&document(&api_spec)).expect("JSON");
    let name = &doc["components"]["schemas"]["CreateUserRequest"]["properties"]["name"];
    assert_eq!(name["maxLength"], DisplayName::MAX_CHARS);
}

#[tokio::test]
async fn patching_keeps_the_generated_text_and_key_order() {
    let (api_spec, _) = generated();
    let (doc, problems) = patched(&api_spec, &[]).expect("patched");
    assert!(problems.is_empty());
    assert_eq!(doc, api_spec);
}

#[test]
fn unknown_schemas_properties_and_wrong_types_are_reported() {
    let spec = json!({"components": {"schemas": {"A": {"properties": {
        "s": {"type": "string", "description": "Said."},
        "n": {"type": "integer"},
    }}}}})
    .to_string();
    let limits = [
        on("Gone", "s", vec![Rule::MaxLength(3)]),
        on("A", "renamed", vec![Rule::MaxLength(3)]),
        on("A", "n", vec![Rule::MaxLength(3)]),
        each("A", "s", vec![Rule::MaxLength(3)]),
        on("A", "s", vec![Rule::MaxLength(3), note("Trimmed.")]),
    ];
    let (doc, problems) = patched(&spec, &limits).expect("patched");
    assert_eq!(problems.len(), 4, "{problems:?}");
    for (problem, starts) in problems.iter().zip(["Gone.s", "A.renamed", "A.n", "A.s"]) {
        assert!(problem.starts_with(starts), "{problem}");
    }
    let doc: Value = serde_json::from_str(&doc).expect("JSON");
    let s = &doc["components"]["schemas"]["A"]["properties"]["s"];
    assert_eq!(s["maxLength"], 3);
    assert_eq!(s["description"], "Said.\n\nTrimmed.");
}

/// Whether the string rules `limits` documents for `(schema, property)` accept `value`.
fn documented(limits: &[Limit], schema: &str, property: &str, value: &str) -> bool {
    let limit = limits
        .iter()
        .find(|l| l.schema == schema && l.property == property)
        .expect("a limit");
    let chars = value.chars().count();
    limit.rules.iter().all(|rule| match rule {
        Rule::MinLength(n) => chars >= *n,
        Rule::MaxLength(n) => chars <= *n,
        Rule::Pattern(p) => regex::Regex::new(p)
            .expect("a valid pattern")
            .is_match(value),
        Rule::Enum(names) => names.iter().any(|n| n == value),
        _ => true,
    })
}

#[test]
fn documented_strings_are_the_ones_the_validators_accept() {
    let limits = api();
    let agree = |schema, property, valid: &dyn Fn(&str) -> bool, samples: &[&str]| {
        for s in samples {
            let says = documented(&limits, schema, property, s);
            assert_eq!(says, valid(s), "{schema}.{property}: {s:?}");
        }
    };
    let (long, longer) = ("a".repeat(41), "a".repeat(42));
    // Reserved names are only in the description.
    let slug_ok = |s: &str| TenantSlug::parse("s", s).is_ok() || RESERVED.contains(&s);
    let slugs = [
        "acme", "tc-crm-2", "ab", "-a1", "a1-", "a--b", "Acme", "a_b", &long, "admin",
    ];
    agree("SignupRequest", "tenant_slug", &slug_ok, &slugs);
    let role_ok = |s: &str| RoleName::parse("r", s).is_ok();
    let roles = [
        "sales",
        "a1",
        "sales-lead_2",
        "a",
        "1ab",
        "Ab",
        "a b",
        "_ab",
        &long,
    ];
    agree("CreateRoleRequest", "name", &role_ok, &roles);
    let key_ok = |s: &str| FieldKey::parse("k", s).is_ok() || s == "select" || s == "x_bidx";
    let keys = [
        "vip_level",
        "a",
        "x_bidx",
        "select",
        "_a",
        "1a",
        "aB",
        &long,
        &longer,
    ];
    agree("CreateFieldRequest", "key", &key_ok, &keys);
    agree(
        "StageIn",
        "key",
        &Stage::is_key,
        &["new", "s_2", "2s", "S", "", &long, &longer],
    );
    let colors = [
        "#1677ff", "#ABCDEF", "1677ff", "#1677f", "#1677ffa", "#gggggg",
    ];
    agree(
        "CreateTagRequest",
        "color",
        &crm_records::tags::valid_color,
        &colors,
    );
    let label = format!("{}.com", "a".repeat(64));
    let hosts = [
        "hooks.example.com",
        "*.example.com",
        "A-1.b",
        "example",
        "a..b",
        "*.",
        &label,
    ];
    agree(
        "WorkflowSettings",
        "webhook_hosts",
        &manage::valid_host,
        &hosts,
    );
    let duration_ok = |s: &str| super::super::approvals::duration("d", s).is_ok();
    let durations = ["30m", "8h", "1h30m", "2d", "1w", "h", "30", "8 h", "1x", ""];
    agree("StepRequest", "escalate_after", &duration_ok, &durations);
    let name_ok = |s: &str| DisplayName::parse("n", s).is_ok();
    let names = ["张".repeat(200), "张".repeat(201), String::new()];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    agree("CreateUserRequest", "name", &name_ok, &names);
    let password_ok = |s: &str| Password::parse("p", s).is_ok();
    let passwords = [
        "ab".repeat(5),
        "abc".repeat(3),
        "ab".repeat(128),
        "ab".repeat(129),
    ];
    let passwords: Vec<&str> = passwords.iter().map(String::as_str).collect();
    agree("CreateUserRequest", "password", &password_ok, &passwords);
    let locale_ok = |s: &str| crm_core::users::parse_locale("l", s).is_ok();
    agree(
        "CreateUserRequest",
        "locale",
        &locale_ok,
        &["zh-CN", "en", "fr", "zh-cn"],
    );
}
