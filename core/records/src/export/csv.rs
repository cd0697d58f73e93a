//! CSV: UTF-8 with a BOM (so spreadsheet programs read Chinese text correctly), RFC 4180
//! quoting, formulas defused. Streamed: the header row leaves at once, then each page of
//! records is read in a transaction of its own and written out, so an export of any size
//! holds one page in memory and no connection between pages.

use super::{next_page, Exporter};
use crate::query::ListQuery;
use crm_core::db::{Db, TenantCtx};
use futures::Stream;
use serde_json::Value;
use std::sync::Arc;

/// A CSV export still to be read: the header, then one chunk per page.
pub struct CsvStream {
    db: Db,
    tenant: TenantCtx,
    ex: Arc<Exporter>,
    lq: ListQuery,
}

/// Where a [`CsvStream`] is.
struct State {
    stream: CsvStream,
    header_sent: bool,
    done: bool,
}

impl CsvStream {
    pub(crate) fn new(db: Db, tenant: TenantCtx, ex: Arc<Exporter>, mut lq: ListQuery) -> Self {
        lq.cursor = None;
        CsvStream { db, tenant, ex, lq }
    }

    /// The file's bytes, chunk by chunk. A failure after the first chunk can only cut the
    /// download short (the status has left): it is logged and ends the body with an error,
    /// so the client sees an incomplete transfer, never a short file that looks whole.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
        let state = State {
            stream: self,
            header_sent: false,
            done: false,
        };
        futures::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            if !state.header_sent {
                state.header_sent = true;
                let mut out = String::from("\u{feff}");
                push_row(&mut out, state.stream.ex.columns.header());
                return Some((Ok(out.into_bytes()), Some(state)));
            }
            match state.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(state))),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        })
    }
}

impl State {
    /// The next page as CSV lines, read in a transaction of its own.
    async fn next_chunk(&mut self) -> crm_core::error::Result<Option<Vec<u8>>> {
        let s = &mut self.stream;
        let mut tx = s.db.tenant_tx(&s.tenant).await?;
        let page = next_page(&mut tx, &s.ex, &mut s.lq, &mut self.done).await?;
        tx.commit().await?;
        let Some(records) = page else {
            return Ok(None);
        };
        let mut out = String::with_capacity(records.len() * 128);
        for record in &records {
            write_record(&mut out, &s.ex, record);
        }
        Ok(Some(out.into_bytes()))
    }
}

/// Appends one record's line.
fn write_record(out: &mut String, ex: &Exporter, record: &Value) {
    let cells: Vec<String> = ex
        .columns
        .items
        .iter()
        .map(|c| cell(c.value_in(record)))
        .collect();
    push_row(out, cells.iter().map(String::as_str));
}

/// A value as CSV text: strings as they are, lists joined with `; `, objects (addresses) as
/// their parts joined with spaces, null as empty.
pub(crate) fn cell(value: &Value) -> String {
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
pub(crate) fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
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
