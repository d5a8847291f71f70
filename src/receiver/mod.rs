//! The receiver: its checks, its status table, and the intake it hands verified deliveries to.
//! The framework adapters (axum, actix-web) sit beside it and share all of it.

#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use crate::inbox::{Inbox, InboxError, Stored};
use crate::{Dispatcher, Error, Outcome, Signature, VerifiedBody, Verifier, log};

/// The default largest body a receiver reads: 8 MiB, well above Propexo's largest records (and
/// above the 2 MB of axum's and the 256 kB of actix-web's own defaults, which would reject
/// large payloads).
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The default time allowed for a request body to arrive: 30 seconds.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete Propexo webhook endpoint: checks, verification, then the intake: run the
/// dispatcher now ([`Receiver::new`]), or store the delivery in an [`Inbox`] and answer once it
/// is stored ([`Receiver::with_inbox`]; [`Workers`](crate::Workers) run the dispatcher later).
///
/// Mount it with `propexo_webhooks::axum::route` (feature `axum`) or
/// `propexo_webhooks::actix::service` (feature `actix-web`). It answers according to one
/// status table:
///
/// | request | status |
/// |---|---|
/// | handled (or a duplicate) | 200 OK |
/// | stored in the inbox (or stored already, not yet handled) | 202 Accepted |
/// | handled before, within its de-duplication window (inbox) | 200 OK |
/// | missing or malformed `propexo-signature` header | 400 Bad Request |
/// | signature does not match | 401 Unauthorized |
/// | body not as long as its `Content-Length`, or unreadable | 400 Bad Request |
/// | body not received within the body timeout | 408 Request Timeout |
/// | body over the limit | 413 Payload Too Large |
/// | content type other than JSON (a missing one is accepted) | 415 Unsupported Media Type |
/// | verified, but not a valid event | as `on_malformed` decides: 200 if it stored the body, 500 if it failed, 422 without it |
/// | a handler failed or panicked | 500 Internal Server Error |
/// | another copy of the delivery is being handled | 409 Conflict |
/// | inbox unreachable, full or shut down; idempotency store unreachable | 503 Service Unavailable, with `Retry-After` |
///
/// Error bodies are one short generic line; details go to `tracing` (feature `tracing`), and
/// never include the secret or the body.
#[derive(Clone)]
pub struct Receiver {
    verifier: Verifier,
    intake: Intake,
    body_limit: usize,
    body_timeout: Duration,
    diagnose: bool,
}

/// Where a verified delivery goes before the answer.
#[derive(Clone)]
enum Intake {
    /// Run the dispatcher now; answer with its outcome.
    Dispatch(Arc<Dispatcher>),
    /// Store the delivery; answer once it is stored.
    Inbox(Arc<dyn Inbox>),
}

impl Receiver {
    /// A receiver that runs `dispatcher`'s handlers before answering.
    pub fn new(verifier: Verifier, dispatcher: Dispatcher) -> Self {
        Self::with_intake(verifier, Intake::Dispatch(Arc::new(dispatcher)))
    }

    /// A receiver that stores each verified delivery in `inbox` and answers `202 Accepted` once
    /// [`Inbox::store`] returned (for a durable inbox: once it is on disk), or `503` with
    /// `Retry-After` when it could not be stored. [`Workers`](crate::Workers) on the same inbox
    /// run the handlers.
    pub fn with_inbox(verifier: Verifier, inbox: impl Inbox) -> Self {
        Self::with_intake(verifier, Intake::Inbox(Arc::new(inbox)))
    }

    fn with_intake(verifier: Verifier, intake: Intake) -> Self {
        Self {
            verifier,
            intake,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            diagnose: false,
        }
    }

    /// The largest body read, in bytes (default [`DEFAULT_BODY_LIMIT`]); larger ones get 413.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long reading the body may take (default [`DEFAULT_BODY_TIMEOUT`]); a body that has
    /// not arrived by then gets 408, so a client that announces more bytes than it sends cannot
    /// hold a connection and its memory indefinitely.
    ///
    /// The timer needs tokio's time driver, which `#[tokio::main]`, `axum::serve` setups and
    /// actix-web's runtime all enable (a hand-built runtime needs `enable_time()`).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Logs, for each signature mismatch, the likely cause found by
    /// [`Verifier::diagnose`] (feature `tracing`). Off by default: it costs a few extra HMACs
    /// of the body per rejected request.
    #[must_use]
    pub fn log_diagnosis(mut self, enabled: bool) -> Self {
        self.diagnose = enabled;
        self
    }

    /// The configured body limit.
    pub fn limit(&self) -> usize {
        self.body_limit
    }

