//! Exports of an object's records and printable pages.
//!
//! A list export takes the list's filters, sort and search, the caller's scope and masking
//! (a masked value stays masked), and writes the columns of [`Columns`] (every field, custom
//! ones included, or those named in `fields=`) with headers in the caller's language:
//! - CSV ([`csv`]) is streamed: the header leaves at once and each page of records is read in
//!   a transaction of its own, so memory stays flat however many rows there are;
//! - XLSX ([`xlsx`]) is built in the request up to [`ExportSettings::async_rows`] rows, above
//!   that by a durable job that writes the file to the file store ([`files`]: 202 with a status
//!   to poll, a download for whoever asked, deleted after the retention period).
//!
//! Every export needs the object's read and export permissions, counts customers against the
//! read limit (before any row leaves) and is audited as `<object>.exported` with its format
//! and row count. [`pdf`] lays out and renders printable documents with an embedded, subset
//! CJK font; [`print`] makes them of one record and of the sales report.

mod columns;
pub mod csv;
pub mod files;
pub mod pdf;
pub mod print;
pub mod xlsx;

pub use columns::{accept_language, lang_key, Column, Columns, HeaderStyle};

use crate::engine::Access;
use crate::meta::{ObjectKey, RecordAction};
use crate::query::{self, ListQuery};
use crate::schema::ObjectSchema;
use crm_core::audit::Actor;
use crm_core::authz::Caller;
use crm_core::crypto::DataKey;
use crm_core::db::{Db, TenantCtx, TenantTx};
use crm_core::error::{Error, Result};
use crm_core::mail::Lang;
use crm_core::read_limit::{self, ReadVerdict, Via};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// Records read per statement while exporting.
pub const PAGE: i64 = 1000;

/// `[export]` in the server's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// Rows above which an XLSX export runs as a job (202 and a status to poll).
    pub async_rows: u64,
    /// Most rows one export may hold (400 `export.too_large` beyond).
    pub max_rows: u64,
    /// Hours a finished export's file stays downloadable before it is deleted.
    pub retention_hours: u32,
    /// A font with Chinese glyphs for PDFs: `.ttf`, `.otf` or a `.ttc` collection (Debian's
    /// fonts-noto-cjk by default).
    pub pdf_font: PathBuf,
    /// The face of a collection to use; by default its Simplified Chinese face (`… SC`),
    /// else the first.
    pub pdf_font_index: Option<u32>,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            async_rows: 10_000,
            max_rows: 1_000_000,
            retention_hours: 24,
            pdf_font: PathBuf::from(pdf::DEFAULT_FONT),
            pdf_font_index: None,
        }
    }
}

/// A list export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// `csv` or `xlsx`.
    pub fn parse(raw: &str) -> Result<Format> {
        match raw {
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            other => Err(Error::invalid_field(
                "format",
                "unknown_format",
                format!("'{other}' is not an export format; use csv or xlsx (PDF is per record: GET …/{{id}}/pdf)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => xlsx::CONTENT_TYPE,
        }
    }
}

/// What an export request asks for besides the list's own parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportParams {
    pub format: Format,
    /// `fields=`: API paths, comma-separated (`None`: every column).
    pub fields: Option<String>,
    pub headers: HeaderStyle,
}

impl ExportParams {
    /// Takes `format`, `fields` and `headers` out of a query string's pairs, leaving the list
    /// parameters (filters, sort, `q`…) to the list's own parser.
    pub fn split(pairs: Vec<(String, String)>) -> Result<(ExportParams, Vec<(String, String)>)> {
        let mut params = ExportParams {
            format: Format::Csv,
            fields: None,
            headers: HeaderStyle::Labels,
        };
        let mut rest = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            match key.as_str() {
                "format" => params.format = Format::parse(&value)?,
                "fields" => params.fields = Some(value),
                "headers" => params.headers = HeaderStyle::parse(&value)?,
                _ => rest.push((key, value)),
            }
        }
        Ok((params, rest))
    }
}

