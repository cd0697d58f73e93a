//! The `imports`, `import_rows` and `import_errors` tables: every statement on them.

use chrono::{DateTime, Utc};
use crm_core::context::{cut_page, parse_cursor, Page};
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::FromRow;
use uuid::Uuid;

/// What the client asked for (the `options` part), as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportOptions {
    /// The object's API name: `customers`, `contacts`, or a custom object's key.
    pub object: String,
    /// `{"column header": "field path" | null}`; suggested from the headers when absent.
    #[serde(default)]
    pub mapping: Option<Map<String, Value>>,
    #[serde(default)]
    pub mode: Mode,
    /// `id`, a unique field, `phone` or `email`: how a row finds its record.
    #[serde(default)]
    pub match_key: Option<String>,
    #[serde(default)]
    pub dedupe: Dedupe,
    /// Owner of the records created (when no column names one).
    #[serde(default)]
    pub owner_id: Option<Uuid>,
    /// Tags added to every record written.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Validate everything, write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// IANA zone of date-times without an offset (default `Asia/Shanghai`).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Undo: `recycle` (the default) moves created records to the recycle bin, `purge`
    /// deletes them for good. Set when undo is asked for.
    #[serde(default)]
    pub undo_mode: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Create,
    Update,
    Upsert,
}

/// What a row that matches an existing record does in `create` mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dedupe {
    #[default]
    Skip,
    Update,
    CreateAnyway,
}

/// One import as stored.
#[derive(Debug, Clone, FromRow)]
pub struct Import {
    pub id: Uuid,
    pub object: String,
    pub status: String,
    pub options: sqlx::types::Json<ImportOptions>,
    pub file_name: String,
    pub format: String,
    pub encoding: String,
    pub separator: Option<String>,
    pub headers: Vec<String>,
    pub original_key: String,
    pub data_key: String,
    pub data_bytes: i64,
    pub total: i64,
    pub next_offset: i64,
    pub next_row: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub busy_ms: i64,
    pub error: Option<String>,
    pub undo: Option<Value>,
    pub undo_next_row: Option<i64>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub files_expire_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, object, status, options, file_name, format, encoding, separator, headers, \
    original_key, data_key, data_bytes, total, next_offset, next_row, created, updated, skipped, failed, \
    busy_ms, error, undo, undo_next_row, created_by, created_at, started_at, finished_at, updated_at, \
    files_expire_at";

pub fn not_found(id: Uuid) -> Error {
    Error::not_found("import.not_found", format!("import {id} not found"))
}

/// Stores a new, queued import.
pub async fn insert(tx: &mut TenantTx, import: &Import) -> Result<()> {
    sqlx::query(
        "INSERT INTO imports (id, object, status, options, file_name, format, encoding, separator, \
           headers, original_key, data_key, data_bytes, total, next_offset, created_by, files_expire_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(import.id)
    .bind(&import.object)
    .bind(&import.status)
    .bind(&import.options)
    .bind(&import.file_name)
    .bind(&import.format)
    .bind(&import.encoding)
    .bind(&import.separator)
    .bind(&import.headers)
    .bind(&import.original_key)
    .bind(&import.data_key)
    .bind(import.data_bytes)
    .bind(import.total)
    .bind(import.next_offset)
    .bind(import.created_by)
    .bind(import.files_expire_at)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// One import; `lock` holds its row until the transaction ends (one runner at a time).
pub async fn get(tx: &mut TenantTx, id: Uuid, lock: bool) -> Result<Import> {
    let sql = format!(
        "SELECT {COLUMNS} FROM imports WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or_else(|| not_found(id))
}

/// Imports, newest first (ids are time-ordered).
pub async fn list(tx: &mut TenantTx, cursor: Option<&str>, limit: i64) -> Result<Page<Import>> {
    let before: Option<Uuid> = parse_cursor(cursor)?;
    let mut items: Vec<Import> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM imports WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
    ))
    .bind(before)
    .bind(limit + 1)
    .fetch_all(tx.conn())
    .await?;
    let next_cursor = cut_page(&mut items, limit, |i| i.id);
    Ok(Page { items, next_cursor })
}

/// What one chunk did, added to the import's counts.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    pub next_offset: i64,
    pub next_row: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub busy_ms: i64,
}

pub async fn advance(tx: &mut TenantTx, id: Uuid, p: &Progress, done: bool) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET next_offset = $2, next_row = $3, created = created + $4, \
           updated = updated + $5, skipped = skipped + $6, failed = failed + $7, busy_ms = busy_ms + $8, \
           status = CASE WHEN $9 THEN 'done' ELSE 'running' END, \
           started_at = coalesce(started_at, now()), \
           finished_at = CASE WHEN $9 THEN now() END, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(p.next_offset)
    .bind(p.next_row)
    .bind(p.created)
    .bind(p.updated)
    .bind(p.skipped)
    .bind(p.failed)
    .bind(p.busy_ms)
    .bind(done)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A pending import's confirmed options; it is queued.
pub async fn queue_with(tx: &mut TenantTx, id: Uuid, options: &ImportOptions) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET options = $2, status = 'queued', updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(sqlx::types::Json(options))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets a status (and why it failed).
pub async fn set_status(
    tx: &mut TenantTx,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET status = $2, error = coalesce($3, error), updated_at = now(), \
           finished_at = CASE WHEN $2 IN ('done', 'failed', 'undone') THEN now() ELSE finished_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A row the import wrote.
#[derive(Debug, Clone, FromRow)]
pub struct Written {
    pub row_no: i64,
    pub record_id: Uuid,
    /// `created` or `updated`.
    pub action: String,
    pub version: i64,
    pub changes: Option<Value>,
}

pub async fn insert_written(tx: &mut TenantTx, id: Uuid, rows: &[Written]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO import_rows (import_id, row_no, record_id, action, version, changes) \
         SELECT $1, * FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::bigint[], $6::jsonb[])",
    )
    .bind(id)
    .bind(rows.iter().map(|r| r.row_no).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.record_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.action.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.changes.clone()).collect::<Vec<_>>())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The rows written before `before_row` (all when `None`), last first: what undo walks.