    /// Reads the body with `read`, within the body timeout.
    pub(crate) async fn read_body(
        &self,
        read: impl Future<Output = Result<Bytes, WebhookRejection>>,
    ) -> Result<Bytes, WebhookRejection> {
        tokio::time::timeout(self.body_timeout, read)
            .await
            .unwrap_or(Err(WebhookRejection::BodyTimeout))
    }

    /// Checks what can be checked before reading the body.
    pub(crate) fn check_head(&self, headers: &HeaderMap) -> Result<Signature, WebhookRejection> {
        check_head(headers, self.body_limit)
    }

    /// Verifies the body and hands it to the intake.
    pub(crate) async fn receive(
        &self,
        headers: HeaderMap,
        body: Bytes,
        signature: &Signature,
    ) -> Reply {
        if let Err(rejection) = check_length(&headers, body.len()) {
            return Reply::Rejected(rejection);
        }
        let verified = match self.verifier.verify_parsed(&body, signature) {
            Ok(verified) => verified,
            Err(error) => {
                if self.diagnose {
                    let signature = signature.to_string();
                    log::warn(format_args!(
                        "propexo webhook: signature mismatch; likely cause: {}",
                        self.verifier.diagnose(&body, &signature)
                    ));
                }
                return Reply::Rejected(WebhookRejection::Signature(error));
            }
        };
        let delivery = VerifiedBody::new(body, verified).with_headers(headers);
        match &self.intake {
            Intake::Dispatch(dispatcher) => Reply::Outcome(dispatcher.dispatch(delivery).await),
            Intake::Inbox(inbox) => match inbox.store(&delivery).await {
                Ok(stored) => Reply::Stored(stored),
                Err(error) => Reply::Rejected(WebhookRejection::Inbox(error)),
            },
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifier", &self.verifier)
            .field(
                "intake",
                &match self.intake {
                    Intake::Dispatch(_) => "dispatch",
                    Intake::Inbox(_) => "inbox",
                },
            )
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// Checks what can be checked before reading the body: content type, declared length and the
/// signature header.
pub(crate) fn check_head(headers: &HeaderMap, limit: usize) -> Result<Signature, WebhookRejection> {
    check_content_type(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(WebhookRejection::PayloadTooLarge);
    }
    Signature::from_headers(headers).map_err(WebhookRejection::Signature)
}

/// Checks that the body read has the length its `Content-Length` declares. An HTTP server
/// frames the body by that header, so over a socket the two always agree; a request handed over
/// in process (a test harness, a custom transport) has no such guarantee, and a body that
/// disagrees with its own framing is not the request that was sent. A `Content-Length` that is
/// not a number is wrong framing too.
pub(crate) fn check_length(headers: &HeaderMap, received: usize) -> Result<(), WebhookRejection> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(());
    };
    let declared = value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared == Some(received as u64) {
        Ok(())
    } else {
        Err(WebhookRejection::UnreadableBody)
    }
}

/// Accepts a missing content type, `application/json` (any parameters) and `*/*+json`.
fn check_content_type(headers: &HeaderMap) -> Result<(), WebhookRejection> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = essence == "application/json"
        || essence
            .split_once('/')
            .is_some_and(|(_, subtype)| subtype.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(WebhookRejection::UnsupportedMediaType)
    }
}

/// What a receiver answers, before it is turned into a framework's response.
#[derive(Debug)]
pub(crate) enum Reply {
    Outcome(Outcome),
    Stored(Stored),
    Rejected(WebhookRejection),
}

impl Reply {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Outcome(outcome) => outcome.status(),
            Self::Stored(Stored::Duplicate) => StatusCode::OK,
            Self::Stored(_) => StatusCode::ACCEPTED,
            Self::Rejected(rejection) => rejection.status(),
        }
    }

    /// One short, generic line: no secret, no body, no parse detail.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::Outcome(outcome) => match outcome.status() {
                StatusCode::OK => "ok",
                StatusCode::UNPROCESSABLE_ENTITY => "unprocessable webhook body",
                StatusCode::CONFLICT => "delivery already in progress, retry later",
                StatusCode::SERVICE_UNAVAILABLE => "temporarily unavailable, retry later",
                _ => "webhook handler failed",
            },
            Self::Stored(Stored::Duplicate) => "ok",
            Self::Stored(_) => "accepted",
            Self::Rejected(rejection) => rejection.message(),
        }
    }

    /// Seconds for a `Retry-After` header, on 503 answers.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        (self.status() == StatusCode::SERVICE_UNAVAILABLE).then(|| match self {
            Self::Rejected(rejection) => rejection.retry_after().as_secs(),
            _ => RETRY_AFTER.as_secs(),
        })
    }

    /// Logs what happened, without secret or body.
    pub(crate) fn log(&self) {
        match self {
            Self::Outcome(Outcome::Handled { .. } | Outcome::Duplicate) | Self::Stored(_) => {}
            Self::Outcome(outcome) => log::warn(format_args!(
                "propexo webhook: answered {}: {}",
                outcome.status(),
                OutcomeDetail(outcome)
            )),
            Self::Rejected(rejection) => log::warn(format_args!(
                "propexo webhook: rejected with {}: {rejection}",
                rejection.status()
            )),
        }
    }
}

