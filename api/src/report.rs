//! The per-record error reporter a sink uses for records the destination rejects
//! (an Elasticsearch bulk item, a warehouse row), like Connect's `ErrantRecordReporter`.

use async_trait::async_trait;

use crate::error::ConnectError;
use crate::record::Record;

#[async_trait]
/// Where a sink sends records the destination rejects; follows the
/// connector's `errors.*` policy (Connect's `ErrantRecordReporter`).
pub trait ErrantRecordReporter: Send + Sync {
    /// Reports one failed record. Returns once the error policy has dealt with it
    /// (for a dead-letter queue: once the DLQ write is acknowledged), so the task
    /// may then count the record as handled. Returns an error when the policy is to
    /// fail (`errors.tolerance=none`): the task must then fail with it.
    async fn report(&self, record: &Record, error: &ConnectError) -> Result<(), ConnectError>;
}
