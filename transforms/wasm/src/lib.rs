//! `sluice-wasm`: single-message transforms written as WebAssembly components of
//! the `sluice:transform@0.3.0` world (`transforms/wit`), run in wasmtime.
//!
//! A module is compiled once per content hash (and the compiled artifact cached
//! on disk); each task gets its own instance, with a memory limit and a time
//! limit per batch. A trap, a timeout or memory exhaustion fails only the
//! batch's records — as record errors the runtime's error policy handles — and
//! the next batch gets a fresh instance.
//!
//! It depends on `sluice-api` and wasmtime only; it must not depend on the
//! runtime. Guests get no WASI: every WASI import a guest links traps.

mod bindings;
mod cache;
mod config;
mod data;
mod engine;
mod error;
mod guest;
mod transform;

pub use config::plugin;
pub use error::WasmError;
pub use guest::Limits;
pub use transform::WasmTransform;
