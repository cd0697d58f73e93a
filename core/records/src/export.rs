//! CSV export of an object's records: the list's filters and sort, the caller's scope and
//! masking, every built-in and custom field as a column (named as the API names it), UTF-8
//! with a BOM so spreadsheet programs read Chinese text correctly.

use super::engine::Access;
use super::query::{self, ListQuery};
use super::schema::ObjectSchema;
use crm_core::context::MAX_PAGE;
use crm_core::error::{Error, Result};
use serde_json::Value;

/// Most records one export writes; more is refused with what to do.
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// The records matching `lq` (all pages) as CSV, and the ids of the records it holds.
pub async fn csv(
    tx: &mut crm_core::db::TenantTx,
    schema: &ObjectSchema,
    access: &Access<'_>,
    mut lq: ListQuery,
) -> Result<(String, Vec<uuid::Uuid>)> {
    access.require(schema.object, crate::RecordAction::Read)?;
    access.require_permission(schema.object.export_permission())?;
    let fields: Vec<(String, bool, String)> = schema
        .all()
        .map(|f| (f.path(), f.nested, f.key.to_owned()))
        .collect();
    let mut out = String::from("\u{feff}");
    let mut header = vec!["id".to_owned()];
    header.extend(fields.iter().map(|(path, _, _)| path.clone()));
    header.extend(["owner_id", "created_at", "updated_at"].map(str::to_owned));
    push_row(&mut out, header.iter().map(String::as_str));
    lq.limit = MAX_PAGE;
    lq.cursor = None;
    let mut ids: Vec<uuid::Uuid> = Vec::new();
    loop {
        let page = query::list(tx, schema, access, &lq).await?;
        ids.extend(record_ids(&page.items));
        if ids.len() > MAX_EXPORT_ROWS {
            return Err(Error::bad_request(
                "export.too_large",
                format!(
                    "more than {MAX_EXPORT_ROWS} records match; narrow the filters and export in parts"
                ),
            ));
        }
        for record in &page.items {
            let mut cells = vec![cell(&record["id"])];
            for (_, nested, key) in &fields {
                let value = if *nested {
                    &record["custom"][key.as_str()]
                } else {
                    &record[key.as_str()]
                };
                cells.push(cell(value));
            }
            for key in ["owner_id", "created_at", "updated_at"] {
                cells.push(cell(&record[key]));
            }
            push_row(&mut out, cells.iter().map(String::as_str));
        }
        match page.next_cursor {
            Some(next) => lq.cursor = Some(next),
            None => break,
        }
    }
    Ok((out, ids))
}

/// The ids of records as the engine returns them (for the read limit and its log).
pub fn record_ids(records: &[Value]) -> Vec<uuid::Uuid> {
    records
        .iter()
        .filter_map(|r| r["id"].as_str().and_then(|id| id.parse().ok()))
        .collect()
}

/// A value as CSV text: strings as they are, lists joined with `; `, objects (addresses) as
/// their parts joined with spaces, null as empty.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join("; "),
        Value::Object(parts) => {
            // Addresses read from the largest part down, as they are written in Chinese.
            let order = [
                "country", "province", "city", "district", "street", "postcode",
            ];
            let known = order.iter().filter_map(|k| parts.get(*k));
            let rest = parts
                .iter()
                .filter(|(k, _)| !order.contains(&k.as_str()))
                .map(|(_, v)| v);
            known
                .chain(rest)
                .map(cell)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        }
        other => other.to_string(),
    }
}

/// Appends one CSV line (RFC 4180 quoting). A cell a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, tab, CR at the start) gets a leading `'`, so exported data cannot
/// attack whoever opens the file.
fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guarded;
        let c = if c.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            guarded = format!("'{c}");
            guarded.as_str()
        } else {
            c
        };
        if c.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(c);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        push_row(
            &mut out,
            [
                "张伟",
                "a,b",
                "say \"hi\"",
                "=HYPERLINK(\"x\")",
                "-1",
                "line\nbreak",
            ]
            .into_iter(),
        );
        assert_eq!(
            out,
            "张伟,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",'-1,\"line\nbreak\"\r\n"
        );
    }

    #[test]
    fn values_become_text() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!(["VIP", "华东"])), "VIP; 华东");
        assert_eq!(cell(&json!(12.5)), "12.5");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(
            cell(
                &json!({"street": "中关村大街1号", "city": null, "district": "海淀区", "province": "北京市"})
            ),
            "北京市 海淀区 中关村大街1号"
        );
    }
}
