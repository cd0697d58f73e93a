//! What an import tells people: each refused or skipped row as error lines naming the
//! column, the value and what to do (from the engine's own field errors), the changes an
//! update made (kept for undo), the audit entry of a finished import, and the error report
//! as CSV (UTF-8 with a BOM, for Excel) or XLSX.

use crate::mapping::Plan;
use crate::run::Row;
use crate::store::{Import, Progress, RowError};
use crm_core::audit::Actor;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use serde_json::{json, Map, Value};

/// The error lines of a row the engine (or the import) refused.
pub fn lines_of(plan: &Plan, headers: &[String], row: &Row, e: &Error) -> Vec<RowError> {
    let line = |seq: usize, field: Option<String>, code: &str, message: String| {
        let column = field.as_deref().and_then(|f| column_for(plan, f));
        RowError {
            row_no: row.number,
            seq: seq as i32,
            kind: "failed".into(),
            column_name: column.and_then(|i| headers.get(i)).cloned(),
            value: column.and_then(|i| row.cells.get(i)).cloned(),
            field,
            code: code.to_owned(),
            message,
            cells: (seq == 0).then(|| row.cells.clone()),
        }
    };
    match e {
        Error::Invalid { fields, .. } if !fields.is_empty() => fields
            .iter()
            .enumerate()
            .map(|(seq, f)| line(seq, Some(f.field.clone()), f.code, f.message.clone()))
            .collect(),
        other => vec![line(0, None, other.code(), other.to_string())],
    }
}

/// The column that filled a field an error names (`address.city`, `custom.birthday`, or the
/// field of an error about one of its parts).
fn column_for(plan: &Plan, field: &str) -> Option<usize> {
    plan.column_of(field).or_else(|| {
        let (base, _) = field.rsplit_once('.')?;
        plan.column_of(base)
    })
}

/// A record's value at a path (`name`, `custom.birthday`).
fn at<'v>(record: &'v Value, path: &str) -> &'v Value {
    match path.split_once('.') {
        Some(("custom", key)) => &record["custom"][key],
        _ => &record[path],
    }
}

/// `{path: {"before": …, "after": …}}` for the fields `body` set whose value changed.
pub fn changes(body: &Value, before: &Value, after: &Value) -> Value {
    let mut paths: Vec<String> = Vec::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            if k == "custom" {
                if let Some(custom) = v.as_object() {
                    paths.extend(custom.keys().map(|c| format!("custom.{c}")));
                }
            } else {
                paths.push(k.clone());
            }
        }
    }
    let mut out = Map::new();
    for path in paths {
        let (b, a) = (at(before, &path), at(after, &path));
        if !crm_records::bulk::same(a, b) {
            out.insert(path, json!({ "before": b, "after": a }));
        }
    }
    Value::Object(out)
}

/// `import.finished` in the audit log: what was imported and how it went.
pub async fn audit_done(
    tx: &mut TenantTx,
    import: &Import,
    actor: &Actor,
    last: &Progress,
) -> Result<()> {
    crm_core::audit::record(
        tx,
        actor,
        "import.finished",
        Some(("import", import.id.to_string())),
        json!({
            "object": import.object,
            "file": import.file_name,
            "dry_run": import.options.0.dry_run,
            "total": import.total,
            "created": import.created + last.created,
            "updated": import.updated + last.updated,
            "skipped": import.skipped + last.skipped,
            "failed": import.failed + last.failed,
        }),
    )
    .await
}

/// The report's columns, in the caller's language.
pub fn report_headers(zh: bool, headers: &[String]) -> Vec<String> {
    let fixed: [&str; 7] = if zh {
        ["行号", "结果", "列", "值", "字段", "代码", "说明"]
    } else {
        [
            "Row", "Outcome", "Column", "Value", "Field", "Code", "Message",
        ]
    };
    let mut out: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
    out.extend(headers.iter().cloned());
    out
}

fn outcome_label(kind: &str, zh: bool) -> &str {
    match (kind, zh) {
        ("failed", true) => "失败",
        ("skipped", true) => "跳过",
        ("undo", true) => "撤销未执行",
        ("undo", false) => "not undone",
        (k, _) => k,
    }
}

/// One report line's cells, `width` of the row's own (empty where a line carries none).
pub fn report_cells(e: &RowError, zh: bool, width: usize) -> Vec<String> {
    let mut out = vec![
        e.row_no.to_string(),
        outcome_label(&e.kind, zh).to_owned(),
        e.column_name.clone().unwrap_or_default(),
        e.value.clone().unwrap_or_default(),
        e.field.clone().unwrap_or_default(),
        e.code.clone(),
        e.message.clone(),
    ];
    let mut cells = e.cells.clone().unwrap_or_default();
    cells.resize(width, String::new());
    out.extend(cells);
    out
}

/// The report as CSV: a BOM (so Excel reads Chinese), a header line, one line per error.
pub fn csv_report(headers: &[String], lines: &[RowError], zh: bool) -> Result<Vec<u8>> {
    let mut out = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let failed = |e: csv::Error| Error::internal(format!("writing the error report: {e}"));
    out.write_record(report_headers(zh, headers))
        .map_err(failed)?;
    for line in lines {
        out.write_record(report_cells(line, zh, headers.len()))
            .map_err(failed)?;
    }
    out.into_inner()
        .map_err(|e| Error::internal(format!("writing the error report: {e}")))
}

/// The report as an XLSX workbook.
pub fn xlsx_report(headers: &[String], lines: &[RowError], zh: bool) -> Result<Vec<u8>> {
    let failed =
        |e: rust_xlsxwriter::XlsxError| Error::internal(format!("writing the error report: {e}"));
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (c, h) in report_headers(zh, headers).iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, h, &bold)
            .map_err(failed)?;
    }
    for (r, line) in lines.iter().enumerate() {
        let row = (r + 1) as u32;
        for (c, cell) in report_cells(line, zh, headers.len()).iter().enumerate() {
            if c == 0 {
                sheet
                    .write_number(row, 0, line.row_no as f64)
                    .map_err(failed)?;
            } else {
                sheet.write_string(row, c as u16, cell).map_err(failed)?;
            }
        }
    }
    book.save_to_buffer().map_err(failed)
}