/// `Retry-After` for a 503: long enough for a store to come back, far shorter than Propexo's own
/// 15 minutes between retries.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// `Retry-After` for a full in-memory inbox: workers free room within seconds.
const RETRY_AFTER_FULL: Duration = Duration::from_secs(5);

struct OutcomeDetail<'a>(&'a Outcome);

impl fmt::Display for OutcomeDetail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Outcome::Failed(errors) => write!(f, "{errors}"),
            Outcome::Malformed(malformed) => match malformed.handler_error() {
                Some(failure) => write!(f, "{}; {failure}", malformed.error()),
                None => write!(f, "{}", malformed.error()),
            },
            Outcome::StoreUnavailable(error) => write!(f, "idempotency store: {error}"),
            Outcome::InProgress => f.write_str("another copy of this delivery is in progress"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Why a receiver or extractor refused a request, before any handler ran.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// The content type is set and is not JSON: 415.
    UnsupportedMediaType,
    /// The body is over the receiver's limit: 413.
    PayloadTooLarge,
    /// The body did not arrive within the receiver's body timeout: 408.
    BodyTimeout,
    /// The body could not be read (the connection failed, the framing was wrong, or it is not
    /// as long as its `Content-Length` says): 400.
    UnreadableBody,
    /// The signature header is missing or malformed (400), or does not match (401).
    Signature(Error),
    /// The body is verified but is not a valid event (extractors only; the receiver hands it
    /// to the dispatcher's `on_malformed`): 422.
    Malformed(Error),
    /// The inbox could not store the delivery (unreachable, full, shut down): 503.
    Inbox(InboxError),
}

impl WebhookRejection {
    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::Signature(Error::SignatureMismatch) => StatusCode::UNAUTHORIZED,
            Self::Signature(_) => StatusCode::BAD_REQUEST,
            Self::Malformed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Inbox(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// How long to tell Propexo to wait, for a 503.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Inbox(InboxError::Full) => RETRY_AFTER_FULL,
            _ => RETRY_AFTER,
        }
    }

    /// The short, generic line sent as the response body.
    pub fn message(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType => "unsupported content type: expected application/json",
            Self::PayloadTooLarge => "payload too large",
            Self::BodyTimeout => "request body timed out",
            Self::UnreadableBody => "unreadable request body",
            Self::Signature(Error::SignatureMismatch) => "invalid signature",
            Self::Signature(_) => "missing or malformed propexo-signature header",
            Self::Malformed(_) => "unprocessable webhook body",
            Self::Inbox(_) => "temporarily unavailable, retry later",
        }
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature(error) | Self::Malformed(error) => write!(f, "{error}"),
            Self::Inbox(error) => write!(f, "{error}"),
            other => f.write_str(other.message()),
        }
    }
}

impl std::error::Error for WebhookRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Signature(error) | Self::Malformed(error) => Some(error),
            Self::Inbox(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
        headers
    }

    #[test]
    fn json_content_types_are_accepted() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.propexo+json",
        ] {
            assert!(
                check_content_type(&with_content_type(value)).is_ok(),
                "{value}"
            );
        }
        assert!(check_content_type(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn a_body_must_have_the_length_it_declares() {
        let with_length = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, value.parse().unwrap());
            headers
        };
        assert!(check_length(&HeaderMap::new(), 42).is_ok());
        assert!(check_length(&with_length("42"), 42).is_ok());
        for (declared, received) in [("41", 42), ("43", 42), ("0", 1), ("4x", 42), ("", 0)] {
            assert!(
                matches!(
                    check_length(&with_length(declared), received),
                    Err(WebhookRejection::UnreadableBody)
                ),
                "{declared} declared, {received} received"
            );
        }
    }

    #[test]
    fn other_content_types_are_refused() {
        for value in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "",
        ] {
            assert!(
                matches!(
                    check_content_type(&with_content_type(value)),
                    Err(WebhookRejection::UnsupportedMediaType)
                ),
                "{value}"
            );
        }
    }
}
