//! The `Wasm` transform: one guest instance per task, one call per batch.

use std::path::Path;

use sluice_api::{ConnectError, Record, Transform};

use crate::bindings::{Answer, Batch, Changes, Edit, Outcome};
use crate::data::{from_guest, single, BatchBuilder, Reading, Sent};
use crate::error::WasmError;
use crate::guest::{CallError, Guest, Limits, Module};

/// A task's instance of a WebAssembly transform.
pub struct WasmTransform {
    module: Module,
    limits: Limits,
    /// `None` after a failed call: the next batch starts a fresh instance.
    guest: Option<Guest>,
    /// What the guest reads of a record (the same for every instance: one
    /// module, one config).
    reading: Reading,
}

impl WasmTransform {
    /// Loads the module and starts (and initialises) its first instance, so a
    /// guest that cannot start fails the task's start, not its first batch.
    pub fn new(
        path: &Path,
        limits: Limits,
        config: Vec<(String, String)>,
    ) -> Result<Self, WasmError> {
        let module = Module::load(path, limits, config)?;
        let guest = module.start()?;
        Ok(Self {
            module,
            limits,
            reading: guest.reading.clone(),
            guest: Some(guest),
        })
    }

    fn call(&mut self, batch: &Batch) -> Result<Answer, Failure> {
        let mut guest = match self.guest.take() {
            Some(g) => g,
            None => self.module.start().map_err(Failure::Start)?,
        };
        let outcomes = guest.apply(batch, self.limits).map_err(Failure::Call)?;
        self.guest = Some(guest);
        Ok(outcomes)
    }

    fn error(&self, why: impl std::fmt::Display) -> ConnectError {
        ConnectError::data(format!(
            "WebAssembly transform {}: {why}",
            self.module.path().display()
        ))
    }

    /// After a trap, each record alone in a fresh instance, so only the
    /// records that trap fail.
    fn isolate(
        &mut self,
        records: Vec<Record>,
        sent: &Batch,
    ) -> Vec<Result<Option<Record>, ConnectError>> {
        records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let alone = single(sent, i, &self.reading);
                match self.call(&alone) {
                    Ok(answer) => self
                        .settle(vec![record], &alone, answer)
                        .pop()
                        .unwrap_or_else(|| Err(self.miscount(0, 1))),
                    Err(f) => Err(self.error(f)),
                }
            })
            .collect()
    }

    /// The records as the guest's answer has them.
    fn settle(
        &self,
        records: Vec<Record>,
        sent: &Batch,
        answer: Answer,
    ) -> Vec<Result<Option<Record>, ConnectError>> {
        let Answer {
            outcomes,
            changes,
            mut edits,
            errors,
            text,
        } = answer;
        if outcomes.len() != records.len() {
            return records
                .iter()
                .map(|_| Err(self.miscount(outcomes.len(), records.len())))
                .collect();
        }
        // Stable, and a no-op for a guest that answers in record order.
        if !edits.is_sorted_by_key(|e| e.record) {
            edits.sort_by_key(|e| e.record);
        }
        let mut edits = edits.as_slice();
        let mut changes = changes.into_iter();
        let mut errors = errors.into_iter();
        records
            .into_iter()
            .zip(outcomes)
            .enumerate()
            .map(|(i, (record, outcome))| {
                let start = edits.partition_point(|e| (e.record as usize) < i);
                let end = edits.partition_point(|e| (e.record as usize) <= i);
                let mine = &edits[start..end];
                edits = &edits[end..];
                let kept = match outcome {
                    Outcome::Keep => match changes.next() {
                        Some(c) => Some(c),
                        None => {
                            return Err(
                                self.error("the guest kept a record but gave no changes for it")
                            )
                        }
                    },
                    _ => None,
                };
                match outcome {
                    Outcome::Keep | Outcome::Edited => {
                        self.keep(record, Sent::of(sent, i), kept, mine, &text)
                    }
                    Outcome::Unchanged => Ok(Some(record)),
                    Outcome::Drop => Ok(None),
                    Outcome::Error => Err(self.error(format_args!(
                        "the guest rejected the record: {}",
                        errors.next().as_deref().unwrap_or("(no message)")
                    ))),
                }
            })
            .collect()
    }

    fn keep(
        &self,
        record: Record,
        sent: Sent<'_>,
        changes: Option<Changes>,
        edits: &[Edit],
        text: &[u8],
    ) -> Result<Option<Record>, ConnectError> {
        from_guest(record, sent, changes, edits, text, &self.reading)
            .map(Some)
            .map_err(|e| self.error(e.message()))
    }

    fn miscount(&self, got: usize, expected: usize) -> ConnectError {
        self.error(format_args!(
            "the guest returned {got} outcomes for {expected} records"
        ))
    }
}

/// Why a call produced no outcomes.
#[derive(Debug)]
enum Failure {
    Start(WasmError),
    Call(CallError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Start(e) => write!(f, "cannot restart the guest: {e}"),
            Failure::Call(e) => e.fmt(f),
        }
    }
}

impl Transform for WasmTransform {
    fn apply(&mut self, record: Record) -> Result<Option<Record>, ConnectError> {
        self.apply_batch(vec![record])
            .pop()
            .unwrap_or_else(|| Err(self.miscount(0, 1)))
    }

    fn apply_batch(&mut self, records: Vec<Record>) -> Vec<Result<Option<Record>, ConnectError>> {
        let mut builder = BatchBuilder::new(&self.reading, records.len());
        let mut pending = Vec::with_capacity(records.len());
        // A record the host cannot even encode fails alone, in its place; the
        // rest go in.
        let mut failed = Vec::new();
        for (i, record) in records.into_iter().enumerate() {
            match builder.push(&record) {
                Ok(()) => pending.push(record),
                Err(e) => failed.push((i, self.error(e.message()))),
            }
        }
        let sent = builder.finish();
        let mut results = match self.call(&sent) {
            Ok(answer) => self.settle(pending, &sent, answer),
            Err(Failure::Call(CallError::Trap(_))) if sent.topic.len() > 1 => {
                self.isolate(pending, &sent)
            }
            // A timeout or exhausted memory fails the whole batch: retrying
            // each record alone would multiply the limit by the batch size.
            Err(f) => {
                let why = f.to_string();
                pending.iter().map(|_| Err(self.error(&why))).collect()
            }
        };
        // In ascending order, so each lands where its record was.
        for (i, e) in failed {
            results.insert(i, Err(e));
        }
        results
    }
}
