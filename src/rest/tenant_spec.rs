//! `GET /api/v1/openapi.json`: the OpenAPI document as one tenant sees it — the built-in
//! objects' schemas carry that tenant's real custom fields (types, options, labels), and each
//! custom object the caller may read gets its own schemas and paths (`/records/policies`);
//! the endpoints of the tenant's plugins the caller may call are added by
//! [`super::tenant_spec_ext`].

use super::auth::Auth;
use super::error::ApiResult;
use super::Tag;
use crate::server::AppState;
use crm_core::Error;
use crm_records::{FieldType, ObjectKey, ObjectSchema, RecordAction};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use serde_json::{json, Map, Value};

pub struct TenantSpecApi(pub AppState);

fn type_schema(ty: FieldType, options: &[String]) -> Value {
    match ty {
        FieldType::Text | FieldType::LongText | FieldType::Phone => json!({ "type": "string" }),
        FieldType::Email => json!({ "type": "string", "format": "email" }),
        FieldType::Url => json!({ "type": "string", "format": "uri" }),
        FieldType::Select => json!({ "type": "string", "enum": options }),
        FieldType::MultiSelect => {
            json!({ "type": "array", "items": { "type": "string", "enum": options } })
        }
        FieldType::Integer => json!({ "type": "integer", "format": "int64" }),
        FieldType::Decimal | FieldType::Currency => json!({ "type": "number" }),
        FieldType::Rollup => json!({ "type": "number", "readOnly": true }),
        FieldType::Boolean => json!({ "type": "boolean" }),
        FieldType::Date => json!({ "type": "string", "format": "date" }),
        FieldType::Datetime => json!({ "type": "string", "format": "date-time" }),
        FieldType::User | FieldType::Relation => json!({ "type": "string", "format": "uuid" }),
        FieldType::Address => json!({
            "type": "object",
            "properties": {
                "province": {"type": "string"}, "city": {"type": "string"}, "district": {"type": "string"},
                "street": {"type": "string"}, "postcode": {"type": "string"}
            }
        }),
        FieldType::Tags => json!({ "type": "array", "items": { "type": "string" } }),
    }
}

/// The schemas of one object: `<Name>`, `<Name>Input`, `<Name>Patch` and, for a built-in
/// object, `<Name>CustomFields` (a custom object's fields sit at the top level).
fn object_schemas(schema: &ObjectSchema, name: &str, out: &mut Map<String, Value>) {
    let top_level = schema.object.is_custom();
    let mut custom_props = Map::new();
    let mut custom_required = Vec::new();
    for d in &schema.custom {
        let mut s = type_schema(d.ty, &d.options);
        s["title"] = json!(d.label);
        if !d.labels.is_empty() {
            s["x-labels"] = json!(d.labels);
        }
        if d.encrypted {
            s["description"] = json!("stored encrypted; exact-match filters only");
        } else if d.sensitive {
            s["description"] = json!("sensitive: masked without sensitive:read");
        }
        if let Some(target) = d.target {
            s["x-target"] = json!(target.as_str());
        }
        if d.required {
            custom_required.push(d.key.as_str().to_owned());
        }
        custom_props.insert(d.key.as_str().to_owned(), s);
    }
    let mut input_props = Map::new();
    let mut required = Vec::new();
    for f in schema.builtins() {
        input_props.insert(f.key.to_owned(), type_schema(f.ty, &f.options));
        if f.required {
            required.push(f.key.to_owned());
        }
    }
    if top_level {
        input_props.extend(custom_props);
        required.extend(custom_required);
    } else {
        let custom_name = format!("{name}CustomFields");
        let mut custom =
            json!({ "type": "object", "additionalProperties": false, "properties": custom_props });
        if !custom_required.is_empty() {
            custom["required"] = json!(custom_required);
        }
        out.insert(custom_name.clone(), custom);
        input_props.insert(
            "custom".into(),
            json!({ "$ref": format!("#/components/schemas/{custom_name}") }),
        );
    }
    out.insert(
        format!("{name}Input"),
        json!({ "type": "object", "additionalProperties": false, "properties": input_props, "required": required }),
    );
    out.insert(
        format!("{name}Patch"),
        json!({ "type": "object", "additionalProperties": false, "properties": input_props.clone(),
                "description": "fields to change; absent fields stay as they are, null clears" }),
    );
    let mut record_props = input_props;
    if schema.object == ObjectKey::Customers {
        record_props.insert(
            "merged_into".into(),
            json!({"type": "string", "format": "uuid", "nullable": true}),
        );
    }
    for (k, s) in [
        ("id", json!({"type": "string", "format": "uuid"})),
        (
            "created_at",
            json!({"type": "string", "format": "date-time"}),
        ),
        (
            "updated_at",
            json!({"type": "string", "format": "date-time"}),
        ),
        (
            "created_by",
            json!({"type": "string", "format": "uuid", "nullable": true}),
        ),
        ("version", json!({"type": "integer", "format": "int64"})),
        (
            "deleted_at",
            json!({"type": "string", "format": "date-time", "nullable": true}),
        ),
    ] {
        record_props.insert(k.into(), s);
    }
    out.insert(
        name.to_owned(),
        json!({ "type": "object", "properties": record_props }),
    );
}

