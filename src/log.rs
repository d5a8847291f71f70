//! Logging through `tracing` when the feature is on; nothing otherwise.
//!
//! Callers pass `format_args!`, so nothing is formatted when nothing is logged. What they pass
//! never holds a secret or a body.

use std::fmt;

/// Something went wrong with a request, but the receiver answered it.
pub(crate) fn warn(message: fmt::Arguments<'_>) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "propexo_webhooks", "{message}");
    #[cfg(not(feature = "tracing"))]
    let _ = message;
}

/// A delivery was given up on: it needs an operator.
pub(crate) fn error(message: fmt::Arguments<'_>) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: "propexo_webhooks", "{message}");
    #[cfg(not(feature = "tracing"))]
    let _ = message;
}
