//! The plugin part of the tenant's OpenAPI document: a path item for every endpoint of an
//! enabled install whose declared permission the caller holds, at `/ext/{install}/{path}`
//! (relative to the document's `/api/v1` server), answered as `src/ext.rs` answers: the
//! plugin's own response, or a problem. Each plugin is a tag, `Plugin: <name>`.

use crm_core::authz::{Caller, Permission};
use crm_core::db::TenantTx;
use crm_core::Result;
use crm_plugins::installs::{self, Install};
use crm_plugins::manifest::Endpoint;
use serde_json::{json, Map, Value};

/// The problems `/api/v1/ext` answers besides the plugin's own response.
const PROBLEMS: [(&str, &str); 7] = [
    ("401", "Missing, unknown, expired or revoked credential"),
    (
        "403",
        "The credential's role lacks the endpoint's permission (code auth.forbidden)",
    ),
    (
        "404",
        "No such install, or it serves no such endpoint (code plugin.endpoint_not_found)",
    ),
    (
        "409",
        "The install is disabled (code plugin.disabled); an administrator can enable it",
    ),
    (
        "413",
        "The request body is larger than the server or the install accepts (plugin.input_too_large)",
    ),
    (
        "502",
        "The plugin failed: it trapped, ran out of fuel or memory, answered too much, or \
         returned an error of its own (its code)",
    ),
    (
        "504",
        "The plugin did not answer within its time limit (code plugin.timeout)",
    ),
];

fn operation(install: &Install, endpoint: &Endpoint, tag: &str, security: &Value) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The plugin's response: its status, headers and body, as it chose them",
            "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } }
        }),
    );
    for (status, description) in PROBLEMS {
        responses.insert(
            status.into(),
            json!({
                "description": description,
                "content": { "application/problem+json": {
                    "schema": { "$ref": "#/components/schemas/Problem" } } }
            }),
        );
    }
    let method = endpoint.method.to_ascii_lowercase();
    let operation_id: String = format!("ext_{}_{method}_{}", install.id.simple(), endpoint.path)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut op = json!({
        "tags": [tag],
        "summary": endpoint.summary,
        "description": format!(
            "Served by the plugin {} {} (install {}); needs the permission {}. The query \
             string and the request headers (credentials removed) reach the plugin as sent.",
            install.name, install.version, install.id, endpoint.permission
        ),
        "operationId": operation_id,
        "security": security,
        "responses": responses,
    });
    if matches!(method.as_str(), "post" | "put" | "patch") {
        op["requestBody"] = json!({
            "description": "Passed to the plugin as it is, in any content type",
            "required": false,
            "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } }
        });
    }
    op
}

/// Adds the endpoints of the tenant's enabled installs that `caller` may call to `spec`.
pub async fn add_plugin_paths(tx: &mut TenantTx, caller: &Caller, spec: &mut Value) -> Result<()> {
    let served = installs::served(tx).await?;
    // The credential this document itself is read with is the one plugin endpoints take.
    let security = spec
        .pointer("/paths/~1openapi.json/get/security")
        .cloned()
        .unwrap_or_else(|| json!([{ "Auth": [] }]));
    let mut tags = Vec::new();
    let mut paths = Map::new();
    for (install, manifest) in &served {
        let tag = format!("Plugin: {}", install.name);
        let mut any = false;
        for endpoint in &manifest.endpoints {
            let allowed = Permission::parse(&endpoint.permission).is_some_and(|p| caller.holds(p));
            if !allowed {
                continue;
            }
            any = true;
            let path = format!("/ext/{}/{}", install.id, endpoint.path);
            let item = paths.entry(path).or_insert_with(|| json!({}));
            item[endpoint.method.to_ascii_lowercase()] =
                operation(install, endpoint, &tag, &security);
        }
        if any && !tags.iter().any(|t: &Value| t["name"] == tag) {
            tags.push(json!({ "name": tag, "description": manifest.description }));
        }
    }
    if let Some(all) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        all.extend(paths);
    }
    if !tags.is_empty() {
        match spec.get_mut("tags").and_then(Value::as_array_mut) {
            Some(list) => list.extend(tags),
            None => spec["tags"] = Value::Array(tags),
        }
    }
    Ok(())
}
