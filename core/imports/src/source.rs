//! The uploaded file, read once and written out as one normalised CSV: UTF-8, comma
//! separated, a header row, then one line per non-blank data row whose first cell is the
//! row's number in the original file (so error reports name the row the user sees). Reading
//! streams: a CSV is decoded as it is read and rows are written as they come, so memory
//! stays flat whatever the file's size (an Excel sheet is read whole by calamine).
//!
//! Detected, never asked: the format by the file's first bytes (XLSX is a zip, XLS an OLE
//! compound file, anything else CSV); a CSV's encoding (a UTF-8 or UTF-16 byte-order mark,
//! else UTF-8 when the first 64 KiB are valid UTF-8, else GB18030, the superset of GBK that
//! Chinese Excel writes) and its separator (`,` `;` or tab, whichever splits the first lines
//! most consistently).

use calamine::{Data, Reader};
use crm_core::error::{Error, Result};
use encoding_rs::{Encoding, GB18030, UTF_16BE, UTF_16LE, UTF_8};
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Rows kept for a preview.
pub const SAMPLE_ROWS: usize = 10;
/// Most columns a file may have.
pub const MAX_COLUMNS: usize = 500;

/// What kind of file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Xls,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Xls => "xls",
        }
    }

    /// By the first bytes: a zip is XLSX, an OLE compound document XLS, anything else CSV.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(b"PK\x03\x04") {
            Format::Xlsx
        } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            Format::Xls
        } else {
            Format::Csv
        }
    }
}

/// What reading the file found.
#[derive(Debug, Clone, Serialize)]
pub struct Normalised {
    pub format: Format,
    /// `UTF-8`, `UTF-8 with BOM`, `UTF-16LE`, `GB18030`; `xlsx`/`xls` for Excel files.
    pub encoding: String,
    /// The CSV's separator (`,` `;` `\t`); `None` for Excel files.
    pub separator: Option<String>,
    pub headers: Vec<String>,
    /// Non-blank data rows.
    pub rows: u64,
    /// The first rows' cells, as many as the headers.
    pub sample: Vec<Vec<String>>,
    /// Where the first data row starts in the normalised file.
    pub data_offset: u64,
    /// The normalised file's size.
    pub bytes: u64,
}

fn unreadable(what: impl std::fmt::Display) -> Error {
    Error::bad_request(
        "import.unreadable",
        format!("the file cannot be read: {what}; send a CSV (UTF-8 or GBK) or an Excel file (.xlsx, .xls)"),
    )
}

fn io_failed(e: std::io::Error) -> Error {
    Error::internal(format!("writing the normalised import file: {e}"))
}

/// Reads `input` and writes its normalised CSV to `output`. Blocking: run it off the async
/// threads.
pub fn normalise(input: &Path, output: &Path) -> Result<Normalised> {
    let mut file = File::open(input).map_err(unreadable)?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(unreadable)?;
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let out = File::create(output).map_err(io_failed)?;
    let mut writer = Writer::new(out);
    let mut found = match Format::sniff(&head[..n]) {
        Format::Csv => read_csv(file, &mut writer)?,
        format => read_excel(file, format, &mut writer)?,
    };
    found.bytes = writer.finish()?;
    found.data_offset = writer.data_offset;
    if found.headers.iter().all(String::is_empty) {
        return Err(Error::bad_request(
            "import.empty",
            "the file has no header row: its first row must name the columns",
        ));
    }
    Ok(found)
}

/// A writer that counts what passes through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the normalised CSV, counting bytes.
struct Writer {
    csv: csv::Writer<Counting<BufWriter<File>>>,
    width: usize,
    rows: u64,
    sample: Vec<Vec<String>>,
    headers: Vec<String>,
    data_offset: u64,
}

impl Writer {
    fn new(out: File) -> Writer {
        Writer {
            csv: csv::WriterBuilder::new()
                .flexible(false)
                .from_writer(Counting {
                    inner: BufWriter::with_capacity(1 << 16, out),
                    bytes: 0,
                }),
            width: 0,
            rows: 0,
            sample: Vec::new(),
            headers: Vec::new(),
            data_offset: 0,
        }
    }

