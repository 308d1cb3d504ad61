//! Durable file replacement: write a temporary file, fsync it, rename it over the
//! target and fsync the directory, so a crash leaves either the old or the new
//! contents, never a torn file. The offset store and the connector config store
//! both rely on it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably, readable by anyone who
/// can reach the directory. Blocking.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with_mode(path, bytes, 0o644)
}

/// As `replace`, readable and writable by the worker's user only: for files
/// that hold secrets, such as connector configs.
pub fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_with_mode(path, bytes, 0o600)
}

fn replace_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    // A temporary file left by a crash keeps its old mode through open().
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
