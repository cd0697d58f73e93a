//! What a plugin's host calls do. Records go through the same services as the REST API,
//! with the install's own [`Access`] (its grants, scope `all` on what it was granted, masked
//! unless granted `sensitive:read`), each call in a tenant transaction of its own; key/value
//! data is the install's rows in `plugin_kv`; HTTP goes through the platform's one outbound
//! client, to the install's allowed hosts only.

use crate::limits::Limits;
use crm_core::audit::Actor;
use crm_core::authz::{Caller, Grants};
use crm_core::crypto::MasterKey;
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::identity::{Principal, PrincipalKind};
use crm_core::outbound::{FetchCaps, Fetched, Outbound, OutboundError};
use crm_core::{keys, Error};
use crm_records::engine::{self, Visibility};
use crm_records::fields::NewField;
use crm_records::query::{self, ListQuery};
use crm_records::service::{self, CreateOptions};
use crm_records::{field_service, Access, ObjectKey, ObjectSchema, RecordAction};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// An error a host call hands back to the plugin (`plugin-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: String,
    pub message: String,
}

impl Fault {
    pub fn new(code: &str, message: impl Into<String>) -> Fault {
        Fault {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<Error> for Fault {
    fn from(e: Error) -> Fault {
        let message = match &e {
            Error::Invalid {
                fields, message, ..
            } if !fields.is_empty() => format!(
                "{message}: {}",
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Error::Database(_) | Error::Internal(_) => "an internal error occurred".to_owned(),
            other => other.to_string(),
        };
        if matches!(e, Error::Database(_) | Error::Internal(_)) {
            tracing::error!(error = %e, "plugin host call failed");
        }
        Fault {
            code: e.code().to_owned(),
            message,
        }
    }
}

/// The install a call runs for.
#[derive(Debug, Clone)]
pub struct InstallCtx {
    pub id: Uuid,
    /// The package's name.
    pub name: String,
    pub grants: Grants,
    pub config: Value,
    pub secrets: BTreeMap<String, String>,
    /// Host names `http-fetch` may reach (exact, or `*.example.com` for subdomains).
    pub allowed_hosts: Vec<String>,
    pub limits: Limits,
}

/// The tenant a call's records and key/value data live in.
#[derive(Clone)]
pub struct TenantAccess {
    pub db: Db,
    pub tenant: TenantCtx,
    pub master: Option<std::sync::Arc<MasterKey>>,
    /// `[objects] max_fields`, for `ensure-field`.
    pub max_fields: i64,
}

/// Everything one call's host functions reach.
pub struct CallEnv {
    pub install: InstallCtx,
    /// `None` when run offline (`crm plugin run` without a tenant): records are refused and
    /// key/value data lives in memory.
    pub tenant: Option<TenantAccess>,
    pub outbound: Outbound,
    pub request_id: String,
    pub offline_kv: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl CallEnv {
    pub(crate) fn config(&self, key: &str) -> Option<String> {
        self.install.config.get(key).map(Value::to_string)
    }

    pub(crate) fn secret(&self, key: &str) -> Option<String> {
        self.install.secrets.get(key).cloned()
    }

    fn actor(&self) -> Actor {
        Actor::plugin(self.install.id, &self.install.name, self.request_id.clone())
    }

    fn tenant(&self) -> Result<&TenantAccess, Fault> {
        self.tenant.as_ref().ok_or_else(|| {
            Fault::new(
                "plugin.offline",
                "records are not available offline; run with --tenant to use a tenant's data",
            )
        })
    }

    /// The install as a [`Caller`]: a principal of its own holding exactly its grants.
    pub fn caller(&self) -> Caller {
        Caller::of_grants(
            Principal {
                kind: PrincipalKind::Plugin,
                id: self.install.id,
                name: self.install.name.clone(),
                session_id: None,
                policy_version: 0,
                metadata_version: 0,
                restriction: None,
                reads: Default::default(),
            },
            self.install.grants.clone(),
        )
    }
}

const MAX_KEY: usize = 256;

fn check_key(key: &str) -> Result<(), Fault> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Fault::new(
            "kv.invalid_key",
            format!("keys are 1 to {MAX_KEY} bytes"),
        ));
    }
    Ok(())
}

pub(crate) async fn kv_get(env: &CallEnv, key: &str) -> Result<Option<Vec<u8>>, Fault> {
    let Some(t) = &env.tenant else {
        return Ok(env.offline_kv.lock().ok().and_then(|m| m.get(key).cloned()));
    };
    let mut tx = t.db.tenant_tx(&t.tenant).await?;
    let value: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM plugin_kv WHERE install_id = $1 AND key = $2")
            .bind(env.install.id)
            .bind(key)
            .fetch_optional(tx.conn())
            .await
            .map_err(Error::from)?;
    tx.commit().await?;
    Ok(value)
}

pub(crate) async fn kv_set(
    env: &CallEnv,
    key: &str,
    value: Vec<u8>,
    quota: usize,
) -> Result<(), Fault> {
    check_key(key)?;
    let full = || {
        Fault::new(
            "kv.quota",
            format!("the install's key/value data would exceed its quota of {quota} bytes; delete keys first"),
        )
    };
    let Some(t) = &env.tenant else {
        let mut m = env
            .offline_kv
            .lock()
            .map_err(|_| Fault::new("kv.unavailable", "key/value store unavailable"))?;
        let used: usize = m
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if used + key.len() + value.len() > quota {
            return Err(full());
        }
        m.insert(key.to_owned(), value);
        return Ok(());
    };
    let mut tx = t.db.tenant_tx(&t.tenant).await?;
    // Serialises writers of one install, so two calls cannot both pass the quota check.
    sqlx::query("SELECT 1 FROM plugin_installs WHERE id = $1 FOR UPDATE")
        .bind(env.install.id)
        .execute(tx.conn())
        .await
        .map_err(Error::from)?;
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(octet_length(key) + octet_length(value)), 0)::bigint \
         FROM plugin_kv WHERE install_id = $1 AND key <> $2",
    )
    .bind(env.install.id)
    .bind(key)
    .fetch_one(tx.conn())
    .await
    .map_err(Error::from)?;
    if used as usize + key.len() + value.len() > quota {
        return Err(full());
    }
    sqlx::query(
        "INSERT INTO plugin_kv (install_id, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (install_id, key) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(env.install.id)
    .bind(key)
    .bind(value)
    .execute(tx.conn())
    .await
    .map_err(Error::from)?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn kv_delete(env: &CallEnv, key: &str) -> Result<(), Fault> {
    let Some(t) = &env.tenant else {
        if let Ok(mut m) = env.offline_kv.lock() {
            m.remove(key);
        }
        return Ok(());
    };
    let mut tx = t.db.tenant_tx(&t.tenant).await?;
    sqlx::query("DELETE FROM plugin_kv WHERE install_id = $1 AND key = $2")
        .bind(env.install.id)
        .bind(key)
        .execute(tx.conn())
        .await
        .map_err(Error::from)?;
    tx.commit().await?;
    Ok(())
}

/// A record operation of the `records` interface.
pub(crate) enum RecordOp<'a> {
    Get { id: &'a str },
    Query { query: &'a str },
    Create { fields: &'a str },
    Update { id: &'a str, fields: &'a str },
    Delete { id: &'a str },
}

fn parse_id(raw: &str) -> Result<Uuid, Fault> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Fault::new("record.invalid_id", format!("'{raw}' is not a record id")))
}

fn parse_body(raw: &str) -> Result<Value, Fault> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Fault::new(
            "request.invalid_json",
            "fields must be a JSON object",
        )),
    }
}

