//! Compiles a module once per content hash: in memory for the process, on disk
//! across restarts.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::engine;
use crate::error::WasmError;

/// Where compiled components are kept: `SLUICE_WASM_CACHE_DIR`, else
/// `~/.cache/sluice/wasm`; none without a home directory (then every start
/// compiles).
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("SLUICE_WASM_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice/wasm")))
}

/// The component in `path`, compiled for the shared engine.
pub(crate) fn load(path: &Path) -> Result<Component, WasmError> {
    static LOADED: OnceLock<Mutex<HashMap<[u8; 32], Component>>> = OnceLock::new();
    let bytes = std::fs::read(path).map_err(|source| WasmError::Read {
        path: path.to_owned(),
        source,
    })?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let loaded = LOADED.get_or_init(Mutex::default);
    if let Some(c) = loaded.lock().ok().and_then(|m| m.get(&digest).cloned()) {
        return Ok(c);
    }
    let component = compile(path, &bytes, &digest)?;
    if let Ok(mut m) = loaded.lock() {
        m.insert(digest, component.clone());
    }
    Ok(component)
}

fn compile(path: &Path, bytes: &[u8], digest: &[u8; 32]) -> Result<Component, WasmError> {
    let engine = engine()?;
    // The artifact is only valid for this wasmtime build and configuration.
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let file = cache_dir().map(|d| d.join(format!("{hex}-{:016x}.cwasm", h.finish())));
    if let Some(file) = file.as_ref().filter(|f| f.exists()) {
        // SAFETY: the file is an artifact this code serialized with this
        // engine's configuration, named by its source's hash and the engine's
        // compatibility hash; wasmtime checks the header and refuses another
        // version's. The cache directory is the worker's own, as its binary is.
        match unsafe { Component::deserialize_file(engine, file) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring a compiled module that cannot be loaded; recompiling")
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| WasmError::NotAComponent {
        path: path.to_owned(),
        why: format!("{e:#}"),
    })?;
    if let Some(file) = file {
        if let Err(e) = store(&component, &file) {
            tracing::warn!(file = %file.display(), error = %e, "cannot cache a compiled module; it will be compiled again on the next start");
        }
    }
    Ok(component)
}

/// Writes atomically, so a concurrent start never reads half an artifact.
fn store(component: &Component, file: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}
