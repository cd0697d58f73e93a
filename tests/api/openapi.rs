//! The OpenAPI document is exact: every operation documents the statuses it can answer, and
//! what the server answers (statuses for missing credentials, wrong content types and
//! oversized bodies; the bodies of the lists) matches the document.

use crate::helpers::TestApp;
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
