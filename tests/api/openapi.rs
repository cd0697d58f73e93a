//! The OpenAPI document is exact: every operation documents the statuses it can answer, and
//! what the server answers (statuses for missing credentials, wrong content types and
//! oversized bodies; the bodies of the lists) matches the document, and its request schemas
//! state the limits the server enforces.

use crate::helpers::{Resp, TestApp, PASSWORD};
use crm_desk::csat;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Checks `value` against `schema` (OpenAPI 3.0 subset: $ref, type, nullable, required,
/// properties, items, allOf/oneOf/anyOf); returns the first mismatch as `path: problem`.
fn check(spec: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(spec, &spec["components"]["schemas"][name], value, path);
    }
    if value.is_null() {
        return if schema["nullable"] == true || schema.as_object().is_some_and(Map::is_empty) {
            Ok(())
        } else {
            Err(format!(
                "{path}: null, but the schema does not say nullable: {schema}"
            ))
        };
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(spec, s, value, path)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema[key].as_array() {
            if !any.iter().any(|s| check(spec, s, value, path).is_ok()) {
                return Err(format!("{path}: matches none of {key}"));
            }
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        Some(other) => return Err(format!("{path}: unknown schema type {other}")),
    };
    if !ok {
        return Err(format!("{path}: {value} is not of type {}", schema["type"]));
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check(spec, items, v, &format!("{path}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{path}: required '{key}' is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (key, s) in properties {
                if let Some(v) = object.get(key) {
                    check(spec, s, v, &format!("{path}.{key}"))?;
                }
            }
        }
    }
    Ok(())
}

fn documented(op: &Value) -> Vec<u16> {
    op["responses"]
        .as_object()
        .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default()
}

/// The `application/json` entry (with or without parameters) of a request body or response.
fn json_content(of: &Value) -> Option<&Value> {
    of["content"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("application/json"))
        .map(|(_, v)| v)
}

/// The path with every `{param}` filled: a fresh UUID where the schema says uuid, else `x`.
fn concrete(path: &str, op: &Value) -> String {
    let mut out = path.to_owned();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != "path" {
            continue;
        }
        let name = p["name"].as_str().unwrap_or_default();
        let value = if p["schema"]["format"] == "uuid" {
            uuid::Uuid::now_v7().to_string()
        } else {
            "x".to_owned()
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    out
}

#[tokio::test]
async fn every_operation_documents_what_it_answers_and_lists_match_their_schemas() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    // Some data, so the lists have items to check against their schemas.
    let c = app
        .post(
            "/api/v1/customers",
            &t.token,
            json!({"name": "张伟", "phone": "13812345678", "address": {"city": "上海"}}),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/tickets",
        &t.token,
        json!({"subject": "打印机卡纸", "customer_id": c["id"]}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/tasks",
        &t.token,
        json!({"title": "回访", "due_at": "2030-01-01T00:00:00Z", "customer_id": c["id"]}),
    )
    .await
    .expect(201);

    let mut problems = Vec::new();
    let mut checked = 0;
    // The staff API (lists checked with the admin's session) and the customer portal's API.
    for (doc, lists_token) in [
        ("/api/openapi.json", Some(t.token.as_str())),
        ("/portal/api/openapi.json", None),
    ] {
        let spec = app.call(Method::GET, doc, None, None).await.expect(200);
        walk(
            &app,
            &spec,
            &t.token,
            lists_token,
            &mut problems,
            &mut checked,
        )
        .await;
    }
    assert!(checked > 100, "only {checked} operations in the document");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Checks every operation of one document (see the test above).
async fn walk(
    app: &TestApp,
    spec: &Value,
    token: &str,
    lists_token: Option<&str>,
    problems: &mut Vec<String>,
    checked: &mut usize,
) {
    let base = spec["servers"][0]["url"]
        .as_str()
        .unwrap_or("/api/v1")
        .to_owned();
    let too_big = vec![b' '; app.config.max_body_bytes + 1];
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(m) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let what = format!("{method} {path}");
            let statuses = documented(op);
            for must in [500, 503] {
                if !statuses.contains(&must) {
                    problems.push(format!("{what}: {must} is not documented"));
                }
            }
            let url = format!("{}{base}{}", app.base, concrete(path, op));
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let answered = |status: u16, how: &str, problems: &mut Vec<String>| {
                if !statuses.contains(&status) {
                    problems.push(format!("{what} ({how}) answered {status}, not documented"));
                }
            };
            if secured {
                let resp = app
                    .client
                    .request(m.clone(), &url)
                    .send()
                    .await
                    .expect("answers");
                answered(resp.status().as_u16(), "no credential", problems);
                if resp.status() != 401 {
                    problems.push(format!(
                        "{what} without a credential answered {}",
                        resp.status()
                    ));
                }
            }
            let json_body = json_content(&op["requestBody"]).is_some();
            if json_body {
                let resp = app
                    .client
                    .request(m.clone(), &url)
                    .bearer_auth(token)
                    .header("content-type", "text/plain")
                    .body("{}")
                    .send()
                    .await
                    .expect("answers");
                answered(resp.status().as_u16(), "text/plain body", problems);
                let resp = app
                    .client
                    .request(m.clone(), &url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(too_big.clone())
                    .send()
                    .await
                    .expect("answers");
                answered(resp.status().as_u16(), "oversized body", problems);
                if resp.status() != 413 {
                    problems.push(format!(
                        "{what} with an oversized body answered {}",
                        resp.status()
                    ));
                }
            }
            let lists = lists_token.is_some() && m == Method::GET && !path.contains('{') && secured;
            if lists {
                let resp = app
                    .client
                    .get(&url)
                    .bearer_auth(lists_token.unwrap_or_default())
                    .send()
                    .await
                    .expect("answers");
                let status = resp.status().as_u16();
                answered(status, "as the admin", problems);
                let is_json = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                if status == 200 && is_json {
                    let body: Value = resp.json().await.expect("json");
                    let schema = json_content(&op["responses"]["200"])
                        .map(|c| &c["schema"])
                        .expect("a JSON 200 response has a documented schema");
                    if let Err(e) = check(spec, schema, &body, "body") {
                        problems.push(format!("{what}: {e}"));
                    }
                }
            }
            *checked += 1;
        }
    }
}

/// The schema of `schema.property` in a served document.
fn property<'a>(spec: &'a Value, schema: &str, property: &str) -> &'a Value {
    let found = &spec["components"]["schemas"][schema]["properties"][property];
    assert!(found.is_object(), "{schema}.{property} is not documented");
    found
}

