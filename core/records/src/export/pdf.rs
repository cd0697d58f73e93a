//! Printable PDF documents: a title, lines under it, then blocks (label/value pairs, tables,
//! headings, text) laid out on A4 pages with wrapping, page breaks (a table's header repeats)
//! and a footer with page numbers. Rendered by krilla with one CJK font loaded from
//! [`super::ExportSettings::pdf_font`] (read once, kept in memory) and embedded as a subset of
//! the glyphs used, so a page of Chinese text stays small. Without that font, rendering
//! refuses with 503 `export.pdf_font_missing`, saying what to install or configure.

use crm_core::error::{Error, Result};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document as PdfDocument;
use skrifa::instance::{LocationRef, Size};
use skrifa::raw::FileRef;
use skrifa::{FontRef, MetadataProvider};
use std::path::PathBuf;
use std::sync::Arc;

/// Debian's fonts-noto-cjk: Noto Sans CJK, all of Chinese, Japanese and Korean in one file.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 48.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Lowest baseline of content; the footer sits below it.
const BOTTOM: f32 = PAGE_H - MARGIN - 18.0;
const BODY: f32 = 10.0;
const SMALL: f32 = 8.5;
const LABEL_W: f32 = 140.0;
const CELL_PAD: f32 = 4.0;

/// A document to print.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub title: String,
    /// Lines under the title (what, when, for whom).
    pub subtitle: Vec<String>,
    pub blocks: Vec<Block>,
    /// Left part of every page's footer (the page number follows).
    pub footer: String,
    /// The document's language (`zh-CN`, `en`), for PDF readers and screen readers.
    pub language: String,
}

/// A part of a document, top to bottom.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(String),
    /// Label and value pairs, one row each.
    Fields(Vec<(String, String)>),
    /// A table: header cells, then rows of as many cells.
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Text(String),
}

/// The configured CJK font, read on first use.
pub struct PdfFont {
    path: PathBuf,
    index: Option<u32>,
    loaded: tokio::sync::OnceCell<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    data: Arc<Vec<u8>>,
    index: u32,
}

impl PdfFont {
    /// The font at `path` (face `index` of a collection; `None`: its Simplified Chinese face).
    pub fn new(path: PathBuf, index: Option<u32>) -> PdfFont {
        PdfFont {
            path,
            index,
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    async fn load(&self) -> Result<Loaded> {
        self.loaded
            .get_or_try_init(|| async {
                let data = tokio::fs::read(&self.path)
                    .await
                    .map_err(|e| font_missing(&self.path, &e.to_string()))?;
                let index = match self.index {
                    Some(i) => i,
                    None => chinese_face(&data),
                };
                if FontRef::from_index(&data, index).is_err() {
                    return Err(font_missing(&self.path, "not a font this server can read"));
                }
                Ok(Loaded {
                    data: Arc::new(data),
                    index,
                })
            })
            .await
            .cloned()
    }

    /// Renders `doc` as PDF bytes (on a blocking thread: subsetting a CJK font takes a while).
    pub async fn render(&self, doc: Document) -> Result<Vec<u8>> {
        let font = self.load().await?;
        tokio::task::spawn_blocking(move || render(&font, &doc))
            .await
            .map_err(|e| Error::internal(format!("PDF rendering stopped: {e}")))?
    }
}

fn font_missing(path: &std::path::Path, why: &str) -> Error {
    Error::bad_request(
        "export.pdf_font_missing",
        format!(
            "PDFs need a font with Chinese characters and {} cannot be used ({why}): install \
             Debian's fonts-noto-cjk, or set [export] pdf_font (CRM_EXPORT__PDF_FONT) to a \
             .ttf, .otf or .ttc file",
            path.display()
        ),
    )
}

/// The face of a collection named `… SC` (Simplified Chinese), else the first.
fn chinese_face(data: &[u8]) -> u32 {
    let count = match FileRef::new(data) {
        Ok(FileRef::Collection(c)) => c.len(),
        _ => 1,
    };
    (0..count)
        .find(|i| {
            FontRef::from_index(data, *i).is_ok_and(|f| {
                f.localized_strings(skrifa::string::StringId::FAMILY_NAME)
                    .english_or_first()
                    .is_some_and(|name| name.to_string().ends_with(" SC"))
            })
        })
        .unwrap_or(0)
}

/// Advance widths of the font, for wrapping.
struct Measure<'a> {
    font: FontRef<'a>,
    fallback: f32,
}

impl Measure<'_> {
    /// Width of `text` at `size` points.
    fn width(&self, text: &str, size: f32) -> f32 {
        let charmap = self.font.charmap();
        let metrics = self
            .font
            .glyph_metrics(Size::new(1.0), LocationRef::default());
        text.chars()
            .map(|c| {
                charmap
                    .map(c)
                    .and_then(|g| metrics.advance_width(g))
                    .unwrap_or(self.fallback)
            })
            .sum::<f32>()
            * size
    }

