//! Blocking work (a Kafka client's synchronous calls, a store's writes) run on
//! tokio's blocking pool, so it never holds an async thread; a panic in it
//! comes back as an error naming the work, not as a panic of the caller.

use sluice_api::ConnectError;

use crate::error::WorkerError;

/// Blocking work that panicked (or was cancelled at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("{what} failed: {source}")]
pub struct BlockingFailed {
    what: &'static str,
    #[source]
    source: tokio::task::JoinError,
}

/// Runs `f` on the blocking pool; `what` names it in the error.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BlockingFailed> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| BlockingFailed { what, source })
}

impl From<BlockingFailed> for ConnectError {
    fn from(e: BlockingFailed) -> Self {
        ConnectError::fatal(e.to_string())
    }
}

impl From<BlockingFailed> for crate::herder::HerderError {
    fn from(e: BlockingFailed) -> Self {
        crate::herder::HerderError::Internal(e.to_string())
    }
}

impl From<BlockingFailed> for WorkerError {
    fn from(e: BlockingFailed) -> Self {
        WorkerError::Other(e.to_string())
    }
}
