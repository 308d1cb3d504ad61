//! The one error type plugins return, classified so the runtime can decide whether
//! to retry, route the record to a dead-letter queue, or fail the task.

use std::fmt;

use crate::config::ConfigErrors;

/// How the runtime should treat a [`ConnectError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A transient fault (network, throttling, a busy destination): retry with backoff.
    Retriable,
    /// The record itself is bad (undecodable, rejected by the destination): the error
    /// policy (`errors.tolerance`) decides between failing and a dead-letter queue.
    Data,
    /// The configuration is invalid: fail, naming the key.
    Config,
    /// Anything else: the task fails.
    Fatal,
}

/// An error raised by a connector, task, transform or converter.
#[derive(Debug, thiserror::Error)]
pub struct ConnectError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConnectError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }
    /// Worth retrying: a connection lost, a destination away.
    pub fn retriable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retriable, message)
    }
    /// This record's fault: the error policy decides (`errors.tolerance`).
    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }
    /// Retrying cannot help: the task fails.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fatal, message)
    }
    /// Attaches the underlying cause; it appears in [`ConnectError::chain`].
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The message, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether retrying may help.
    pub fn is_retriable(&self) -> bool {
        self.kind == ErrorKind::Retriable
    }
    /// The message followed by every cause, one per line: what Connect puts in a
    /// task's `trace` and in `__connect.errors.exception.stacktrace`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str("\nCaused by: ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ConfigErrors> for ConnectError {
    fn from(errors: ConfigErrors) -> Self {
        Self::new(ErrorKind::Config, errors.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_causes() {
        let io = std::io::Error::other("disk full");
        let e = ConnectError::fatal("cannot write offsets").with_source(io);
        assert_eq!(e.chain(), "cannot write offsets\nCaused by: disk full");
        assert_eq!(e.kind(), ErrorKind::Fatal);
    }
}
