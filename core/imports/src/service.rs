//! What the API calls: read an upload, preview it, start an import (at once with a mapping,
//! or `pending` until the suggested one is confirmed), see imports, their error reports, and
//! undo one. Each checks the caller: imports need the object's create (or update)
//! permission; an import is seen and undone by whoever started it and by tenant admins
//! (`tenant:manage`).

use crate::mapping::{self, Plan};
use crate::source::{self, Normalised};
use crate::store::{self, Import, ImportOptions, Mode};
use crate::{Deps, ImportJob, UndoJob};
use crm_core::audit::Actor;
use crm_core::authz::{Caller, Permission};
use crm_core::context::Page;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::files::StoredKey;
use crm_core::jobs::{self, NewJob};
use crm_records::{ObjectKey, ObjectSchema, RecordAction};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;

/// An upload read and normalised, waiting in a temporary file.
pub struct Upload {
    pub file_name: String,
    pub original: tempfile::TempPath,
    pub normalised: tempfile::TempPath,
    pub found: Normalised,
}

/// Reads an uploaded file (at `path`, removed when the returned value is dropped along with
/// the normalised copy). Runs off the async threads.
pub async fn read_upload(path: tempfile::TempPath, file_name: &str) -> Result<Upload> {
    let out = tempfile::NamedTempFile::new()
        .map_err(|e| Error::internal(format!("cannot create a temporary file: {e}")))?
        .into_temp_path();
    let (input, output) = (path.to_path_buf(), out.to_path_buf());
    let found = tokio::task::spawn_blocking(move || source::normalise(&input, &output))
        .await
        .map_err(|e| Error::internal(format!("reading the upload stopped: {e}")))??;
    Ok(Upload {
        file_name: clean_name(file_name),
        original: path,
        normalised: out,
        found,
    })
}

fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if name.trim().is_empty() {
        "import".to_owned()
    } else {
        name
    }
}

/// The object of an import, as named in `options.object`.
fn object_named(raw: &str) -> Result<ObjectKey> {
    ObjectKey::named(raw).ok_or_else(|| {
        Error::invalid_field(
            "options.object",
            "unknown_object",
            format!("'{raw}' is not an object; use customers, contacts, opportunities, activities, tasks, tickets or a custom object's key"),
        )
    })
}

/// Imports into `object` need its create or update permission.
fn require_import(caller: &Caller, object: ObjectKey, mode: Option<Mode>) -> Result<()> {
    let create = caller.require(object.permission(RecordAction::Create));
    let update = caller.require(object.permission(RecordAction::Update));
    match mode {
        Some(Mode::Create) => create,
        Some(Mode::Update) => update,
        Some(Mode::Upsert) => create.and(update),
        None => create.or(update),
    }
}

/// What a client shows before the mapping step.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub file_name: String,
    pub format: &'static str,
    pub encoding: String,
    pub separator: Option<String>,
    pub headers: Vec<String>,
    pub rows: u64,
    pub sample: Vec<Vec<String>>,
    /// Header → suggested field path (or null).
    pub suggested_mapping: BTreeMap<String, Option<String>>,
    /// Every path a column can be mapped to.
    pub fields: Vec<String>,
}

pub async fn preview(
    tx: &mut TenantTx,
    caller: &Caller,
    object: &str,
    upload: &Upload,
) -> Result<Preview> {
    let object = object_named(object)?;
    let schema = ObjectSchema::load(tx, object).await?;
    require_import(caller, object, None)?;
    Ok(Preview {
        file_name: upload.file_name.clone(),
        format: upload.found.format.as_str(),
        encoding: upload.found.encoding.clone(),
        separator: upload.found.separator.clone(),
        headers: upload.found.headers.clone(),
        rows: upload.found.rows,
        sample: upload.found.sample.clone(),
        suggested_mapping: mapping::suggest(&schema, &upload.found.headers),
        fields: mapping::targets(&schema),
    })
}

