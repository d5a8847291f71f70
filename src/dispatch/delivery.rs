//! What the dispatcher takes in and what handlers receive.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::{Error, Signature, Verified, Verifier, WebhookEvent};

/// A request body whose `propexo-signature` was verified: the only input the
/// [`Dispatcher`](crate::Dispatcher) accepts, so nothing unverified reaches a handler.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
/// use propexo_webhooks::{Verifier, VerifiedBody};
///
/// let verifier = Verifier::new("my-webhook-secret")?;
/// let body = br#"{"event":"JOB_FAILURE","job_id":"JOB_ID_002"}"#;
/// let mut headers = HeaderMap::new();
/// headers.insert("propexo-signature", verifier.sign(body).parse().unwrap());
///
/// let verified = VerifiedBody::verify(&verifier, headers, body.to_vec())?;
/// assert_eq!(verified.body().as_ref(), body);
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct VerifiedBody {
    pub(crate) body: Bytes,
    pub(crate) verified: Verified,
    pub(crate) headers: Option<HeaderMap>,
}

impl VerifiedBody {
    /// Verifies the request's `propexo-signature` header against `body` and keeps both.
    ///
    /// # Errors
    ///
    /// Any error of [`Verifier::verify_headers`].
    pub fn verify(
        verifier: &Verifier,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Result<Self, Error> {
        let body = body.into();
        let verified = verifier.verify_headers(&headers, &body)?;
        Ok(Self {
            body,
            verified,
            headers: Some(headers),
        })
    }

    /// Verifies `signature` (a `propexo-signature` value) against `body` and keeps both: for a
    /// delivery stored before it was handled (see `QueueJournal`), verified again on replay. It
    /// has no request headers.
    ///
    /// # Errors
    ///
    /// Any error of [`Verifier::verify`].
    pub fn verify_signature(
        verifier: &Verifier,
        body: impl Into<Bytes>,
        signature: &str,
    ) -> Result<Self, Error> {
        let body = body.into();
        let verified = verifier.verify(&body, signature)?;
        Ok(Self::new(body, verified))
    }

    /// A body with the proof that it was verified; only this crate's adapters, which have just
    /// verified `body`, pair the two.
    pub(crate) fn new(body: Bytes, verified: Verified) -> Self {
        Self {
            body,
            verified,
            headers: None,
        }
    }

    /// Attaches the request headers, for handlers that read custom headers.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }

    /// The raw body, exactly as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Which secret verified it, and the signature.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// The request headers, if they were kept.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_ref()
    }
}

impl fmt::Debug for VerifiedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBody")
            .field("body_len", &self.body.len())
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

/// One verified, parsed delivery: what a handler receives.
///
/// Cheap to clone (the contents are shared), so several handlers each get their own.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<DeliveryInner>,
}

struct DeliveryInner {
    event: WebhookEvent,
    source: VerifiedBody,
}

impl Delivery {
    pub(crate) fn new(event: WebhookEvent, source: VerifiedBody) -> Self {
        Self {
            inner: Arc::new(DeliveryInner { event, source }),
        }
    }

    /// The typed event.
    pub fn event(&self) -> &WebhookEvent {
        &self.inner.event
    }

    /// The raw body, exactly as received and verified.
    pub fn body(&self) -> &Bytes {
        &self.inner.source.body
    }

    /// The verified signature.
    pub fn signature(&self) -> &Signature {
        self.inner.source.verified.signature()
    }

    /// Which secret verified the delivery.
    pub fn verified(&self) -> &Verified {
        &self.inner.source.verified
    }

    /// The request headers, when the delivery came with them.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.inner.source.headers.as_ref()
    }

    pub(crate) fn source(&self) -> &VerifiedBody {
        &self.inner.source
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.inner.event)
            .field("verified", &self.inner.source.verified)
            .finish_non_exhaustive()
    }
}

/// A verified body that is not a valid event, handed to the
/// [`on_malformed`](crate::Dispatcher::on_malformed) handler so it can be stored, not lost.
#[derive(Clone)]
pub struct MalformedDelivery {
    pub(crate) source: VerifiedBody,
    pub(crate) error: Error,
}

impl MalformedDelivery {
    /// The raw body, exactly as received and verified.
    pub fn body(&self) -> &Bytes {
        &self.source.body
    }

    /// Why it does not parse.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Which secret verified the delivery, and the signature.
    pub fn verified(&self) -> &Verified {
        &self.source.verified
    }

    /// The request headers, when the delivery came with them.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.source.headers.as_ref()
    }
}

impl fmt::Debug for MalformedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MalformedDelivery")
            .field("body_len", &self.source.body.len())
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}