/// The language `caller` reads exports in: their own locale when they chose one, else the
/// first of ours in `Accept-Language`, else the company's.
pub async fn caller_lang(tx: &mut TenantTx, caller: &Caller, accept: Option<&str>) -> Result<Lang> {
    if let Some(user) = caller.user_id {
        if let Some(own) = crm_core::users::own_locale(tx, user).await? {
            return Ok(Lang::of(Some(&own)));
        }
    }
    if let Some(lang) = accept_language(accept) {
        return Ok(lang);
    }
    let tenant = crm_core::users::tenant_locale(tx).await?;
    Ok(Lang::of(Some(&tenant)))
}

/// Who exports what: owned, so a streamed body or a job can keep it.
pub struct Exporter {
    pub schema: Arc<ObjectSchema>,
    pub caller: Caller,
    pub actor: Actor,
    pub key: Option<DataKey>,
    pub columns: Columns,
    pub lang: Lang,
}

impl Exporter {
    /// How the exporter reads: their scope and masking.
    pub fn access(&self) -> Access<'_> {
        Access::of_caller(
            &self.caller,
            &self.actor,
            self.schema.object,
            self.key.as_ref(),
        )
    }

    /// 403 unless the exporter may read and export the object.
    pub fn check(&self) -> Result<()> {
        let access = self.access();
        access.require(self.schema.object, RecordAction::Read)?;
        access.require_permission(self.schema.object.export_permission())
    }
}

/// How an export answers.
pub enum Outcome {
    /// A CSV body to stream.
    Csv(csv::CsvStream),
    /// A file built in the request.
    File(Vec<u8>),
    /// A job will write the file: its status.
    Queued(files::ExportView),
}

/// Exports the records `lq` selects as `format`, taking over the request's transaction
/// (committed here): permission, size check, then a CSV stream, a small XLSX, or a queued
/// job for a large one. `db` and `tenant` open the streamed pages' transactions.
pub async fn export(
    mut tx: TenantTx,
    db: &Db,
    tenant: &TenantCtx,
    ex: Exporter,
    lq: ListQuery,
    format: Format,
    settings: &ExportSettings,
) -> Result<Outcome> {
    ex.check()?;
    let count = query::count(&mut tx, &ex.schema, &ex.access(), &lq).await?;
    let count = u64::try_from(count).unwrap_or_default();
    if count > settings.max_rows {
        return Err(Error::bad_request(
            "export.too_large",
            format!(
                "{count} records match, more than the {} one export may hold; narrow the filters and export in parts",
                settings.max_rows
            ),
        ));
    }
    match format {
        Format::Csv => {
            // With the read limit or log on, every customer is counted before the first
            // row leaves, so a refused export sends nothing.
            if needs_accounting(&ex) {
                let ids = all_ids(&mut tx, &ex, &lq).await?;
                if !admit(&mut tx, &ex, &ids).await? {
                    tx.commit().await?;
                    return Err(read_limit::frozen_error());
                }
            }
            audit(&mut tx, &ex, format, count, None).await?;
            tx.commit().await?;
            Ok(Outcome::Csv(csv::CsvStream::new(
                db.clone(),
                tenant.clone(),
                Arc::new(ex),
                lq,
            )))
        }
        Format::Xlsx if count > settings.async_rows => {
            let view = files::queue(&mut tx, &ex, &lq, format, settings).await?;
            tx.commit().await?;
            Ok(Outcome::Queued(view))
        }
        Format::Xlsx => {
            let (bytes, ids) = xlsx::write(&mut tx, &ex, lq).await?;
            if !admit(&mut tx, &ex, &ids).await? {
                tx.commit().await?;
                return Err(read_limit::frozen_error());
            }
            audit(&mut tx, &ex, format, ids.len() as u64, None).await?;
            tx.commit().await?;
            Ok(Outcome::File(bytes))
        }
    }
}

