//! Builds the web app (`admin-ui/`) into `admin-ui/dist` when it is missing or older than its
//! sources and npm is present, then lists `dist` for `src/webapp.rs` to embed
//! (`$OUT_DIR/webapp_assets.rs`). Without npm the server is still built: cargo warns how to
//! build the app, and the server answers `/` with a page saying the same.
//! `CRM_SKIP_UI_BUILD=1` never runs npm (it embeds whatever `dist` holds).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;
use std::{env, fs};

/// What the app's build reads: a change to any of these makes `dist` stale.
const SOURCES: &[&str] = &[
    "src",
    "graphiql",
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
];

fn main() {
    let ui = PathBuf::from("admin-ui");
    for source in SOURCES {
        println!("cargo:rerun-if-changed=admin-ui/{source}");
    }
    println!("cargo:rerun-if-changed=admin-ui/dist");
    println!("cargo:rerun-if-env-changed=CRM_SKIP_UI_BUILD");

    let dist = ui.join("dist");
    let built = newest(&dist.join("index.html"));
    let sources = SOURCES.iter().filter_map(|s| newest(&ui.join(s))).max();
    let stale = match (built, sources) {
        (None, _) => true,
        (Some(built), Some(sources)) => sources > built,
        (Some(_), None) => false,
    };
    if stale && env::var_os("CRM_SKIP_UI_BUILD").is_none() {
        if npm_present() {
            build_ui(&ui);
        } else {
            println!(
                "cargo:warning=the web app (admin-ui/dist) is {}: install Node.js 20+ with npm, \
                 then run `npm ci && npm run build` in admin-ui/ (or just `cargo build` again); \
                 until then the server answers / with a page saying so",
                if built.is_some() {
                    "older than its sources"
                } else {
                    "not built"
                }
            );
        }
    }
    write_asset_table(&dist);
}

fn npm_present() -> bool {
    Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn build_ui(ui: &Path) {
    // npm ci writes node_modules/.package-lock.json: a lock file newer than that changed since.
    let installed = newest(&ui.join("node_modules/.package-lock.json"));
    let lock = newest(&ui.join("package-lock.json"));
    if installed.is_none() || lock > installed {
        run(ui, &["ci", "--no-audit", "--no-fund"]);
    }
    run(ui, &["run", "build"]);
}

fn run(ui: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(ui).status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "`npm {}` in admin-ui failed ({other:?}); fix the web app, or set CRM_SKIP_UI_BUILD=1 \
             to build the server with the app as it is",
            args.join(" ")
        ),
    }
}

/// The newest modification time of a file, or of any file under a directory.
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// `$OUT_DIR/webapp_assets.rs`: `ASSETS`, every file of `dist` as (URL path, bytes), empty
/// when the app is not built.
fn write_asset_table(dist: &Path) {
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(dist, dist, &mut files);
    }
    files.sort();
    let mut out = String::from("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (url, path) in &files {
        let _ = writeln!(out, "    ({url:?}, include_bytes!({path:?})),");
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("webapp_assets.rs");
    if fs::read_to_string(&target).ok().as_deref() != Some(out.as_str()) {
        fs::write(&target, out).expect("write webapp_assets.rs");
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            let absolute = fs::canonicalize(&path).unwrap_or(path);
            files.push((url, absolute.to_string_lossy().into_owned()));
        }
    }
}
