//! The WebAssembly guests of `transforms/examples`, built once per test binary
//! for wasm32-wasip2 into a target directory outside the clone
//! (`SLUICE_GUEST_TARGET_DIR`, else `~/.cache/sluice/wasm-guests`). Shared by
//! the end-to-end tests, the host's tests (`transforms/wasm/tests`) and the
//! benchmark, which include this file by path.

// Test and benchmark support: a guest that cannot be built is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built component of guest crate `name` (e.g. `mask-pii`, `loop-forever`).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build);
    let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "no guest {}", path.display());
    path
}

/// Where guests are built: outside the clone, shared by every test binary.
pub fn target_dir() -> PathBuf {
    std::env::var_os("SLUICE_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/sluice/wasm-guests")
        })
}

fn build() -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("transforms/examples"))
        .find(|d| d.join("Cargo.toml").exists())
        .expect("transforms/examples above this crate");
    let target = target_dir();
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(examples.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's flags are for the host, not for wasm32.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the WebAssembly guests failed (is the wasm32-wasip2 target installed? `dev/install wasm`)"
    );
    target.join("wasm32-wasip2/release")
}