fn object_key(raw: &str) -> Result<ObjectKey, Fault> {
    ObjectKey::named(raw).ok_or_else(|| {
        Fault::new(
            "object.not_found",
            format!("'{raw}' is not an object's API name"),
        )
    })
}

/// Runs one record operation in a tenant transaction of its own; the result as JSON text.
pub(crate) async fn record(env: &CallEnv, object: &str, op: RecordOp<'_>) -> Result<String, Fault> {
    let t = env.tenant()?;
    let object = object_key(object)?;
    let mut tx = t.db.tenant_tx(&t.tenant).await?;
    let schema = ObjectSchema::load(&mut tx, object).await?;
    let data_key = if schema.has_encrypted() {
        keys::data_key(&mut tx, t.master.as_deref(), false)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let actor = env.actor();
    let access = Access::of_grants(&env.install.grants, None, &actor, object, data_key.as_ref());
    let out = run_op(&mut tx, &schema, &access, op).await?;
    tx.commit().await?;
    Ok(out.to_string())
}

async fn run_op(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    op: RecordOp<'_>,
) -> Result<Value, Fault> {
    Ok(match op {
        RecordOp::Get { id } => {
            engine::fetch(tx, schema, access, parse_id(id)?, Visibility::Live, false).await?
        }
        RecordOp::Query { query: raw } => {
            access.require(schema.object, RecordAction::Read)?;
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let lq = ListQuery::from_pairs(&pairs)?;
            let page = query::list(tx, schema, access, &lq).await?;
            json!({ "items": page.items, "next": page.next_cursor })
        }
        RecordOp::Create { fields } => {
            let body = parse_body(fields)?;
            service::create(tx, schema, access, &body, CreateOptions::default()).await?
        }
        RecordOp::Update { id, fields } => {
            let body = parse_body(fields)?;
            service::update(tx, schema, access, parse_id(id)?, None, &body).await?
        }
        RecordOp::Delete { id } => {
            service::soft_delete(tx, schema, access, parse_id(id)?).await?;
            Value::Null
        }
    })
}

/// Creates field `key` on `object` unless it exists (with `fields:manage`).
pub(crate) async fn ensure_field(
    env: &CallEnv,
    object: &str,
    key: &str,
    definition: &str,
) -> Result<(), Fault> {
    let t = env.tenant()?;
    let object = object_key(object)?;
    let def = parse_body(definition)?;
    let caller = env.caller();
    let mut tx = t.db.tenant_tx(&t.tenant).await?;
    match field_service::get(&mut tx, &caller, object, key).await {
        Ok(_) => return Ok(()),
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let text = |k: &str| def.get(k).and_then(Value::as_str).map(str::to_owned);
    let flag = |k: &str| def.get(k).and_then(Value::as_bool).unwrap_or(false);
    let new = NewField {
        key: key.to_owned(),
        label: text("label").unwrap_or_else(|| key.to_owned()),
        labels: def
            .get("labels")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
        ty: text("type").unwrap_or_else(|| "text".to_owned()),
        required: flag("required"),
        unique: flag("unique"),
        indexed: flag("indexed"),
        default: def.get("default").cloned(),
        options: def
            .get("options")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
        option_labels: def.get("option_labels").cloned(),
        target: text("target"),
        on_delete: text("on_delete"),
        rollup: def.get("rollup").cloned(),
        searchable: def.get("searchable").and_then(Value::as_bool),
        sensitive: flag("sensitive"),
        encrypted: flag("encrypted"),
        portal_editable: flag("portal_editable"),
    };
    let actor = env.actor();
    field_service::create(
        &mut tx,
        &caller,
        &actor,
        t.master.as_deref(),
        object,
        new,
        t.max_fields,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `host` is on the install's allow-list (`example.com`, or `*.example.com` for
/// its subdomains).
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == a,
        }
    })
}