    /// `text` cut into lines no wider than `max`: at spaces where a line has them (Latin
    /// words stay whole), else between any two characters (Chinese has no spaces).
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for c in paragraph.chars() {
                line.push(c);
                if self.width(&line, size) <= max {
                    continue;
                }
                line.pop();
                let cut = line
                    .rfind(' ')
                    .filter(|i| *i > 0 && !c.is_whitespace() && line.is_char_boundary(*i));
                match cut {
                    Some(i) => {
                        let rest = line.split_off(i);
                        lines.push(std::mem::take(&mut line));
                        line = rest.trim_start().to_owned();
                    }
                    None if line.is_empty() => {}
                    None => lines.push(std::mem::take(&mut line)),
                }
                if !(line.is_empty() && c == ' ') {
                    line.push(c);
                }
            }
            lines.push(line);
        }
        lines
    }
}

/// What to draw, page by page (y grows downwards, text at its baseline).
#[derive(Debug, Clone)]
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        grey: bool,
        text: String,
    },
    Fill {
        rect: (f32, f32, f32, f32),
    },
    Rule {
        y: f32,
        x0: f32,
        x1: f32,
    },
}

/// Lays a document out on pages.
struct Layout<'a> {
    measure: &'a Measure<'a>,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Layout<'_> {
    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Starts a new page unless `height` more fits on this one; true when it did.
    fn room(&mut self, height: f32) -> bool {
        if self.y + height > BOTTOM && self.y > MARGIN + 1.0 {
            self.pages.push(Vec::new());
            self.y = MARGIN;
            return true;
        }
        false
    }

    fn text(&mut self, x: f32, y: f32, size: f32, grey: bool, text: &str) {
        if !text.is_empty() {
            self.ops().push(Op::Text {
                x,
                y,
                size,
                grey,
                text: text.to_owned(),
            });
        }
    }

    fn title(&mut self, doc: &Document) {
        let size = 17.0;
        for line in self.measure.wrap(&doc.title, size, CONTENT_W) {
            self.y += size * 1.3;
            self.text(MARGIN, self.y, size, false, &line);
        }
        for sub in &doc.subtitle {
            for line in self.measure.wrap(sub, SMALL + 0.5, CONTENT_W) {
                self.y += 13.0;
                self.text(MARGIN, self.y, SMALL + 0.5, true, &line);
            }
        }
        self.y += 8.0;
        let y = self.y;
        self.ops().push(Op::Rule {
            y,
            x0: MARGIN,
            x1: PAGE_W - MARGIN,
        });
        self.y += 6.0;
    }

    fn heading(&mut self, text: &str) {
        // A heading keeps at least two rows of what follows on its page.
        self.room(80.0);
        self.y += 22.0;
        self.text(MARGIN, self.y, 12.5, false, text);
        self.y += 6.0;
    }

    fn paragraph(&mut self, text: &str) {
        for line in self.measure.wrap(text, BODY, CONTENT_W) {
            self.room(BODY * 1.5);
            self.y += BODY * 1.5;
            self.text(MARGIN, self.y, BODY, false, &line);
        }
    }

    fn fields(&mut self, pairs: &[(String, String)]) {
        let value_w = CONTENT_W - LABEL_W;
        let line_h = BODY * 1.45;
        for (label, value) in pairs {
            let labels = self.measure.wrap(label, BODY, LABEL_W - 2.0 * CELL_PAD);
            let values = self.measure.wrap(value, BODY, value_w - 2.0 * CELL_PAD);
            let lines = labels.len().max(values.len()).max(1);
            let height = lines as f32 * line_h + 2.0 * CELL_PAD;
            self.room(height);
            let top = self.y;
            for (i, l) in labels.iter().enumerate() {
                let y = top + CELL_PAD + (i as f32 + 1.0) * line_h - 3.0;
                self.text(MARGIN + CELL_PAD, y, BODY, true, l);
            }
            for (i, v) in values.iter().enumerate() {
                let y = top + CELL_PAD + (i as f32 + 1.0) * line_h - 3.0;
                self.text(MARGIN + LABEL_W + CELL_PAD, y, BODY, false, v);
            }
            self.y = top + height;
            let y = self.y;
            self.ops().push(Op::Rule {
                y,
                x0: MARGIN,
                x1: PAGE_W - MARGIN,
            });
        }
    }

    fn table(&mut self, columns: &[String], rows: &[Vec<String>]) {
        // An empty table still says so under its header.
        let nothing = [vec!["—".to_owned()]];
        let rows = if rows.is_empty() { &nothing[..] } else { rows };
        let widths = self.column_widths(columns, rows);
        let size = SMALL + 0.5;
        // The header never stands alone at the foot of a page.
        let first = self.row_height(&widths, &rows[0], size);
        self.room(self.row_height(&widths, columns, size) + first);
        self.row(&widths, columns, size, true);
        for row in rows {
            let height = self.row_height(&widths, row, size);
            if self.room(height) {
                self.row(&widths, columns, size, true);
            }
            self.row(&widths, row, size, false);
        }
    }

    fn row_height(&self, widths: &[f32], cells: &[String], size: f32) -> f32 {
        let lines = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| self.measure.wrap(c, size, w - 2.0 * CELL_PAD).len())
            .max()
            .unwrap_or(1)
            .max(1);
        lines as f32 * size * 1.4 + 2.0 * CELL_PAD
    }

    fn row(&mut self, widths: &[f32], cells: &[String], size: f32, header: bool) {
        let height = self.row_height(widths, cells, size);
        let top = self.y;
        if header {
            self.ops().push(Op::Fill {
                rect: (MARGIN, top, CONTENT_W, height),
            });
        }
        let mut x = MARGIN;
        for (cell, w) in cells.iter().zip(widths) {
            for (i, line) in self
                .measure
                .wrap(cell, size, w - 2.0 * CELL_PAD)
                .iter()
                .enumerate()
            {
                let y = top + CELL_PAD + (i as f32 + 1.0) * size * 1.4 - 2.5;
                self.text(x + CELL_PAD, y, size, false, line);
            }
            x += w;
        }
        self.y = top + height;
        let y = self.y;
        self.ops().push(Op::Rule {
            y,
            x0: MARGIN,
            x1: PAGE_W - MARGIN,
        });
    }

    /// Each column as wide as its content asks (header included, long cells counted up to a
    /// point), scaled to the page's width.
    fn column_widths(&self, columns: &[String], rows: &[Vec<String>]) -> Vec<f32> {
        let size = SMALL + 0.5;
        let natural: Vec<f32> = (0..columns.len())
            .map(|i| {
                let cells = rows.iter().filter_map(|r| r.get(i));
                std::iter::once(&columns[i])
                    .chain(cells)
                    .map(|c| self.measure.width(c, size).min(220.0))
                    .fold(30.0_f32, f32::max)
                    + 2.0 * CELL_PAD
            })
            .collect();
        let total: f32 = natural.iter().sum();
        natural.iter().map(|w| w * CONTENT_W / total).collect()
    }
}