/// The next page of an export (at most [`PAGE`] records) after `lq.cursor`; `None` when the
/// previous page was the last.
pub(crate) async fn next_page(
    tx: &mut TenantTx,
    ex: &Exporter,
    lq: &mut ListQuery,
    done: &mut bool,
) -> Result<Option<Vec<Value>>> {
    if *done {
        return Ok(None);
    }
    lq.limit = PAGE;
    let page = query::list(tx, &ex.schema, &ex.access(), lq).await?;
    match page.next_cursor {
        Some(next) => lq.cursor = Some(next),
        None => *done = true,
    }
    Ok(Some(page.items))
}

/// Whether this export's reads are counted or logged (customers, with the read limit or log).
fn needs_accounting(ex: &Exporter) -> bool {
    ex.schema.object == ObjectKey::Customers && !ex.caller.principal.reads.is_off()
}

/// Every id the export will hold, read page by page (only when reads are counted).
async fn all_ids(tx: &mut TenantTx, ex: &Exporter, lq: &ListQuery) -> Result<Vec<Uuid>> {
    let mut lq = lq.clone();
    let (mut ids, mut done) = (Vec::new(), false);
    while let Some(page) = next_page(tx, ex, &mut lq, &mut done).await? {
        ids.extend(record_ids(&page));
    }
    Ok(ids)
}

/// Counts the customers read against the read limit; false when that froze the exporter
/// (then commit `tx`, the freeze must stay, and refuse with [`read_limit::frozen_error`]).
pub(crate) async fn admit(tx: &mut TenantTx, ex: &Exporter, ids: &[Uuid]) -> Result<bool> {
    if !needs_accounting(ex) {
        return Ok(true);
    }
    let verdict = read_limit::account(tx, &ex.caller, &ex.actor.meta, Via::Export, ids).await?;
    Ok(verdict == ReadVerdict::Admitted)
}

/// Writes `<object>.exported` to the audit log: format, rows and, for a file job, its id.
pub(crate) async fn audit(
    tx: &mut TenantTx,
    ex: &Exporter,
    format: Format,
    rows: u64,
    export_id: Option<Uuid>,
) -> Result<()> {
    crm_core::audit::record(
        tx,
        &ex.actor,
        &format!("{}.exported", ex.schema.object),
        export_id.map(|id| ("export", id.to_string())),
        json!({
            "format": format.as_str(),
            "rows": rows,
            "fields": ex.columns.items.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        }),
    )
    .await
}

/// The ids of records as the engine returns them (for the read limit and its log).
pub fn record_ids(records: &[Value]) -> Vec<Uuid> {
    records
        .iter()
        .filter_map(|r| r["id"].as_str().and_then(|id| id.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn export_parameters_leave_the_list_parameters_alone() {
        let (params, rest) = ExportParams::split(pairs(&[
            ("format", "xlsx"),
            ("filter[level]", "A"),
            ("fields", "name,phone"),
            ("headers", "keys"),
            ("sort", "-created_at"),
        ]))
        .expect("valid");
        assert_eq!(params.format, Format::Xlsx);
        assert_eq!(params.fields.as_deref(), Some("name,phone"));
        assert_eq!(params.headers, HeaderStyle::Keys);
        assert_eq!(
            rest,
            pairs(&[("filter[level]", "A"), ("sort", "-created_at")])
        );
        let (params, _) = ExportParams::split(Vec::new()).expect("defaults");
        assert_eq!(
            (params.format, params.headers),
            (Format::Csv, HeaderStyle::Labels)
        );
    }

    #[test]
    fn unknown_formats_and_header_styles_say_what_there_is() {
        for bad in [("format", "pdf"), ("headers", "names")] {
            let err = ExportParams::split(pairs(&[bad])).expect_err("refused");
            assert_eq!(err.code(), "validation.failed");
            assert!(err.to_string().contains(bad.0), "{err}");
        }
    }
}
