//! Running an import: the `import.run` job reads the normalised file chunk by chunk, each
//! chunk in a tenant transaction of its own that writes the chunk's records (through
//! `crm_records::bulk`, so every engine rule applies), its error lines, what it wrote (for
//! undo) and the import's new position, together or not at all. A runner holds the import's
//! row lock while it works, so two runners never take the same rows; a crash loses only the
//! uncommitted chunk, which the next run reads again. After a few seconds of work the job
//! hands over to a fresh one, so one tenant's big import never holds a worker for long.

use crate::convert::{CellError, Converter};
use crate::mapping;
use crate::report;
use crate::store::{self, Dedupe, Import, Mode, Progress, RowError, Written};
use crate::{Deps, ImportJob};
use crm_core::audit::{Actor, ActorKind};
use crm_core::authz::Caller;
use crm_core::context::RequestMeta;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use crm_core::files::StoredKey;
use crm_core::jobs::{self, NewJob};
use crm_records::bulk;
use crm_records::engine::Access;
use crm_records::service::CreateOptions;
use crm_records::values;
use crm_records::{ObjectKey, ObjectSchema};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Bytes of the normalised file read per chunk.
pub const WINDOW: u64 = 8 * 1024 * 1024;
/// Rows per chunk (one transaction).
pub const CHUNK_ROWS: usize = 5_000;
/// How long one job works before handing over to the next.
pub const SLICE: Duration = Duration::from_secs(10);

/// A row as read: its number in the original file and its cells.
pub struct Row {
    pub number: i64,
    pub cells: Vec<String>,
}

/// Up to `max` complete rows from the start of `window`, and the bytes they span. `eof`: the
/// window ends where the file does (so its last row is complete).
pub fn rows_of(window: &[u8], eof: bool, max: usize) -> Result<(Vec<Row>, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(window);
    let mut record = csv::StringRecord::new();
    let mut rows = Vec::new();
    let mut used = 0u64;
    while rows.len() < max {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            // A row cut off by the window's end reads as broken UTF-8 at worst: stop there.
            Err(_) if !eof => break,
            Err(e) => {
                return Err(Error::internal(format!(
                    "the normalised import file is damaged: {e}"
                )))
            }
        }
        let end = reader.position().byte();
        if !eof && end >= window.len() as u64 {
            break;
        }
        let mut cells = record.iter();
        let number = cells
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| Error::internal("the normalised import file lost its row numbers"))?;
        rows.push(Row {
            number,
            cells: cells.map(str::to_owned).collect(),
        });
        used = end;
    }
    Ok((rows, used))
}

/// Runs an import for up to [`SLICE`]; enqueues its continuation in `job_tx` when rows remain.
pub async fn run(deps: &Deps, job_tx: &mut TenantTx, id: Uuid) -> Result<()> {
    let started = Instant::now();
    loop {
        let mut tx = deps.db.tenant_tx(job_tx.tenant()).await?;
        let import = store::get(&mut tx, id, true).await?;
        if !matches!(import.status.as_str(), "queued" | "running") {
            return Ok(());
        }
        let next = match chunk(deps, &mut tx, &import).await {
            Ok(next) => next,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                // The import cannot go on (its user left, its object or fields went away):
                // it stops, with the reason, and keeps what it wrote.
                drop(tx);
                let mut tx = deps.db.tenant_tx(job_tx.tenant()).await?;
                store::set_status(&mut tx, id, "failed", Some(&e.to_string())).await?;
                tx.commit().await?;
                return Ok(());
            }
        };
        tx.commit().await?;
        let Some(next_row) = next else {
            return Ok(());
        };
        if started.elapsed() >= SLICE {
            jobs::enqueue(
                job_tx,
                NewJob::of(&ImportJob { import_id: id })?
                    .dedupe(format!("import:{id}:{next_row}"))
                    .about(id),
            )
            .await?;
            return Ok(());
        }
    }
}

/// Database and storage outages (and a full server) are retried by the job; anything else
/// ends the import.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Internal(_) | Error::Unavailable(_) | Error::Database(_) | Error::Busy { .. }
    )
}

/// The user an import (or its undo) acts for, as a caller with their current permissions;
/// the actor's events carry the import's id.
pub async fn acting(
    tx: &mut TenantTx,
    user: Option<Uuid>,
    import_id: Uuid,
) -> Result<(Caller, Actor)> {
    let gone = || {
        Error::conflict(
            "import.user_inactive",
            "the user this import acts for is no longer active; start it again as another user",
        )
    };
    let user = user.ok_or_else(gone)?;
    let principal = crm_core::identity::sessions::background_principal(tx, user)
        .await?
        .ok_or_else(gone)?;
    let caller = Caller::load(tx, &principal).await?;
    let actor = Actor {
        kind: ActorKind::User,
        id: Some(user),
        name: Some(principal.name.clone()),
        meta: RequestMeta {
            request_id: format!("import:{import_id}"),
            import_id: Some(import_id),
            ..RequestMeta::default()
        },
    };
    Ok((caller, actor))
}

