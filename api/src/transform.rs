//! Single-message transforms and the predicates that gate them.

use crate::error::ConnectError;
use crate::record::Record;

/// A single-message transform (SMT). One instance serves one task.
pub trait Transform: Send {
    /// Returns the transformed record, or `None` to drop it.
    fn apply(&mut self, record: Record) -> Result<Option<Record>, ConnectError>;

    /// Transforms a whole batch; the result has one entry per input record, in order.
    /// Transforms with a per-call cost (a WebAssembly guest) override this.
    fn apply_batch(&mut self, records: Vec<Record>) -> Vec<Result<Option<Record>, ConnectError>> {
        records.into_iter().map(|r| self.apply(r)).collect()
    }
}

/// Decides whether a transform applies to a record (Connect's `predicates`).
pub trait Predicate: Send {
    /// Whether the record matches.
    fn test(&self, record: &Record) -> bool;
}