    fn header(&mut self, raw: Vec<String>) -> Result<()> {
        if raw.len() > MAX_COLUMNS {
            return Err(Error::bad_request(
                "import.too_many_columns",
                format!(
                    "the file has {} columns; at most {MAX_COLUMNS} can be imported",
                    raw.len()
                ),
            ));
        }
        let mut headers: Vec<String> = Vec::with_capacity(raw.len());
        for (i, h) in raw.into_iter().enumerate() {
            let mut name = h.trim().trim_start_matches('\u{feff}').trim().to_owned();
            if name.is_empty() {
                name = format!("Column {}", i + 1);
            }
            let base = name.clone();
            let mut n = 2;
            while headers.contains(&name) {
                name = format!("{base} ({n})");
                n += 1;
            }
            headers.push(name);
        }
        // Trailing columns without a name or a value are spreadsheet noise.
        self.width = headers.len();
        let mut record = vec!["#".to_owned()];
        record.extend(headers.iter().cloned());
        self.csv.write_record(&record).map_err(csv_failed)?;
        self.csv.flush().map_err(io_failed)?;
        self.data_offset = self.position()?;
        self.headers = headers;
        Ok(())
    }

    fn row(&mut self, number: u64, mut cells: Vec<String>) -> Result<()> {
        cells.resize(self.width, String::new());
        if cells.iter().all(|c| c.trim().is_empty()) {
            return Ok(());
        }
        self.rows += 1;
        if self.sample.len() < SAMPLE_ROWS {
            self.sample.push(cells.clone());
        }
        let mut record = Vec::with_capacity(cells.len() + 1);
        record.push(number.to_string());
        record.extend(cells);
        self.csv.write_record(&record).map_err(csv_failed)
    }

    fn position(&mut self) -> Result<u64> {
        self.csv.flush().map_err(io_failed)?;
        Ok(self.csv.get_ref().bytes)
    }

    fn finish(&mut self) -> Result<u64> {
        self.csv.flush().map_err(io_failed)?;
        self.position()
    }
}

fn csv_failed(e: csv::Error) -> Error {
    Error::internal(format!("writing the normalised import file: {e}"))
}

/// The encoding of a CSV from its first bytes.
fn detect_encoding(sample: &[u8]) -> (&'static Encoding, usize) {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return (UTF_8, 3);
    }
    if sample.starts_with(&[0xFF, 0xFE]) {
        return (UTF_16LE, 2);
    }
    if sample.starts_with(&[0xFE, 0xFF]) {
        return (UTF_16BE, 2);
    }
    match std::str::from_utf8(sample) {
        Ok(_) => (UTF_8, 0),
        // Cut off in the middle of a character at the end of the sample: still UTF-8.
        Err(e) if e.error_len().is_none() => (UTF_8, 0),
        Err(_) => (GB18030, 0),
    }
}

/// The separator that splits the first lines into the same, largest number of cells.
fn detect_separator(text: &str) -> u8 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let count = |line: &str, sep: char| {
        let mut quoted = false;
        line.chars()
            .filter(|c| {
                if *c == '"' {
                    quoted = !quoted;
                }
                !quoted && *c == sep
            })
            .count()
    };
    let mut best = (b',', 0usize, 0usize);
    for sep in [',', ';', '\t'] {
        let Some(first) = lines.first() else {
            break;
        };
        let n = count(first, sep);
        if n == 0 {
            continue;
        }
        let agree = lines.iter().filter(|l| count(l, sep) == n).count();
        if (agree, n) > (best.2, best.1) {
            best = (sep as u8, n, agree);
        }
    }
    best.0
}