/// The object an import writes.
pub fn object_of(import: &Import) -> Result<ObjectKey> {
    ObjectKey::named(&import.object)
        .ok_or_else(|| Error::internal(format!("import names no object: {}", import.object)))
}

/// Processes one chunk in `tx`; the next row to read, or `None` when the file is done.
async fn chunk(deps: &Deps, tx: &mut TenantTx, import: &Import) -> Result<Option<i64>> {
    let begun = Instant::now();
    let object = object_of(import)?;
    let schema = ObjectSchema::load(tx, object).await?;
    let (caller, actor) = acting(tx, import.created_by, import.id).await?;
    let key = schema.data_key(tx, deps.master.as_deref()).await?;
    let access = Access::of_caller(&caller, &actor, object, key.as_ref());
    let options = &import.options.0;
    let mapping = options
        .mapping
        .as_ref()
        .ok_or_else(|| Error::internal("a started import has no mapping"))?;
    let plan = mapping::check(&schema, &import.headers, mapping)?;
    let directory = crm_core::users::directory(tx).await?;
    let zone = crate::zone_of(options.time_zone.as_deref())?;
    let converter = Converter::new(&schema, plan, &directory, zone);
    let stored = StoredKey::parse(&import.data_key).ok_or_else(|| {
        Error::conflict("import.file_gone", "the import's file is no longer kept")
    })?;
    let start = import.next_offset as u64;
    let window = deps.files.get_range(&stored, start, WINDOW).await?;
    let eof = start + window.len() as u64 >= import.data_bytes as u64;
    let (rows, used) = rows_of(&window, eof, CHUNK_ROWS)?;
    if rows.is_empty() && !eof {
        return Err(Error::bad_request(
            "import.row_too_large",
            format!(
                "row {} is larger than {} MiB",
                import.next_row,
                WINDOW >> 20
            ),
        ));
    }
    let mut work = Chunk::new(&schema, &access, &converter, options, &import.headers);
    if options.dry_run {
        sqlx::query("SAVEPOINT import_dry_run")
            .execute(tx.conn())
            .await?;
    }
    work.run(tx, &rows).await?;
    if options.dry_run {
        sqlx::query("ROLLBACK TO SAVEPOINT import_dry_run")
            .execute(tx.conn())
            .await?;
        work.written.clear();
    }
    store::insert_written(tx, import.id, &work.written).await?;
    store::insert_errors(tx, import.id, &work.errors).await?;
    let next_row = rows.last().map_or(import.next_row, |r| r.number + 1);
    let progress = Progress {
        next_offset: (start + used) as i64,
        next_row,
        created: work.created,
        updated: work.updated,
        skipped: work.skipped,
        failed: work.failed,
        busy_ms: begun.elapsed().as_millis() as i64,
    };
    let finished = start + used >= import.data_bytes as u64;
    store::advance(tx, import.id, &progress, finished).await?;
    if finished {
        report::audit_done(tx, import, &actor, &progress).await?;
    }
    Ok((!finished).then_some(next_row))
}

/// A row, its body and its match key (as stored).
type Keyed<'r> = (&'r Row, Value, Option<String>);

/// What to do with one row.
enum Plan {
    Create(Value),
    Update(Uuid, Value),
}

/// One chunk's rows, decided and written.
struct Chunk<'a> {
    schema: &'a ObjectSchema,
    access: &'a Access<'a>,
    converter: &'a Converter,
    options: &'a store::ImportOptions,
    headers: &'a [String],
    written: Vec<Written>,
    errors: Vec<RowError>,
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
}