/// One `http-fetch`: the allow-list first, then the platform's outbound policy (scheme, port,
/// resolved addresses), with the install's time and size caps.
pub(crate) async fn fetch(
    env: &CallEnv,
    limits: &Limits,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<Fetched, Fault> {
    if body.len() > limits.http_bytes {
        return Err(Fault::new(
            "http.too_large",
            format!("a request body may be at most {} bytes", limits.http_bytes),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|_| Fault::new("http.refused", format!("'{url}' is not a URL")))?;
    let host = parsed.host_str().unwrap_or_default();
    if !host_allowed(&env.install.allowed_hosts, host) {
        return Err(Fault::new(
            "http.refused",
            format!(
                "host '{host}' is not in the install's allowed hosts; an administrator can add it"
            ),
        ));
    }
    let caps = FetchCaps {
        timeout: Duration::from_millis(limits.http_ms),
        max_body: limits.http_bytes,
    };
    env.outbound
        .fetch(method, url, headers, body, caps)
        .await
        .map_err(|e| match e {
            OutboundError::Refused(why) => Fault::new("http.refused", why),
            OutboundError::Timeout => Fault::new("http.timeout", "the request timed out"),
            OutboundError::Unreachable => {
                Fault::new("http.unreachable", "no connection could be made")
            }
            OutboundError::TooLarge => Fault::new(
                "http.too_large",
                format!("the response is larger than {} bytes", limits.http_bytes),
            ),
            OutboundError::Status(s) => Fault::new("http.status", format!("http {s}")),
        })
}

#[cfg(test)]
mod tests {
    use super::host_allowed;

    #[test]
    fn allowed_hosts_match_exactly_or_by_subdomain() {
        let allowed = vec!["hooks.example.com".to_owned(), "*.feishu.cn".to_owned()];
        assert!(host_allowed(&allowed, "hooks.example.com"));
        assert!(host_allowed(&allowed, "HOOKS.example.com."));
        assert!(host_allowed(&allowed, "open.feishu.cn"));
        assert!(!host_allowed(&allowed, "feishu.cn"));
        assert!(!host_allowed(&allowed, "evil-hooks.example.com"));
        assert!(!host_allowed(&allowed, "example.com"));
        assert!(!host_allowed(&[], "example.com"));
    }
}
