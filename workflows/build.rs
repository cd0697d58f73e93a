//! Builds `crm-rules-sandbox` (workflows/sandbox, its own Cargo workspace) so that building the
//! server builds the rhai sandbox too, and tells the crate where the binary is
//! (`CRM_RULES_SANDBOX`).
//!
//! The sandbox cannot be a normal dependency: Cargo would unify its rhai with casbin's, whose
//! features compile out every rhai limit (DESIGN.md §6). So this script runs a second cargo on
//! the sandbox's manifest, always in release mode (limits are measured in wall time), with a
//! target directory of its own: the outer cargo holds the lock of its profile directory while
//! build scripts run, so sharing it would deadlock. The directory sits beside the outer profile
//! directories (`<target>/crm-rules-sandbox`), so debug, release and clippy builds share one
//! sandbox build, and `cargo clean` removes it.
//!
//! Setting `CRM_RULES_SANDBOX` at build time skips the nested build and uses that binary.

use std::env;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let sandbox = manifest_dir.join("sandbox");
    for watched in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", sandbox.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CRM_RULES_SANDBOX");

    if let Some(prebuilt) = env::var_os("CRM_RULES_SANDBOX").filter(|p| !p.is_empty()) {
        println!(
            "cargo:rustc-env=CRM_RULES_SANDBOX={}",
            Path::new(&prebuilt).display()
        );
        return;
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = sandbox_target_dir(&out_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));

    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--locked",
            "--bin",
            "crm-rules-sandbox",
        ])
        .arg("--manifest-path")
        .arg(sandbox.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // cargo reads build-script stdout for directives; the nested cargo's goes to stderr,
        // which cargo shows when the build fails.
        .stdout(Stdio::from(io::stderr()));
    // What the outer cargo sets for its own compilation must not leak into the nested one:
    // its RUSTFLAGS for this target, clippy's wrapper (`cargo clippy` runs build scripts too),
    // and a cross-compilation target (the sandbox runs on the build host, next to the server).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    for (key, _) in env::vars_os() {
        if key.to_string_lossy().starts_with("__CARGO") {
            build.env_remove(key);
        }
    }

    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the rule sandbox: {e}"));
    if !status.success() {
        panic!(
            "building the rule sandbox (workflows/sandbox) failed ({status}); its output is above"
        );
    }
    let binary = target_dir.join("release").join("crm-rules-sandbox");
    assert!(
        binary.is_file(),
        "the sandbox build did not produce {}",
        binary.display()
    );
    println!("cargo:rustc-env=CRM_RULES_SANDBOX={}", binary.display());
}

/// `<target>/crm-rules-sandbox`, found from OUT_DIR (`<target>/<profile>/build/<pkg>/out`).
fn sandbox_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "build"))
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|target| target.join("crm-rules-sandbox"))
        .unwrap_or_else(|| out_dir.join("crm-rules-sandbox"))
}
