//! XLSX: one sheet, a bold frozen header row, then a row per record: numbers and booleans as
//! such (so a spreadsheet can sum them), everything else as text (never as a formula).
//! Written by rust_xlsxwriter in constant-memory mode on a blocking thread, which receives
//! the pages as they are read, so a large file costs one page of records in memory.

use super::csv::cell;
use super::{next_page, record_ids, Columns, Exporter};
use crate::query::ListQuery;
use crm_core::db::TenantTx;
use crm_core::error::{Error, Result};
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The MIME type of an XLSX file.
pub const CONTENT_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The longest text a cell holds (Excel's limit); longer values are cut there.
const MAX_CELL_CHARS: usize = 32_767;

/// Pages read ahead of the writer.
const PAGES_AHEAD: usize = 2;

/// Reads every record `lq` selects and writes them as an XLSX file; returns its bytes and the
/// ids of the records in it.
pub(crate) async fn write(
    tx: &mut TenantTx,
    ex: &Exporter,
    mut lq: ListQuery,
) -> Result<(Vec<u8>, Vec<Uuid>)> {
    let columns = ex.columns.clone();
    let (pages, received) = mpsc::channel::<Vec<Value>>(PAGES_AHEAD);
    let writer = tokio::task::spawn_blocking(move || build(&columns, received));
    lq.cursor = None;
    let (mut ids, mut done) = (Vec::new(), false);
    while let Some(page) = next_page(tx, ex, &mut lq, &mut done).await? {
        ids.extend(record_ids(&page));
        if pages.send(page).await.is_err() {
            // The writer stopped: its error comes out below.
            break;
        }
    }
    drop(pages);
    let bytes = writer
        .await
        .map_err(|e| Error::internal(format!("the XLSX writer stopped: {e}")))??;
    Ok((bytes, ids))
}

/// Writes the header and then each page received until the sender is dropped.
fn build(columns: &Columns, mut pages: mpsc::Receiver<Vec<Value>>) -> Result<Vec<u8>> {
    let failed = |e: XlsxError| Error::internal(format!("writing the XLSX file failed: {e}"));
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet_with_constant_memory().map_err(failed)?;
    // Column widths and panes belong before the first row in constant-memory mode.
    for (c, column) in columns.items.iter().enumerate() {
        let c = u16::try_from(c).map_err(|_| Error::internal("too many columns for XLSX"))?;
        let wide = column
            .header
            .chars()
            .map(|ch| if ch.is_ascii() { 1.0 } else { 2.0 });
        let width: f64 = wide.sum::<f64>().clamp(10.0, 40.0) + 2.0;
        sheet.set_column_width(c, width).map_err(failed)?;
    }
    sheet.set_freeze_panes(1, 0).map_err(failed)?;
    for (c, column) in columns.items.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, &column.header, &bold)
            .map_err(failed)?;
    }
    let mut row: u32 = 1;
    while let Some(page) = pages.blocking_recv() {
        for record in &page {
            for (c, column) in columns.items.iter().enumerate() {
                let c = c as u16;
                match column.value_in(record) {
                    Value::Null => {}
                    Value::Bool(b) => {
                        sheet.write_boolean(row, c, *b).map_err(failed)?;
                    }
                    Value::Number(n) => match n.as_f64() {
                        Some(f) => {
                            sheet.write_number(row, c, f).map_err(failed)?;
                        }
                        None => {
                            sheet.write_string(row, c, n.to_string()).map_err(failed)?;
                        }
                    },
                    other => {
                        let text: String = cell(other).chars().take(MAX_CELL_CHARS).collect();
                        sheet.write_string(row, c, text).map_err(failed)?;
                    }
                }
            }
            row += 1;
        }
    }
    book.save_to_buffer().map_err(failed)
}