/// Lays out and draws `doc`.
fn render(font: &Loaded, doc: &Document) -> Result<Vec<u8>> {
    let face = FontRef::from_index(font.data.as_slice(), font.index)
        .map_err(|e| Error::internal(format!("the PDF font cannot be read: {e}")))?;
    let measure = Measure {
        font: face,
        fallback: 0.6,
    };
    let mut layout = Layout {
        measure: &measure,
        pages: vec![Vec::new()],
        y: MARGIN,
    };
    layout.title(doc);
    for block in &doc.blocks {
        match block {
            Block::Heading(text) => layout.heading(text),
            Block::Fields(pairs) => layout.fields(pairs),
            Block::Table { columns, rows } => layout.table(columns, rows),
            Block::Text(text) => layout.paragraph(text),
        }
    }
    let krilla_font = Font::new(font.data.clone().into(), font.index)
        .ok_or_else(|| Error::internal("krilla cannot read the PDF font"))?;
    let mut pdf = PdfDocument::new();
    pdf.set_metadata(
        Metadata::new()
            .title(doc.title.clone())
            .language(doc.language.clone())
            .creator("TC CRM".to_owned()),
    );
    let count = layout.pages.len();
    for (n, ops) in layout.pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| Error::internal("bad PDF page size"))?;
        let mut page = pdf.start_page_with(settings);
        let mut surface = page.surface();
        for op in ops {
            draw(&mut surface, &krilla_font, op);
        }
        let footer = format!("{}    {}/{}", doc.footer, n + 1, count);
        draw(
            &mut surface,
            &krilla_font,
            &Op::Text {
                x: MARGIN,
                y: PAGE_H - MARGIN + 6.0,
                size: 7.5,
                grey: true,
                text: footer,
            },
        );
        surface.finish();
        page.finish();
    }
    pdf.finish()
        .map_err(|e| Error::internal(format!("writing the PDF failed: {e:?}")))
}

fn paint(r: u8, g: u8, b: u8) -> Fill {
    Fill {
        paint: rgb::Color::new(r, g, b).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

fn draw(surface: &mut Surface<'_>, font: &Font, op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            size,
            grey,
            text,
        } => {
            surface.set_stroke(None);
            surface.set_fill(Some(if *grey {
                paint(96, 96, 96)
            } else {
                paint(20, 20, 20)
            }));
            surface.draw_text(
                Point::from_xy(*x, *y),
                font.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        Op::Fill { rect: (x, y, w, h) } => {
            let mut pb = PathBuilder::new();
            if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                pb.push_rect(rect);
            }
            if let Some(path) = pb.finish() {
                surface.set_stroke(None);
                surface.set_fill(Some(paint(236, 238, 242)));
                surface.draw_path(&path);
            }
        }
        Op::Rule { y, x0, x1 } => {
            let mut pb = PathBuilder::new();
            pb.move_to(*x0, *y);
            pb.line_to(*x1, *y);
            if let Some(path) = pb.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: rgb::Color::new(210, 212, 218).into(),
                    width: 0.6,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
            }
        }
    }
}
