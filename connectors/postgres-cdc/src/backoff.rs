//! When to try PostgreSQL again after losing it.
//!
//! Debezium restarts a task after a retriable error once
//! `retriable.restart.connector.wait.ms` (10 s) has passed, as often as
//! `errors.max.retries` allows (-1, its default: without limit; 0: never).
//! Here that wait caps a backoff starting at half a second instead of being
//! waited every time: a blip costs half a second, and a long outage never
//! waits longer between attempts than Debezium would. The count starts
//! afresh once a reconnect succeeds (Debezium's once records flow again).

use std::time::Duration;

use sluice_api::Backoff;

use crate::config::CdcConfig;

/// The nominal delay before the first reconnect; each failure doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// A fresh backoff for one outage, with the connector's Debezium limits.
pub fn reconnect_backoff(config: &CdcConfig) -> Backoff {
    Backoff::new(FIRST_DELAY, config.retry_wait).at_most(config.max_retries)
}