/// Checks the options against the object (and the mapping, when given).
async fn check_options(
    tx: &mut TenantTx,
    schema: &ObjectSchema,
    headers: &[String],
    o: &ImportOptions,
) -> Result<Option<Plan>> {
    if o.mode != Mode::Create && o.match_key.is_none() {
        return Err(Error::invalid_field(
            "options.match_key",
            "required",
            "updating records needs a match key: id, phone, email or a unique field",
        ));
    }
    if let Some(key) = o.match_key.as_deref() {
        let ok = key == "id"
            || schema.resolve(key).is_some_and(|f| {
                f.unique || matches!(f.key, "phone" | "email") && !f.nested && !f.encrypted
            });
        if !ok {
            return Err(Error::invalid_field(
                "options.match_key",
                "not_matchable",
                format!(
                    "'{key}' cannot match records: use id, phone, email or a field marked unique"
                ),
            ));
        }
    }
    crate::zone_of(o.time_zone.as_deref())?;
    if let Some(owner) = o.owner_id {
        let active = crm_core::users::directory(tx)
            .await?
            .iter()
            .any(|(id, _, _)| *id == owner);
        if !active {
            return Err(Error::invalid_field(
                "options.owner_id",
                "unknown_user",
                format!("no active user {owner}"),
            ));
        }
    }
    for (i, tag) in o.tags.iter().enumerate() {
        if tag.trim().is_empty() || tag.chars().count() > 50 {
            return Err(Error::invalid_field(
                format!("options.tags[{i}]"),
                "invalid_tag",
                "a tag is 1 to 50 characters",
            ));
        }
    }
    let Some(mapping) = &o.mapping else {
        return Ok(None);
    };
    let plan = mapping::check(schema, headers, mapping)?;
    if let Some(key) = o.match_key.as_deref() {
        if plan.column_of(key).is_none() {
            return Err(Error::invalid_field(
                "options.match_key",
                "not_mapped",
                format!("no column is mapped to the match key '{key}'"),
            ));
        }
    }
    Ok(Some(plan))
}

/// Starts an import: stores the files and queues it, or keeps it `pending` with a suggested
/// mapping when `options.mapping` is absent.
pub async fn start(
    deps: &Deps,
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    mut options: ImportOptions,
    upload: Upload,
) -> Result<Import> {
    let object = object_named(&options.object)?;
    let schema = ObjectSchema::load(tx, object).await?;
    require_import(caller, object, Some(options.mode))?;
    options.object = object.as_str().to_owned();
    options.undo_mode = None;
    let headers = upload.found.headers.clone();
    let planned = check_options(tx, &schema, &headers, &options).await?;
    let status = if planned.is_some() {
        "queued"
    } else {
        "pending"
    };
    if planned.is_none() {
        let suggested: Map<String, Value> = mapping::suggest(&schema, &headers)
            .into_iter()
            .map(|(h, p)| (h, p.map_or(Value::Null, Value::String)))
            .collect();
        options.mapping = Some(suggested);
    }
    prune_files(deps, tx).await?;
    let tenant = tx.tenant().id;
    let original = StoredKey::generate(tenant);
    let data = StoredKey::generate(tenant);
    deps.files
        .put_file(&original, "application/octet-stream", &upload.original)
        .await?;
    deps.files
        .put_file(&data, "text/csv", &upload.normalised)
        .await?;
    let import = Import {
        id: Uuid::now_v7(),
        object: options.object.clone(),
        status: status.into(),
        options: sqlx::types::Json(options),
        file_name: upload.file_name.clone(),
        format: upload.found.format.as_str().into(),
        encoding: upload.found.encoding.clone(),
        separator: upload.found.separator.clone(),
        headers,
        original_key: original.as_str().to_owned(),
        data_key: data.as_str().to_owned(),
        data_bytes: upload.found.bytes as i64,
        total: upload.found.rows as i64,
        next_offset: upload.found.data_offset as i64,
        next_row: 1,
        created: 0,
        updated: 0,
        skipped: 0,
        failed: 0,
        busy_ms: 0,
        error: None,
        undo: None,
        undo_next_row: None,
        created_by: caller.user_id,
        created_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
        updated_at: chrono::Utc::now(),
        files_expire_at: chrono::Utc::now() + deps.retention,
    };
    store::insert(tx, &import).await?;
    if status == "queued" {
        queue(tx, import.id).await?;
    }
    crm_core::audit::record(
        tx,
        actor,
        "import.started",
        Some(("import", import.id.to_string())),
        json!({ "object": import.object, "file": import.file_name, "rows": import.total, "status": status }),
    )
    .await?;
    store::get(tx, import.id, false).await
}

async fn queue(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    jobs::enqueue(
        tx,
        NewJob::of(&ImportJob { import_id: id })?
            .dedupe(format!("import:{id}:start"))
            .about(id),
    )
    .await?;
    Ok(())
}

/// Deletes the files of imports past their retention (a few per call).
async fn prune_files(deps: &Deps, tx: &mut TenantTx) -> Result<()> {
    for (id, original, data) in store::expired_files(tx, 20).await? {
        for key in [original, data].iter().filter_map(|k| StoredKey::parse(k)) {
            deps.files.delete(&key).await?;
        }
        store::forget_files(tx, id).await?;
    }
    Ok(())
}

