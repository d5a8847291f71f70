//! What can go wrong reading from Propexo's REST API.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::{EventType, ObjectType};

/// Everything that can go wrong building an [`ApiClient`](crate::ApiClient) or reading a
/// record through it.
///
/// No variant, and no `Display` or `Debug` output, ever holds the API key.
///
/// [`is_transient`](ApiError::is_transient) tells a failure worth retrying later (the rate
/// limit, a 5xx, a timeout) from one that will not go away (a 404, a bad key). Inside a
/// [`Dispatcher`](crate::Dispatcher) handler, return either kind as the handler's error: the
/// delivery is then not acknowledged, and Propexo sends it again.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No API key was given, and `PROPEXO_API_KEY` is not set.
    #[error("no Propexo API key: set PROPEXO_API_KEY or pass one to ApiClient::builder")]
    MissingApiKey,

    /// The API key cannot be sent: it is empty, or holds characters an HTTP header cannot
    /// carry (such as a newline). The key itself is not quoted.
    #[error("the Propexo API key is unusable: {0}")]
    InvalidApiKey(&'static str),

    /// A builder setting is out of range (say, a rate limit of 0 requests).
    #[error("invalid API client setting: {0}")]
    InvalidConfig(&'static str),

    /// The event is not about a record (a job, sync or write-operation event).
    #[error("a {0} event is not about a record")]
    NotARecordEvent(EventType),

    /// Propexo's API has no single-record endpoint for this object type (such as the link
    /// tables `residents-to-leases`), or this version of the crate does not know the object.
    #[error("Propexo's API has no single-record endpoint for `{0}`")]
    NoRecordEndpoint(ObjectType),

    /// The record id cannot name a record (empty, `.` or `..`).
    #[error("`{0}` is not a record id")]
    InvalidRecordId(String),

    /// The event is about another object type than the record type asked for.
    #[error("expected a record of `{expected}`, but the event is about `{found}`")]
    ObjectMismatch {
        /// The object type of the record type asked for.
        expected: ObjectType,
        /// The event's object type.
        found: ObjectType,
    },

    /// Propexo answered an error status, with its error body when it sent one.
    ///
    /// 5xx answers were retried before this is returned; other 4xx answers are not retried.
    #[error("Propexo answered {status}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// Propexo's `{"error": {...}}` body, if the answer had one.
        error: Option<PropexoError>,
    },

    /// Propexo kept answering `429 Too Many Requests` after the client waited for the rate
    /// limit's window to reset as many times as it retries.
    #[error("Propexo's rate limit: still answered 429 after {attempts} attempts")]
    RateLimited {
        /// How many requests were sent.
        attempts: u32,
    },

    /// The request did not get an answer: timeout, connection refused or reset, TLS failure.
    /// Retried before this is returned.
    #[error("request to Propexo failed{}: {source}", if *timeout { " (timeout)" } else { "" })]
    Transport {
        /// Whether it was a timeout.
        timeout: bool,
        /// The HTTP client's error (it names the URL, never the headers).
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The answer is not the documented `{"meta": ..., "results": {record}}`, or the record
    /// does not have the spec's types.
    #[error("Propexo's answer is not the expected record")]
    InvalidResponse(#[source] crate::Error),
}

impl ApiError {
    /// Whether the same request may succeed later: the rate limit, a 5xx, a 429, a timeout or
    /// a connection failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ApiError;
    ///
    /// assert!(ApiError::RateLimited { attempts: 4 }.is_transient());
    /// assert!(!ApiError::MissingApiKey.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    /// The HTTP status Propexo answered, for [`Status`](ApiError::Status) and
    /// [`RateLimited`](ApiError::RateLimited).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }

    /// Whether Propexo answered `404 Not Found`: no such record (or not visible to this key).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Propexo's error body, when it sent one.
    pub fn propexo_error(&self) -> Option<&PropexoError> {
        match self {
            Self::Status { error, .. } => error.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn transport(source: reqwest::Error) -> Self {
        Self::Transport {
            timeout: source.is_timeout(),
            source: Arc::new(source),
        }
    }
}

/// Propexo's error body: `{"error": {"code": "invalid_request", "message": "...", "details": {...}}}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct PropexoError {
    /// A machine-readable code, e.g. `invalid_request`.
    #[serde(default)]
    pub code: Option<String>,
    /// A message for people.
    #[serde(default)]
    pub message: Option<String>,
    /// Anything else Propexo says about the error.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

impl PropexoError {
    /// Reads Propexo's error body, if `body` is one.
    pub(crate) fn from_body(body: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Body {
            error: PropexoError,
        }
        serde_json::from_slice::<Body>(body).ok().map(|b| b.error)
    }
}

impl fmt::Display for PropexoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, "{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => f.write_str(text),
            (None, None) => f.write_str("no message"),
        }
    }
}