fn read_csv(mut file: File, writer: &mut Writer) -> Result<Normalised> {
    let mut sample = vec![0u8; 64 * 1024];
    let n = read_full(&mut file, &mut sample).map_err(unreadable)?;
    sample.truncate(n);
    let (encoding, bom) = detect_encoding(&sample);
    let (text, _, _) = encoding.decode(&sample[bom..]);
    let separator = detect_separator(&text);
    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 16, file));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(separator)
        .from_reader(decoded);
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(unreadable(format!("near line {line}: {e}"))),
        }
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        if first {
            first = false;
            writer.header(cells)?;
        } else {
            writer.row(line, cells)?;
        }
    }
    Ok(Normalised {
        format: Format::Csv,
        encoding: if encoding == UTF_8 && bom > 0 {
            "UTF-8 with BOM".to_owned()
        } else {
            encoding.name().to_uppercase()
        },
        separator: Some(match separator {
            b'\t' => "\t".to_owned(),
            s => (s as char).to_string(),
        }),
        headers: writer.headers.clone(),
        rows: writer.rows,
        sample: writer.sample.clone(),
        data_offset: 0,
        bytes: 0,
    })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn read_excel(file: File, format: Format, writer: &mut Writer) -> Result<Normalised> {
    let reader = BufReader::new(file);
    let range = match format {
        Format::Xlsx => {
            let mut book = calamine::Xlsx::new(reader).map_err(unreadable)?;
            first_sheet(&mut book)?
        }
        _ => {
            let mut book = calamine::Xls::new(reader).map_err(unreadable)?;
            first_sheet(&mut book)?
        }
    };
    let start_row = range.start().map_or(0, |(r, _)| u64::from(r));
    let mut first = true;
    for (i, row) in range.rows().enumerate() {
        let cells: Vec<String> = row.iter().map(cell_text).collect();
        if first {
            first = false;
            writer.header(cells)?;
        } else {
            writer.row(start_row + i as u64 + 1, cells)?;
        }
    }
    Ok(Normalised {
        format,
        encoding: format.as_str().to_owned(),
        separator: None,
        headers: writer.headers.clone(),
        rows: writer.rows,
        sample: writer.sample.clone(),
        data_offset: 0,
        bytes: 0,
    })
}

fn first_sheet<R, B>(book: &mut B) -> Result<calamine::Range<Data>>
where
    R: Read + Seek,
    B: Reader<R>,
    B::Error: std::fmt::Display,
{
    match book.worksheet_range_at(0) {
        Some(Ok(range)) => Ok(range),
        Some(Err(e)) => Err(unreadable(e)),
        None => Err(Error::bad_request(
            "import.empty",
            "the workbook has no worksheet; its first sheet is imported",
        )),
    }
}

/// A cell as the text a user typed: whole numbers without `.0` (phone numbers are often
/// stored as numbers), dates as `2025-03-31` or `2025-03-31 09:30:00`.
fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty | Data::Error(_) => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                f.to_string()
            }
        }
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => match d.as_datetime() {
            Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.format("%Y-%m-%d").to_string(),
            Some(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => d.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_and_separators_are_detected() {
        assert_eq!(detect_encoding(b"\xEF\xBB\xBFname").0, UTF_8);
        assert_eq!(detect_encoding("名称,电话".as_bytes()).0, UTF_8);
        let (gbk, _, _) = GB18030.encode("名称,电话");
        assert_eq!(detect_encoding(&gbk).0, GB18030);
        // A sample cut inside a three-byte character is still UTF-8.
        let cut = &"名称".as_bytes()[..4];
        assert_eq!(detect_encoding(cut).0, UTF_8);
        assert_eq!(detect_separator("a;b;c\n1;2;3\n"), b';');
        assert_eq!(detect_separator("a\tb\n1\t2\n"), b'\t');
        assert_eq!(detect_separator("a,b\n\"x;y\",2\n"), b',');
        assert_eq!(detect_separator("name\nWang\n"), b',');
    }

    #[test]
    fn a_gbk_csv_is_normalised_with_row_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.csv");
        let output = dir.path().join("out.csv");
        let (bytes, _, _) =
            GB18030.encode("客户名称;手机\n王磊;13800138000\n\n;\n李娜;\"139 0013 9000\"\n");
        std::fs::write(&input, &bytes).expect("write");
        let found = normalise(&input, &output).expect("normalised");
        assert_eq!(found.encoding, "GB18030");
        assert_eq!(found.separator.as_deref(), Some(";"));
        assert_eq!(found.headers, vec!["客户名称", "手机"]);
        assert_eq!(found.rows, 2);
        let text = std::fs::read_to_string(&output).expect("read");
        assert_eq!(
            text,
            "#,客户名称,手机\n2,王磊,13800138000\n5,李娜,139 0013 9000\n"
        );
        assert_eq!(found.data_offset, "#,客户名称,手机\n".len() as u64);
        assert_eq!(found.bytes, text.len() as u64);
    }
}