pub async fn written_before(
    tx: &mut TenantTx,
    id: Uuid,
    before_row: Option<i64>,
    limit: i64,
) -> Result<Vec<Written>> {
    Ok(sqlx::query_as(
        "SELECT row_no, record_id, action, version, changes FROM import_rows \
         WHERE import_id = $1 AND ($2::bigint IS NULL OR row_no < $2) ORDER BY row_no DESC LIMIT $3",
    )
    .bind(id)
    .bind(before_row)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// One line of the error report.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RowError {
    pub row_no: i64,
    pub seq: i32,
    /// `failed`, `skipped`, or `undo` (what undo left alone).
    pub kind: String,
    pub column_name: Option<String>,
    pub field: Option<String>,
    pub value: Option<String>,
    pub code: String,
    pub message: String,
    /// The row's cells as read (on its first line only).
    pub cells: Option<Vec<String>>,
}

pub async fn insert_errors(tx: &mut TenantTx, id: Uuid, errors: &[RowError]) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    // Cells travel as one JSON array per line: unnest cannot take an array of arrays.
    let cells: Vec<Option<Value>> = errors
        .iter()
        .map(|e| e.cells.as_ref().map(|c| serde_json::json!(c)))
        .collect();
    sqlx::query(
        "INSERT INTO import_errors (import_id, row_no, seq, kind, column_name, field, value, code, message, cells) \
         SELECT $1, r, s, k, c, f, v, code, m, \
                CASE WHEN cj IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(cj)) END \
         FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[]) \
           AS u(r, s, k, c, f, v, code, m, cj) \
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(errors.iter().map(|e| e.row_no).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.seq).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.kind.clone()).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.column_name.clone()).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.field.clone()).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.value.clone()).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.code.clone()).collect::<Vec<_>>())
    .bind(errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>())
    .bind(cells)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Report lines after `after` ((row, kind, seq)), in row order.
pub async fn errors(
    tx: &mut TenantTx,
    id: Uuid,
    after: Option<(i64, String, i32)>,
    limit: i64,
) -> Result<Vec<RowError>> {
    let (row, kind, seq) = match after {
        Some((r, k, s)) => (Some(r), Some(k), Some(s)),
        None => (None, None, None),
    };
    Ok(sqlx::query_as(
        "SELECT row_no, seq, kind, column_name, field, value, code, message, cells FROM import_errors \
         WHERE import_id = $1 AND ($2::bigint IS NULL OR (row_no, kind, seq) > ($2, $3, $4)) \
         ORDER BY row_no, kind, seq LIMIT $5",
    )
    .bind(id)
    .bind(row)
    .bind(kind)
    .bind(seq)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// Undo's progress: the row it has reached and its running summary.
pub async fn save_undo(
    tx: &mut TenantTx,
    id: Uuid,
    next_row: Option<i64>,
    summary: &Value,
    status: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE imports SET undo_next_row = $2, undo = $3, status = $4, updated_at = now(), \
           finished_at = CASE WHEN $4 = 'undone' THEN now() ELSE finished_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(next_row)
    .bind(summary)
    .bind(status)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Imports whose files have outlived their retention, with their stored keys.
pub async fn expired_files(tx: &mut TenantTx, limit: i64) -> Result<Vec<(Uuid, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, original_key, data_key FROM imports \
         WHERE files_expire_at < now() AND original_key <> '' AND status NOT IN ('queued', 'running', 'undoing') \
         ORDER BY files_expire_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(tx.conn())
    .await?)
}

/// Forgets an import's stored files (their objects are deleted).
pub async fn forget_files(tx: &mut TenantTx, id: Uuid) -> Result<()> {
    sqlx::query("UPDATE imports SET original_key = '', data_key = '' WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(())
}
