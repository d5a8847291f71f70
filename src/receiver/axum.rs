//! axum 0.8: extractors that verify before they parse, and a complete receiver route.
//!
//! ```no_run
//! use axum::Router;
//! use propexo_webhooks::{Delivery, Dispatcher, EventType, Receiver, Verifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(std::env::var("PROPEXO_WEBHOOK_SECRET")?)?;
//! let dispatcher = Dispatcher::new().on(EventType::DataUpdate, |delivery: Delivery| async move {
//!     println!("{:?} changed", delivery.event().object());
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let app = Router::new().route(
//!     "/webhooks/propexo",
//!     propexo_webhooks::axum::route(Receiver::new(verifier, dispatcher)),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use ::axum::body::Body;
use ::axum::extract::{FromRef, FromRequest, Request};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{MethodRouter, post};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::{DEFAULT_BODY_LIMIT, Receiver, Reply, WebhookRejection, check_head, check_length};
use crate::{VerifiedBody, Verifier, WebhookEvent};

/// The route of a complete receiver: `POST` only, answering per the [`Receiver`]'s status table.
///
/// ```
/// # use propexo_webhooks::{Dispatcher, Receiver, Verifier};
/// # let receiver = Receiver::new(Verifier::new("my-webhook-secret")?, Dispatcher::new());
/// let app: axum::Router = axum::Router::new()
///     .route("/webhooks/propexo", propexo_webhooks::axum::route(receiver));
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
pub fn route<S>(receiver: Receiver) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let receiver = Arc::new(receiver);
    post(move |request: Request| {
        let receiver = receiver.clone();
        async move { receive(&receiver, request).await }
    })
}

async fn receive(receiver: &Receiver, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let reply = match receiver.check_head(&parts.headers) {
        Err(rejection) => Reply::Rejected(rejection),
        Ok(signature) => match receiver.read_body(read_body(body, receiver.limit())).await {
            Err(rejection) => Reply::Rejected(rejection),
            Ok(bytes) => receiver.receive(parts.headers, bytes, &signature).await,
        },
    };
    reply.log();
    respond(reply.status(), reply.message(), reply.retry_after())
}

/// Reads the body, refusing it as soon as it grows past `limit`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, WebhookRejection> {
    ::axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            WebhookRejection::PayloadTooLarge
        } else {
            WebhookRejection::UnreadableBody
        }
    })
}

fn respond(status: StatusCode, message: &'static str, retry_after: Option<u64>) -> Response {
    let mut response = (status, message).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::Inbox(_) => Some(self.retry_after().as_secs()),
            _ => None,
        };
        respond(self.status(), self.message(), retry_after)
    }
}

/// The body limit the extractors apply, as a request extension; without one they use
/// [`DEFAULT_BODY_LIMIT`].
///
/// ```
/// # use axum::{Extension, Router, routing::post};
/// # use propexo_webhooks::{Verifier, axum::{BodyLimit, Webhook}};
/// async fn handler(webhook: Webhook) {}
/// let app: Router = Router::new()
///     .route("/webhooks/propexo", post(handler))
///     .layer(Extension(BodyLimit(16 * 1024 * 1024)))
///     .with_state(Verifier::new("my-webhook-secret")?);
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// Extracts the raw body of a request whose `propexo-signature` verifies, with the
/// [`Verifier`] taken from the router's state (`Verifier: FromRef<S>`). It reads the raw bytes
/// itself: no JSON extractor runs first, nothing is re-serialized.
impl<S> FromRequest<S> for VerifiedBody
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
        let (parts, body) = request.into_parts();
        let signature = check_head(&parts.headers, limit)?;
        let bytes = read_body(body, limit).await?;
        check_length(&parts.headers, bytes.len())?;
        let verified = Verifier::from_ref(state)
            .verify_parsed(&bytes, &signature)
            .map_err(WebhookRejection::Signature)?;
        Ok(VerifiedBody::new(bytes, verified).with_headers(parts.headers))
    }
}

/// A verified, parsed Propexo delivery, for use in any axum handler.
///
/// Verifies the raw body with the [`Verifier`] from the router's state, then parses it. A
/// rejection answers per the [`Receiver`]'s status table (400, 401, 413, 415), and 422 for a
/// verified body that is not a valid event.
///
/// ```
/// use axum::{Router, routing::post};
/// use propexo_webhooks::{Verifier, WebhookEvent, axum::Webhook};
///
/// async fn handler(Webhook { event, .. }: Webhook) -> &'static str {
///     if let WebhookEvent::JobFailure(job) = &event {
///         eprintln!("job {:?} failed", job.job_id);
///     }
///     "ok"
/// }
///
/// let app: Router = Router::new()
///     .route("/webhooks/propexo", post(handler))
///     .with_state(Verifier::new("my-webhook-secret")?);
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Webhook {
    /// The parsed event.
    pub event: WebhookEvent,
    /// The raw, verified body, which secret matched, and the request headers.
    pub body: VerifiedBody,
}

impl<S> FromRequest<S> for Webhook
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebhookRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = VerifiedBody::from_request(request, state).await?;
        let event = WebhookEvent::from_slice(body.body()).map_err(WebhookRejection::Malformed)?;
        Ok(Self { event, body })
    }
}