/// An import the caller may see: their own, or any for tenant admins (others are 404).
pub async fn get(tx: &mut TenantTx, caller: &Caller, id: Uuid, lock: bool) -> Result<Import> {
    let import = store::get(tx, id, lock).await?;
    if import.created_by == caller.user_id && caller.user_id.is_some()
        || caller.holds(Permission::TenantManage)
    {
        Ok(import)
    } else {
        Err(store::not_found(id))
    }
}

/// The imports the caller may see, newest first.
pub async fn list(
    tx: &mut TenantTx,
    caller: &Caller,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Page<Import>> {
    let mut page = store::list(tx, cursor, limit).await?;
    if !caller.holds(Permission::TenantManage) {
        page.items
            .retain(|i| i.created_by.is_some() && i.created_by == caller.user_id);
    }
    Ok(page)
}

/// Confirms a pending import's mapping (`None`: the suggested one) and queues it.
pub async fn confirm(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    mapping: Option<Map<String, Value>>,
) -> Result<Import> {
    let import = get(tx, caller, id, true).await?;
    if import.status != "pending" {
        return Err(Error::conflict(
            "import.not_pending",
            format!(
                "import {id} is {}; only a pending import waits for its mapping",
                import.status
            ),
        ));
    }
    let object = crate::run::object_of(&import)?;
    let mut options = import.options.0.clone();
    require_import(caller, object, Some(options.mode))?;
    let schema = ObjectSchema::load(tx, object).await?;
    if let Some(m) = mapping {
        options.mapping = Some(m);
    }
    check_options(tx, &schema, &import.headers, &options).await?;
    store::queue_with(tx, id, &options).await?;
    queue(tx, id).await?;
    store::get(tx, id, false).await
}

/// Starts undoing a finished import; `purge` deletes created records for good instead of
/// moving them to the recycle bin.
pub async fn undo(
    tx: &mut TenantTx,
    caller: &Caller,
    actor: &Actor,
    id: Uuid,
    purge: bool,
) -> Result<Import> {
    let import = get(tx, caller, id, true).await?;
    if import.options.0.dry_run {
        return Err(Error::conflict(
            "import.dry_run",
            "a dry run wrote nothing; there is nothing to undo",
        ));
    }
    if !matches!(import.status.as_str(), "done" | "failed") {
        return Err(Error::conflict(
            "import.not_finished",
            format!(
                "import {id} is {}; undo an import once it is done or failed",
                import.status
            ),
        ));
    }
    let object = crate::run::object_of(&import)?;
    caller.require(object.permission(if purge {
        RecordAction::Purge
    } else {
        RecordAction::Delete
    }))?;
    let summary = crate::undo::Summary {
        mode: if purge { "purge" } else { "recycle" }.into(),
        by: caller.user_id,
        ..Default::default()
    };
    store::save_undo(tx, id, None, &json!(summary), "undoing").await?;
    jobs::enqueue(
        tx,
        NewJob::of(&UndoJob { import_id: id })?
            .dedupe(format!("import-undo:{id}:start"))
            .about(id),
    )
    .await?;
    crm_core::audit::record(
        tx,
        actor,
        "import.undo_requested",
        Some(("import", id.to_string())),
        json!({ "mode": summary.mode }),
    )
    .await?;
    store::get(tx, id, false).await
}

/// Every line of an import's error report (at most `max`).
pub async fn error_lines(
    tx: &mut TenantTx,
    caller: &Caller,
    id: Uuid,
    max: i64,
) -> Result<(Import, Vec<store::RowError>)> {
    let import = get(tx, caller, id, false).await?;
    let mut lines = Vec::new();
    let mut after = None;
    while (lines.len() as i64) < max {
        let page = store::errors(tx, id, after, 1000.min(max - lines.len() as i64)).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.row_no, last.kind.clone(), last.seq));
        let short = page.len() < 1000;
        lines.extend(page);
        if short {
            break;
        }
    }
    Ok((import, lines))
}

/// The original file's stored key, while it is kept.
pub fn original_of(import: &Import) -> Result<StoredKey> {
    StoredKey::parse(&import.original_key)
        .ok_or_else(|| Error::not_found("import.file_gone", "the import's file is no longer kept"))
}

/// Whether `path` looks like something worth reading at all.
pub fn ensure_nonempty(path: &Path) -> Result<()> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(Error::bad_request("import.empty", "the file is empty"));
    }
    Ok(())
}
