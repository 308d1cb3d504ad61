//! Why a module cannot be used.

use std::path::PathBuf;

/// A module that cannot become a transform; the message names the file and why.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read WebAssembly module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component: {why}")]
    NotAComponent { path: PathBuf, why: String },
    #[error("{path} is not a component of the sluice:transform@0.3.0 world: {why}")]
    WrongWorld { path: PathBuf, why: String },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("{path}: the guest's init failed: {why}")]
    Init { path: PathBuf, why: String },
}