/// Gives a custom object paths of its own (`/records/policies`, `/records/policies/{id}`),
/// copied from the generic `/records/{object}` ones without the object parameter.
fn custom_paths(spec: &mut Value, key: &str) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (generic, concrete) in [
        ("/records/{object}", format!("/records/{key}")),
        ("/records/{object}/{id}", format!("/records/{key}/{{id}}")),
    ] {
        let Some(mut item) = paths.get(generic).cloned() else {
            continue;
        };
        if let Some(ops) = item.as_object_mut() {
            for op in ops.values_mut() {
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    params.retain(|p| p["name"] != "object");
                }
                if let Some(id) = op.get_mut("operationId") {
                    *id = json!(format!("{}_{key}", id.as_str().unwrap_or("records")));
                }
            }
        }
        paths.insert(concrete, item);
    }
}

/// Points the record operations of `prefix` at the object's schemas.
fn link_operations(spec: &mut Value, prefix: &str, name: &str) {
    let record = json!({ "$ref": format!("#/components/schemas/{name}") });
    let input = json!({ "$ref": format!("#/components/schemas/{name}Input") });
    let patch = json!({ "$ref": format!("#/components/schemas/{name}Patch") });
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let is_collection = path == prefix;
        let is_item = path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest == "/{id}");
        if !is_collection && !is_item {
            continue;
        }
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            match method.as_str() {
                "post" => set_json_schema(op.pointer_mut("/requestBody/content"), &input),
                "patch" => set_json_schema(op.pointer_mut("/requestBody/content"), &patch),
                _ => {}
            }
            for status in ["200", "201"] {
                let schema = if is_collection && method == "get" {
                    json!({ "type": "object", "properties": {
                        "items": { "type": "array", "items": record.clone() },
                        "next_cursor": { "type": "string" } } })
                } else {
                    record.clone()
                };
                set_json_schema(
                    op.pointer_mut(&format!("/responses/{status}/content")),
                    &schema,
                );
            }
        }
    }
}

/// Sets the schema of every JSON media type (`application/json; charset=utf-8`, …).
fn set_json_schema(content: Option<&mut Value>, schema: &Value) {
    let Some(content) = content.and_then(Value::as_object_mut) else {
        return;
    };
    for (media, body) in content.iter_mut() {
        if media.starts_with("application/json") {
            body["schema"] = schema.clone();
        }
    }
}

#[OpenApi(tag = "Tag::Account")]
impl TenantSpecApi {
    /// This tenant's OpenAPI document: customer and contact schemas list its custom fields.
    #[oai(path = "/openapi.json", method = "get")]
    async fn tenant_spec(&self, auth: Auth) -> ApiResult<Json<Value>> {
        let base = self
            .0
            .base_spec
            .get()
            .ok_or_else(|| Error::internal("base OpenAPI document not ready"))?;
        let mut spec: Value =
            serde_json::from_str(base).map_err(|e| Error::internal(format!("base spec: {e}")))?;
        let (mut tx, caller, ctx) = self.0.begin(&auth).await?;
        let mut schemas = Map::new();
        for (object, name) in [
            (ObjectKey::Customers, "Customer"),
            (ObjectKey::Contacts, "Contact"),
            (ObjectKey::Opportunities, "Opportunity"),
            (ObjectKey::Activities, "Activity"),
            (ObjectKey::Tasks, "Task"),
            (ObjectKey::Tickets, "Ticket"),
        ] {
            let schema = ObjectSchema::of_caller(&mut tx, &caller, object).await?;
            object_schemas(&schema, name, &mut schemas);
            link_operations(&mut spec, &format!("/{}", object.as_str()), name);
        }
        for info in crm_records::objects::list(&mut tx, &caller).await? {
            if info.def.is_none() || !caller.holds(info.object.permission(RecordAction::Read)) {
                continue;
            }
            let schema = ObjectSchema::load(&mut tx, info.object).await?;
            let key = info.object.as_str();
            let name = format!("Record_{key}");
            object_schemas(&schema, &name, &mut schemas);
            custom_paths(&mut spec, key);
            link_operations(&mut spec, &format!("/records/{key}"), &name);
        }
        super::tenant_spec_ext::add_plugin_paths(&mut tx, &caller, &mut spec).await?;
        tx.commit().await?;
        if let Some(components) = spec
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            components.extend(schemas);
        }
        spec["info"]["title"] = json!(format!("TC CRM — {}", ctx.tenant.slug));
        Ok(Json(spec))
    }
}
