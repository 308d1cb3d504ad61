//! The process's one wasmtime engine and the clock that bounds guest calls.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine};

use crate::error::WasmError;

/// How often the epoch advances: the granularity of `timeout.ms`.
const TICK: Duration = Duration::from_millis(5);

/// The shared engine: compiled components are only valid in the engine that
/// compiled them, so every task shares one. Its first use starts the thread
/// that advances the epoch.
pub(crate) fn engine() -> Result<&'static Engine, WasmError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.wasm_component_model(true);
            config.epoch_interruption(true);
            // A trap's message is what the dead-letter queue shows; a wasm
            // backtrace would only add frames of a stripped guest.
            config.wasm_backtrace_max_frames(None);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let ticking = engine.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                })
                .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(|e| WasmError::Engine(e.clone()))
}

/// The epoch deadline, in ticks, for a call allowed `timeout`: at least that
/// long, at most one tick longer.
pub(crate) fn ticks(timeout: Duration) -> u64 {
    let tick = TICK.as_millis();
    u64::try_from(timeout.as_millis().div_ceil(tick) + 1).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_never_shorter_than_its_timeout() {
        assert_eq!(ticks(Duration::from_millis(1)), 2);
        assert_eq!(ticks(Duration::from_millis(5)), 2);
        assert_eq!(ticks(Duration::from_millis(6)), 3);
        assert_eq!(ticks(Duration::from_secs(1)), 201);
    }
}