impl<'a> Chunk<'a> {
    fn new(
        schema: &'a ObjectSchema,
        access: &'a Access<'a>,
        converter: &'a Converter,
        options: &'a store::ImportOptions,
        headers: &'a [String],
    ) -> Chunk<'a> {
        Chunk {
            schema,
            access,
            converter,
            options,
            headers,
            written: Vec::new(),
            errors: Vec::new(),
            created: 0,
            updated: 0,
            skipped: 0,
            failed: 0,
        }
    }

    async fn run(&mut self, tx: &mut TenantTx, rows: &[Row]) -> Result<()> {
        // Rows whose key repeats an earlier row of this chunk wait for a second pass, when the
        // record the earlier row wrote can be matched.
        let mut first: Vec<Keyed<'_>> = Vec::new();
        let mut later: Vec<Keyed<'_>> = Vec::new();
        let mut keys_seen: HashSet<String> = HashSet::new();
        for row in rows {
            let body = match self.converter.body(&row.cells) {
                Ok(body) => self.decorate(body),
                Err(cells) => {
                    self.fail_cells(row, cells);
                    continue;
                }
            };
            match self.key_of(row) {
                Ok(Some(k)) if keys_seen.contains(&k) => later.push((row, body, Some(k))),
                Ok(Some(k)) => {
                    keys_seen.insert(k.clone());
                    first.push((row, body, Some(k)));
                }
                Ok(None) => first.push((row, body, None)),
                Err(e) => self.fail(row, &e),
            }
        }
        self.pass(tx, first).await?;
        self.pass(tx, later).await
    }

    /// The body with the import's owner and tags.
    fn decorate(&self, mut body: Value) -> Value {
        let owner_key = self.schema.object.owner_column();
        if let (Some(owner), Some(map)) = (self.options.owner_id, body.as_object_mut()) {
            map.entry(owner_key).or_insert(json!(owner));
        }
        if !self.options.tags.is_empty() && self.schema.resolve("tags").is_some() {
            if let Some(map) = body.as_object_mut() {
                let tags = map.entry("tags").or_insert_with(|| json!([]));
                if let Some(list) = tags.as_array_mut() {
                    for t in &self.options.tags {
                        if !list.iter().any(|x| x == t) {
                            list.push(json!(t));
                        }
                    }
                }
            }
        }
        body
    }

    /// The row's match key as stored (a phone normalised), if the import matches rows.
    fn key_of(&self, row: &Row) -> Result<Option<String>> {
        let Some(path) = self.options.match_key.as_deref() else {
            return Ok(None);
        };
        let Some(raw) = self.converter.cell(&row.cells, path) else {
            return if self.options.mode == Mode::Update {
                Err(Error::invalid_field(
                    path,
                    "required",
                    format!("the column holding the match key '{path}' is empty"),
                ))
            } else {
                Ok(None)
            };
        };
        if path == "id" {
            return Uuid::parse_str(raw)
                .map(|u| Some(u.to_string()))
                .map_err(|_| {
                    Error::invalid_field("id", "invalid_id", format!("'{raw}' is not a record id"))
                });
        }
        let field = self.schema.resolve(path).ok_or_else(|| {
            Error::invalid_field("match_key", "unknown_field", format!("no field '{path}'"))
        })?;
        match values::parse(&field.spec(), path, &Value::String(raw.to_owned())) {
            Ok(v) => Ok(v
                .to_json()
                .as_str()
                .map(str::to_owned)
                .or_else(|| Some(v.to_json().to_string()))),
            Err(e) => Err(Error::Invalid {
                code: "record.invalid",
                message: e.message.clone(),
                fields: vec![e],
            }),
        }
    }

    /// Decides and writes a set of rows, matching their keys against the records as they
    /// are when the pass starts.
    async fn pass(&mut self, tx: &mut TenantTx, rows: Vec<Keyed<'_>>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let matched = match self.options.match_key.as_deref() {
            Some(path) => {
                let wanted: Vec<String> = rows.iter().filter_map(|(_, _, k)| k.clone()).collect();
                bulk::match_ids(tx, self.schema, self.access, path, &wanted).await?
            }
            None => HashMap::new(),
        };
        let mut plans: Vec<(&Row, Plan)> = Vec::with_capacity(rows.len());
        for (row, body, key) in rows {
            let hits = key
                .as_ref()
                .and_then(|k| matched.get(k))
                .cloned()
                .unwrap_or_default();
            if let Some(plan) = self.decide(row, body, key.as_deref(), &hits) {
                plans.push((row, plan));
            }
        }
        let (creates, updates): (Vec<_>, Vec<_>) = plans
            .into_iter()
            .partition(|(_, p)| matches!(p, Plan::Create(_)));
        let bodies: Vec<Value> = creates
            .iter()
            .filter_map(|(_, p)| match p {
                Plan::Create(b) => Some(b.clone()),
                Plan::Update(..) => None,
            })
            .collect();
        let allow_duplicate = self.options.dedupe == Dedupe::CreateAnyway;
        let outcomes = bulk::create_many(
            tx,
            self.schema,
            self.access,
            &bodies,
            CreateOptions { allow_duplicate },
        )
        .await?;
        let mut retry: Vec<(&Row, Plan)> = Vec::new();
        for (((row, _), outcome), body) in creates.iter().zip(outcomes).zip(bodies) {
            match outcome {
                Ok(id) => {
                    self.created += 1;
                    self.written.push(Written {
                        row_no: row.number,
                        record_id: id,
                        action: "created".into(),
                        version: 1,
                        changes: None,
                    });
                }
                Err(Error::Duplicate {
                    existing_id,
                    message,
                    ..
                }) if self.options.dedupe == Dedupe::Update => {
                    let _ = message;
                    retry.push((row, Plan::Update(existing_id, body)));
                }
                Err(
                    e @ (Error::Duplicate { .. }
                    | Error::Conflict {
                        code: "customer.duplicate",
                        ..
                    }),
                ) => {
                    self.skip(row, e.code(), &e.to_string());
                }
                Err(e) => self.fail(row, &e),
            }
        }
        for (row, plan) in updates.into_iter().chain(retry) {
            if let Plan::Update(id, body) = plan {
                self.update(tx, row, id, &body).await?;
            }
        }
        Ok(())
    }

    /// What a row does, given the records its key matched; `None` when it is already
    /// accounted for (skipped or failed).
    fn decide(&mut self, row: &Row, body: Value, key: Option<&str>, hits: &[Uuid]) -> Option<Plan> {
        let path = self.options.match_key.as_deref().unwrap_or("id");
        if hits.len() > 1 {
            self.fail(
                row,
                &Error::conflict(
                    "import.ambiguous_match",
                    format!(
                        "{} records have {path} '{}'; match by id instead",
                        hits.len(),
                        key.unwrap_or_default()
                    ),
                ),
            );
            return None;
        }
        let hit = hits.first().copied();
        match (self.options.mode, hit) {
            (Mode::Update | Mode::Upsert, Some(id)) => Some(Plan::Update(id, body)),
            (Mode::Update, None) => {
                self.fail(
                    row,
                    &Error::not_found(
                        "import.no_match",
                        format!(
                            "no {} you can see has {path} '{}'",
                            self.schema.noun(),
                            key.unwrap_or_default()
                        ),
                    ),
                );
                None
            }
            (Mode::Create, Some(id)) => match self.options.dedupe {
                Dedupe::Skip => {
                    self.skip(
                        row,
                        "import.duplicate",
                        &format!(
                            "{} {id} already has {path} '{}'",
                            self.schema.noun(),
                            key.unwrap_or_default()
                        ),
                    );
                    None
                }
                Dedupe::Update => Some(Plan::Update(id, body)),
                Dedupe::CreateAnyway => Some(Plan::Create(body)),
            },
            (Mode::Create | Mode::Upsert, None) => Some(Plan::Create(body)),
        }
    }

    async fn update(&mut self, tx: &mut TenantTx, row: &Row, id: Uuid, body: &Value) -> Result<()> {
        match bulk::update_one(tx, self.schema, self.access, id, body, true).await? {
            Ok((before, after)) => {
                let changes = report::changes(body, &before, &after);
                if changes.as_object().is_some_and(serde_json::Map::is_empty) {
                    self.skip(
                        row,
                        "import.unchanged",
                        &format!("{} {id} already has these values", self.schema.noun()),
                    );
                    return Ok(());
                }
                self.updated += 1;
                self.written.push(Written {
                    row_no: row.number,
                    record_id: id,
                    action: "updated".into(),
                    version: after["version"].as_i64().unwrap_or_default(),
                    changes: Some(changes),
                });
            }
            Err(e) => self.fail(row, &e),
        }
        Ok(())
    }

    fn skip(&mut self, row: &Row, code: &str, message: &str) {
        self.skipped += 1;
        self.errors.push(RowError {
            row_no: row.number,
            seq: 0,
            kind: "skipped".into(),
            column_name: None,
            field: None,
            value: None,
            code: code.to_owned(),
            message: message.to_owned(),
            cells: Some(row.cells.clone()),
        });
    }

    fn fail_cells(&mut self, row: &Row, cells: Vec<CellError>) {
        self.failed += 1;
        for (seq, c) in cells.into_iter().enumerate() {
            self.errors.push(RowError {
                row_no: row.number,
                seq: seq as i32,
                kind: "failed".into(),
                column_name: c.column.and_then(|i| self.headers.get(i)).cloned(),
                field: Some(c.field),
                value: Some(c.value),
                code: c.code,
                message: c.message,
                cells: (seq == 0).then(|| row.cells.clone()),
            });
        }
    }

    fn fail(&mut self, row: &Row, e: &Error) {
        self.failed += 1;
        let lines = report::lines_of(self.converter.plan(), self.headers, row, e);
        self.errors.extend(lines);
    }
}