/// A number the schema states, e.g. its `maxLength`.
fn stated(schema: &Value, keyword: &str) -> i64 {
    schema[keyword]
        .as_i64()
        .unwrap_or_else(|| panic!("no {keyword} in {schema}"))
}

/// The documented `pattern`, compiled.
fn pattern_of(schema: &Value) -> regex::Regex {
    let p = schema["pattern"].as_str().expect("a pattern");
    regex::Regex::new(p).expect("the pattern compiles")
}

/// Asserts a 422 `validation.failed` and returns the fields it names.
#[track_caller]
fn refused(resp: Resp) -> Vec<String> {
    let problem = resp.expect_problem(422, "validation.failed");
    let errors = problem["errors"].as_array().expect("errors");
    errors
        .iter()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn request_schemas_state_the_limits_the_server_enforces() {
    let app = TestApp::spawn().await;
    let t = app.signup().await;
    let url = format!("{}/api/openapi.json", app.base);
    let served = app.client.get(url).send().await.expect("document");
    assert_eq!(served.status(), 200);
    let text = served.text().await.expect("text");
    let spec: Value = serde_json::from_str(&text).expect("JSON");
    let user = |n: usize, name: &str, password: &str, locale: Option<&str>| {
        let email = format!("u{n}@limits.example.com");
        let body = json!({"email": email, "name": name, "password": password, "locale": locale});
        app.post("/api/v1/users", &t.token, body)
    };

    // A name is counted in characters: exactly maxLength Chinese characters pass, one more not.
    let name_max = stated(property(&spec, "CreateUserRequest", "name"), "maxLength");
    let name = "张".repeat(name_max as usize);
    let created = user(1, &name, PASSWORD, None).await.expect(201);
    assert_eq!(created["name"], name.as_str());
    let longer = name + "张";
    assert_eq!(refused(user(2, &longer, PASSWORD, None).await), ["name"]);

    // A password one character shorter than minLength is refused; minLength passes where
    // the tenant's policy lowers its minimum (default 10) to that floor.
    let password = property(&spec, "CreateUserRequest", "password");
    let lowest = json!({"mfa_required_roles": [], "password_policy": {
        "min_length": stated(password, "minLength"), "require_upper": false,
        "require_lower": false, "require_digit": false, "require_symbol": false,
        "expiry_days": null, "history": 0}});
    app.call(
        reqwest::Method::PUT,
        "/api/v1/settings/security",
        Some(&t.token),
        Some(lowest),
    )
    .await
    .expect(200);
    let min = stated(password, "minLength") as usize;
    let letters = "abcdefghijklmnopqrstuvwxyz";
    assert_eq!(
        refused(user(3, "短", &letters[..min - 1], None).await),
        ["password"]
    );
    user(4, "够", &letters[..min], None).await.expect(201);

    // Every documented locale is taken; any other is refused.
    let locales = property(&spec, "CreateUserRequest", "locale")["enum"].clone();
    let locales = locales.as_array().expect("an enum");
    for (i, locale) in locales.iter().enumerate() {
        user(10 + i, "语言", PASSWORD, locale.as_str())
            .await
            .expect(201);
    }
    assert!(!locales.contains(&json!("fr")));
    assert_eq!(
        refused(user(5, "法语", PASSWORD, Some("fr")).await),
        ["locale"]
    );

    // A role name off the documented pattern is refused; one on it is created.
    let role_name = pattern_of(property(&spec, "CreateRoleRequest", "name"));
    let role = |name: &str| {
        let body = json!({"name": name, "permissions": ["customers:read"]});
        app.post("/api/v1/roles", &t.token, body)
    };
    assert!(!role_name.is_match("Sales Team"));
    assert_eq!(refused(role("Sales Team").await), ["name"]);
    assert!(role_name.is_match("sales-team"));
    role("sales-team").await.expect(201);

    // The failure limit: the documented maximum is taken; one above it or below the minimum not.
    let limit = property(&spec, "WorkflowSettings", "failure_limit");
    let (min, max) = (stated(limit, "minimum"), stated(limit, "maximum"));
    let settings = |failure_limit: i64| {
        let body = json!({"webhook_hosts": [], "failure_limit": failure_limit});
        let path = "/api/v1/settings/workflows";
        app.call(Method::PUT, path, Some(&t.token), Some(body))
    };
    for wrong in [max + 1, min - 1] {
        assert_eq!(refused(settings(wrong).await), ["failure_limit"]);
    }
    assert_eq!(settings(max).await.expect(200)["failure_limit"], max);

    // A tenant slug of a documented length but off the documented pattern is refused.
    let slug = property(&spec, "SignupRequest", "tenant_slug");
    let bad = "acme--trading";
    assert!(!pattern_of(slug).is_match(bad));
    let lengths = stated(slug, "minLength")..=stated(slug, "maxLength");
    assert!(lengths.contains(&(bad.len() as i64)));
    let signup = json!({
        "tenant_slug": bad, "tenant_name": "坏名字", "admin_email": "a@bad.example.com",
        "admin_password": PASSWORD, "admin_name": "张伟"
    });
    let resp = app.call(Method::POST, "/api/v1/signup", None, Some(signup));
    assert_eq!(refused(resp.await), ["tenant_slug"]);

    // The tenant's own document, the portal's and the Swagger UI state the limits too.
    let own = app.get("/api/v1/openapi.json", &t.token).await.expect(200);
    let own_name = property(&own, "CreateUserRequest", "name");
    assert_eq!(stated(own_name, "maxLength"), name_max);
    let portal = app.call(Method::GET, "/portal/api/openapi.json", None, None);
    let portal = portal.await.expect(200);
    let rating = property(&portal, "RatingRequest", "rating");
    let ratings = (stated(rating, "minimum"), stated(rating, "maximum"));
    assert_eq!(ratings, (csat::MIN_RATING, csat::MAX_RATING));
    for docs in ["/api/docs", "/api/docs/"] {
        let page = app.client.get(format!("{}{docs}", app.base)).send();
        let page = page.await.expect("docs");
        assert_eq!(page.status(), 200, "{docs}");
        let html = page.text().await.expect("html");
        assert!(html.contains(&text), "{docs} embeds another document");
    }
}
