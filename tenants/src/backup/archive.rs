//! The archive file: a tar stream compressed with zstd, `manifest.json` first, then one entry
//! per table (`data/<n>.copy`) and per stored file (`files/<n>`). Written from and read into a
//! working directory, entry by entry, so memory stays bounded whatever the tenant's size.
//!
//! Reading checks every entry against the manifest's SHA-256 and size and refuses an archive
//! with an entry the manifest does not name, a missing entry, or a changed byte
//! (`backup.checksum_mismatch`). Entry names never become paths: each is written to a path of
//! our own making.

use super::manifest::{Manifest, MANIFEST_ENTRY};
use crm_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The content type archives are stored with.
pub const CONTENT_TYPE: &str = "application/zstd";

/// zstd level: a good ratio at a few hundred MB/s.
const LEVEL: i32 = 3;

/// Writes `manifest` and the entries (name, file) to a new archive at `out`; returns its size
/// and SHA-256.
pub fn write(
    manifest: &Manifest,
    entries: &[(String, PathBuf)],
    out: &Path,
) -> Result<(u64, String)> {
    let io = |e: io::Error| Error::internal(format!("writing the backup archive: {e}"));
    let file = File::create(out).map_err(io)?;
    let encoder = zstd::Encoder::new(BufWriter::new(file), LEVEL).map_err(io)?;
    let mut tar = tar::Builder::new(encoder);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::internal(format!("encoding the manifest: {e}")))?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(manifest.created_at.timestamp().max(0).unsigned_abs());
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST_ENTRY, json.as_slice())
        .map_err(io)?;
    for (name, path) in entries {
        tar.append_path_with_name(path, name).map_err(io)?;
    }
    let encoder = tar.into_inner().map_err(io)?;
    let mut writer = encoder.finish().map_err(io)?;
    writer.flush().map_err(io)?;
    drop(writer);
    sha256_of(out)
}

/// Size and hex SHA-256 of a file, read in chunks.
pub fn sha256_of(path: &Path) -> Result<(u64, String)> {
    let io = |e: io::Error| Error::internal(format!("reading {}: {e}", path.display()));
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// What the manifest says an entry must be.
struct Expected {
    bytes: u64,
    sha256: String,
}

fn mismatch(message: String) -> Error {
    Error::bad_request("backup.checksum_mismatch", message)
}

fn invalid(message: String) -> Error {
    Error::bad_request("backup.invalid_archive", message)
}

/// Reads the archive at `archive` into `dir`, checking every entry; returns the manifest and
/// where each entry now is (by entry name).
pub fn read(archive: &Path, dir: &Path) -> Result<(Manifest, HashMap<String, PathBuf>)> {
    let file = File::open(archive).map_err(|e| {
        invalid(format!(
            "cannot open the archive {}: {e}",
            archive.display()
        ))
    })?;
    let decoder = zstd::Decoder::new(file)
        .map_err(|e| invalid(format!("the archive is not zstd-compressed: {e}")))?;
    let mut tar = tar::Archive::new(decoder);
    let broken = |e: io::Error| invalid(format!("the archive is damaged: {e}"));
    let mut entries = tar.entries().map_err(broken)?;
    let mut first = entries
        .next()
        .ok_or_else(|| invalid("the archive is empty".into()))?
        .map_err(broken)?;
    if first.path().map_err(broken)?.to_str() != Some(MANIFEST_ENTRY) {
        return Err(invalid(format!(
            "the archive does not begin with {MANIFEST_ENTRY}"
        )));
    }
    let mut json = Vec::new();
    first
        .by_ref()
        .take(64 * 1024 * 1024)
        .read_to_end(&mut json)
        .map_err(broken)?;
    drop(first);
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| invalid(format!("the manifest cannot be read: {e}")))?;
    manifest.check()?;
    let mut expected: HashMap<String, Expected> = manifest
        .tables
        .iter()
        .map(|t| {
            (
                t.entry.clone(),
                Expected {
                    bytes: t.bytes,
                    sha256: t.sha256.clone(),
                },
            )
        })
        .chain(manifest.files.iter().filter_map(|f| {
            Some((
                f.entry.clone()?,
                Expected {
                    bytes: f.bytes,
                    sha256: f.sha256.clone()?,
                },
            ))
        }))
        .collect();
    let mut found = HashMap::new();
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(broken)?;
        let name = entry
            .path()
            .map_err(broken)?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| invalid("an entry name is not UTF-8".into()))?;
        let Some(want) = expected.remove(&name) else {
            return Err(mismatch(format!(
                "the archive holds '{name}', which its manifest does not list (or lists twice)"
            )));
        };
        let path = dir.join(format!("entry-{n}"));
        let (bytes, sha256) = copy_hashing(&mut entry, &path, want.bytes)?;
        if bytes != want.bytes || sha256 != want.sha256 {
            return Err(mismatch(format!(
                "entry '{name}' does not match its checksum in the manifest: the archive was \
                 changed or damaged"
            )));
        }
        found.insert(name, path);
    }
    if let Some(name) = expected.keys().next() {
        return Err(mismatch(format!(
            "the archive lacks '{name}', which its manifest lists"
        )));
    }
    Ok((manifest, found))
}

/// Copies at most `limit + 1` bytes of `from` to a new file `to`; returns size and SHA-256.
fn copy_hashing(from: &mut impl Read, to: &Path, limit: u64) -> Result<(u64, String)> {
    let io = |e: io::Error| Error::internal(format!("unpacking the archive: {e}"));
    let mut out = BufWriter::new(File::create(to).map_err(io)?);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut from = from.take(limit.saturating_add(1));
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| invalid(format!("the archive is damaged: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
        size += n as u64;
    }
    out.flush().map_err(io)?;
    Ok((size, hex::encode(hasher.finalize())))
}
