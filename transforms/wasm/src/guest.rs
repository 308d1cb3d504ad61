//! One instance of a guest: its store, with a memory limit, and every call
//! bounded in time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{ResourceLimiter, Store, Trap};

use crate::bindings::{self, Answer, Batch, Level};
use crate::cache;
use crate::data::Reading;
use crate::engine::{engine, ticks};
use crate::error::WasmError;

/// What one instance may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_max_bytes: usize,
    pub timeout: Duration,
}

/// A module ready to instantiate: compiled, linked and type-checked once per
/// task.
pub(crate) struct Module {
    path: PathBuf,
    pre: bindings::TransformPre<HostState>,
    limits: Limits,
    config: Vec<(String, String)>,
}

/// A running instance.
pub(crate) struct Guest {
    store: Store<HostState>,
    bindings: bindings::Transform,
    /// What the guest said it reads.
    pub reading: Reading,
}

/// Why a call into a guest failed; the instance is unusable afterwards.
#[derive(Debug)]
pub(crate) enum CallError {
    Timeout(Duration),
    Memory {
        limit: usize,
    },
    /// The trap's message, with what the guest logged as an error before it.
    Trap(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout(t) => write!(
                f,
                "the guest ran longer than its time limit of {} ms (timeout.ms)",
                t.as_millis()
            ),
            CallError::Memory { limit } => write!(
                f,
                "the guest needed more than its memory limit of {limit} bytes (memory.max.bytes)"
            ),
            CallError::Trap(why) => write!(f, "the guest trapped: {why}"),
        }
    }
}

/// A store's host state.
pub(crate) struct HostState {
    memory_max_bytes: usize,
    memory_exceeded: bool,
    /// The last message the guest logged at `error` (a panic's, from the SDK).
    last_error: Option<String>,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_max_bytes {
            self.memory_exceeded = true;
            // An error, not `Ok(false)`: a guest allocator that is refused
            // memory aborts anyway, and this way the cause is certain.
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a transform needs few.
        Ok(desired <= 1 << 20)
    }
}

impl bindings::sluice::transform::types::Host for HostState {}

impl bindings::sluice::transform::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        match level {
            Level::Error => {
                tracing::error!(guest = %message, "wasm transform");
                self.last_error = Some(message);
            }
            Level::Warn => tracing::warn!(guest = %message, "wasm transform"),
            Level::Info => tracing::info!(guest = %message, "wasm transform"),
            Level::Debug => tracing::debug!(guest = %message, "wasm transform"),
        }
    }
}

impl Module {
    /// Loads `path` and checks that it is a component of this world.
    pub fn load(
        path: &Path,
        limits: Limits,
        config: Vec<(String, String)>,
    ) -> Result<Self, WasmError> {
        let component = cache::load(path)?;
        let wrong_world = |e: wasmtime::Error| WasmError::WrongWorld {
            path: path.to_owned(),
            why: format!("{e:#}"),
        };
        let mut linker = Linker::<HostState>::new(engine()?);
        bindings::Transform::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        // A wasm32-wasip2 guest links WASI even when it never calls it; calling
        // it traps, which keeps files, sockets, clocks and randomness out.
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(wrong_world)?;
        let pre = linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = bindings::TransformPre::new(pre).map_err(wrong_world)?;
        Ok(Self {
            path: path.to_owned(),
            pre,
            limits,
            config,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh instance, initialised with the transform's config.
    pub fn start(&self) -> Result<Guest, WasmError> {
        let init_failed = |why: String| WasmError::Init {
            path: self.path.clone(),
            why,
        };
        let mut store = Store::new(
            engine()?,
            HostState {
                memory_max_bytes: self.limits.memory_max_bytes,
                memory_exceeded: false,
                last_error: None,
            },
        );
        store.limiter(|s| s);
        store.set_epoch_deadline(ticks(self.limits.timeout));
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => return Err(init_failed(classify(&store, e, self.limits).to_string())),
        };
        let mut guest = Guest {
            store,
            bindings,
            reading: Reading::new(bindings::Reads {
                whole: bindings::Parts::all(),
                value_fields: Vec::new(),
            }),
        };
        match guest.bindings.call_init(&mut guest.store, &self.config) {
            Ok(Ok(reads)) => {
                guest.reading = Reading::new(reads);
                Ok(guest)
            }
            Ok(Err(why)) => Err(init_failed(why)),
            Err(e) => Err(init_failed(
                classify(&guest.store, e, self.limits).to_string(),
            )),
        }
    }
}

impl Guest {
    /// One `apply` call, within the time limit.
    pub fn apply(&mut self, batch: &Batch, limits: Limits) -> Result<Answer, CallError> {
        self.store.set_epoch_deadline(ticks(limits.timeout));
        self.store.data_mut().last_error = None;
        self.bindings
            .call_apply(&mut self.store, batch)
            .map_err(|e| classify(&self.store, e, limits))
    }
}

fn classify(store: &Store<HostState>, error: wasmtime::Error, limits: Limits) -> CallError {
    if store.data().memory_exceeded {
        return CallError::Memory {
            limit: limits.memory_max_bytes,
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return CallError::Timeout(limits.timeout);
    }
    let what = trap.map_or_else(|| format!("{error:#}"), |t| t.to_string());
    CallError::Trap(match &store.data().last_error {
        Some(logged) => format!("{what}: {logged}"),
        None => what,
    })
}
