//! Durable file replacement: write a temporary file, fsync it, rename it over the
//! target and fsync the directory, so a crash leaves either the old or the new
//! contents, never a torn file. The offset store and the connector config store
//! both rely on it.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably. Blocking.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
