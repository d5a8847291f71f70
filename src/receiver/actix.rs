//! actix-web 4: extractors that verify before they parse, and a complete receiver service.
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use propexo_webhooks::{Delivery, Dispatcher, EventType, Receiver, Verifier};
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let verifier = Verifier::new(std::env::var("PROPEXO_WEBHOOK_SECRET")?)?;
//!     let dispatcher = Dispatcher::new().on(EventType::DataUpdate, |delivery: Delivery| async move {
//!         println!("{:?} changed", delivery.event().object());
//!         Ok::<_, std::convert::Infallible>(())
//!     });
//!     let receiver = Receiver::new(verifier, dispatcher);
//!     HttpServer::new(move || {
//!         App::new().configure(propexo_webhooks::actix::service(
//!             "/webhooks/propexo",
//!             receiver.clone(),
//!         ))
//!     })
//!     .bind(("127.0.0.1", 3000))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! actix-web 4 is built on `http` 0.2 while this crate uses `http` 1: the adapter copies the
//! request headers across before checking them, so handlers see them as an `http::HeaderMap`.
//! Neither the receiver nor the extractors use actix-web's `PayloadConfig` (whose default limit
//! of 256 kB would refuse large Propexo records): they read the raw body themselves, up to the
//! receiver's limit or a [`BodyLimit`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ::actix_web::body::{BodyStream, to_bytes_limited};
use ::actix_web::error::PayloadError;
use ::actix_web::http::StatusCode as ActixStatus;
use ::actix_web::http::header as actix_header;
use ::actix_web::web::{self, ServiceConfig};
use ::actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{DEFAULT_BODY_LIMIT, Receiver, Reply, WebhookRejection, check_head, check_length, log};
use crate::{SIGNATURE_HEADER, VerifiedBody, Verifier, WebhookEvent};

/// The service of a complete receiver, for [`App::configure`](actix_web::App::configure):
/// `POST` on `path` only (other methods get 405), answering per the [`Receiver`]'s status
/// table.
///
/// Call it once per worker in the `HttpServer` factory; cloning a [`Receiver`] is cheap and
/// every clone shares its dispatcher (and idempotency store) or inbox.
///
/// # Examples
///
/// ```
/// use actix_web::{App, test};
/// use propexo_webhooks::{Dispatcher, Receiver, Verifier};
///
/// # actix_web::rt::System::new().block_on(async {
/// let verifier = Verifier::new("my-webhook-secret")?;
/// let receiver = Receiver::new(verifier.clone(), Dispatcher::new());
/// let app = test::init_service(
///     App::new().configure(propexo_webhooks::actix::service("/webhooks/propexo", receiver)),
/// )
/// .await;
///
/// let body = r#"{"event":"JOB_FAILURE","job_id":"JOB_ID_002"}"#;
/// let delivery = test::TestRequest::post()
///     .uri("/webhooks/propexo")
///     .insert_header(("content-type", "application/json"))
///     .insert_header(("propexo-signature", verifier.sign(body.as_bytes())))
///     .set_payload(body)
///     .to_request();
/// assert_eq!(test::call_service(&app, delivery).await.status(), 200);
///
/// let unsigned = test::TestRequest::post().uri("/webhooks/propexo").set_payload(body);
/// assert_eq!(test::call_service(&app, unsigned.to_request()).await.status(), 400);
/// let get = test::TestRequest::get().uri("/webhooks/propexo");
/// assert_eq!(test::call_service(&app, get.to_request()).await.status(), 405);
/// # Ok::<(), propexo_webhooks::Error>(())
/// # })?;
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
pub fn service(path: &str, receiver: Receiver) -> impl FnOnce(&mut ServiceConfig) + use<> {
    let path = path.to_owned();
    let receiver = Arc::new(receiver);
    move |config| {
        config.service(web::resource(path).route(web::post().to(
            move |request: HttpRequest, payload: web::Payload| {
                let receiver = receiver.clone();
                async move { receive(&receiver, &request, payload.into_inner()).await }
            },
        )));
    }
}

async fn receive(
    receiver: &Receiver,
    request: &HttpRequest,
    payload: dev::Payload,
) -> HttpResponse {
    let headers = to_http1(request.headers());
    let reply = match receiver.check_head(&headers) {
        Err(rejection) => Reply::Rejected(rejection),
        Ok(signature) => match receiver
            .read_body(read_body(payload, receiver.limit()))
            .await
        {
            Err(rejection) => Reply::Rejected(rejection),
            Ok(bytes) => receiver.receive(headers, bytes, &signature).await,
        },
    };
    reply.log();
    respond(reply.status(), reply.message(), reply.retry_after())
}

/// Reads the body chunk by chunk, refusing it as soon as it grows past `limit`.
async fn read_body(payload: dev::Payload, limit: usize) -> Result<Bytes, WebhookRejection> {
    match to_bytes_limited(BodyStream::new(payload), limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Err(_) | Ok(Err(PayloadError::Overflow)) => Err(WebhookRejection::PayloadTooLarge),
        Ok(Err(_)) => Err(WebhookRejection::UnreadableBody),
    }
}

/// Copies actix-web's request headers (`http` 0.2) into an `http` 1 map, keeping every value
/// of a repeated header.
fn to_http1(headers: &actix_header::HeaderMap) -> HeaderMap {
    convert_headers(
        headers.len(),
        headers
            .iter()
            .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes())),
    )
}

/// Builds an `http` 1 map from raw header names and values, without ever panicking.
///
/// What `http` 1 refuses (nothing that `http` 0.2 accepted, today) is skipped, except a
/// `propexo-signature` value: it becomes an empty value instead, so that it still counts.
/// Alone it is refused as an empty signature; beside another value, as
/// [`MultipleSignatures`](crate::Error::MultipleSignatures). Either way the answer is 400, and a
/// second signature never disappears on the way.
fn convert_headers<'a>(
    capacity: usize,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> HeaderMap {
    let mut converted = HeaderMap::with_capacity(capacity);
    for (name, value) in headers {
        let Ok(name) = HeaderName::from_bytes(name) else {
            continue;
        };
        match HeaderValue::from_bytes(value) {
            Ok(value) => {
                converted.append(name, value);
            }
            Err(_) if name == SIGNATURE_HEADER => {
                converted.append(name, HeaderValue::from_static(""));
            }
            Err(_) => {}
        }
    }
    converted
}

/// A plain-text answer, with `Retry-After` when given.
fn respond(status: StatusCode, message: &'static str, retry_after: Option<u64>) -> HttpResponse {
    let status =
        ActixStatus::from_u16(status.as_u16()).unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((
        actix_header::CONTENT_TYPE,
        actix_header::HeaderValue::from_static("text/plain; charset=utf-8"),
    ));
    if let Some(seconds) = retry_after {
        response.insert_header((
            actix_header::RETRY_AFTER,
            actix_header::HeaderValue::from(seconds),
        ));
    }
    response.body(message)
}

/// Answers with the rejection's status and short message (and `Retry-After` for an inbox
/// error), so extractor failures follow the [`Receiver`]'s status table.
///
/// # Examples
///
/// ```
/// use actix_web::ResponseError;
/// use propexo_webhooks::WebhookRejection;
///
/// let response = WebhookRejection::PayloadTooLarge.error_response();
/// assert_eq!(response.status().as_u16(), 413);
/// ```
impl ResponseError for WebhookRejection {
    fn status_code(&self) -> ActixStatus {
        ActixStatus::from_u16(self.status().as_u16()).unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let retry_after = match self {
            Self::Inbox(_) => Some(self.retry_after().as_secs()),
            _ => None,
        };
        respond(self.status(), self.message(), retry_after)
    }
}

/// The body limit the extractors apply, registered as app data (plain, or in a `web::Data`);
/// without one they use [`DEFAULT_BODY_LIMIT`]. actix-web's own `PayloadConfig` does not apply.
///
/// # Examples
///
/// ```
/// use actix_web::{App, web};
/// use propexo_webhooks::{VerifiedBody, Verifier, actix::BodyLimit};
///
/// async fn handler(body: VerifiedBody) -> String {
///     format!("{} bytes", body.body().len())
/// }
///
/// let app = App::new()
///     .app_data(Verifier::new("my-webhook-secret")?)
///     .app_data(BodyLimit(16 * 1024 * 1024))
///     .route("/webhooks/propexo", web::post().to(handler));
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// A boxed extractor future; actix-web runs extractors on the worker's thread, so it need
/// not be `Send`.
type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, ::actix_web::Error>>>>;

/// Extracts the raw body of a request whose `propexo-signature` verifies, with the
/// [`Verifier`] taken from the app data: registered as `web::Data<Verifier>` or as a plain
/// `Verifier` (`.app_data(verifier.clone())`). It reads the raw bytes itself: no JSON extractor
/// runs first, nothing is re-serialized.
///
/// Its error is an `actix_web::Error` that answers per the [`Receiver`]'s status table (400,
/// 401, 413, 415); `error.as_error::<WebhookRejection>()` gives the [`WebhookRejection`]. If no
/// `Verifier` is registered, every request fails with 500 and an error is logged (feature
/// `tracing`).
///
/// # Examples
///
/// ```
/// use actix_web::{App, HttpResponse, web};
/// use propexo_webhooks::{VerifiedBody, Verifier};
///
/// async fn handler(body: VerifiedBody) -> HttpResponse {
///     // Authentic: store `body.body()` for later processing.
///     HttpResponse::Ok().finish()
/// }
///
/// let app = App::new()
///     .app_data(web::Data::new(Verifier::new("my-webhook-secret")?))
///     .route("/webhooks/propexo", web::post().to(handler));
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
impl FromRequest for VerifiedBody {
    type Error = ::actix_web::Error;
    type Future = Extracting<Self>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let verifier = registered_verifier(request);
        let limit = registered_limit(request);
        let headers = to_http1(request.headers());
        let payload = payload.take();
        Box::pin(async move {
            let Some(verifier) = verifier else {
                log::error(format_args!(
                    "propexo webhook: no Verifier in the app data: register one with \
                     `App::app_data(web::Data::new(verifier))` or `App::app_data(verifier)`"
                ));
                return Err(::actix_web::error::ErrorInternalServerError(
                    "webhook receiver is not configured",
                ));
            };
            let signature = check_head(&headers, limit)?;
            let bytes = read_body(payload, limit).await?;
            check_length(&headers, bytes.len())?;
            let verified = verifier
                .verify_parsed(&bytes, &signature)
                .map_err(WebhookRejection::Signature)?;
            Ok(VerifiedBody::new(bytes, verified).with_headers(headers))
        })
    }
}

fn registered_verifier(request: &HttpRequest) -> Option<Verifier> {
    request
        .app_data::<web::Data<Verifier>>()
        .map(|verifier| verifier.get_ref().clone())
        .or_else(|| request.app_data::<Verifier>().cloned())
}

fn registered_limit(request: &HttpRequest) -> usize {
    request
        .app_data::<BodyLimit>()
        .copied()
        .or_else(|| {
            request
                .app_data::<web::Data<BodyLimit>>()
                .map(|limit| *limit.get_ref())
        })
        .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0)
}

/// A verified, parsed Propexo delivery, for use in any actix-web handler.
///
/// Verifies the raw body with the [`Verifier`] from the app data (see [`VerifiedBody`]'s
/// extractor), then parses it. A failure answers per the [`Receiver`]'s status table (400,
/// 401, 413, 415), and 422 for a verified body that is not a valid event.
///
/// # Examples
///
/// ```
/// use actix_web::{App, web};
/// use propexo_webhooks::{Verifier, WebhookEvent, actix::Webhook};
///
/// async fn handler(Webhook { event, .. }: Webhook) -> &'static str {
///     if let WebhookEvent::JobFailure(job) = &event {
///         eprintln!("job {:?} failed", job.job_id);
///     }
///     "ok"
/// }
///
/// let verifier = Verifier::new("my-webhook-secret")?;
/// let app = App::new()
///     .app_data(verifier.clone())
///     .route("/webhooks/propexo", web::post().to(handler));
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

impl FromRequest for Webhook {
    type Error = ::actix_web::Error;
    type Future = Extracting<Self>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let body = VerifiedBody::from_request(request, payload);
        Box::pin(async move {
            let body = body.await?;
            let event =
                WebhookEvent::from_slice(body.body()).map_err(WebhookRejection::Malformed)?;
            Ok(Self { event, body })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Signature};

    fn convert(headers: &[(&[u8], &[u8])]) -> HeaderMap {
        convert_headers(headers.len(), headers.iter().copied())
    }

    #[test]
    fn repeated_headers_keep_every_value() {
        let converted = convert(&[
            (b"propexo-signature", b"aa"),
            (b"x-other", b"1"),
            (b"propexo-signature", b"bb"),
        ]);
        assert_eq!(converted.get_all(SIGNATURE_HEADER).iter().count(), 2);
        assert!(matches!(
            Signature::from_headers(&converted),
            Err(Error::MultipleSignatures)
        ));
    }

    #[test]
    fn odd_bytes_are_skipped_but_a_signature_still_counts() {
        let valid = "ab".repeat(32);
        let converted = convert(&[
            (b"bad header name", b"x"),
            (b"x-control", b"\x7f"),
            (b"x-obs-text", b"caf\xe9"),
            (b"propexo-signature", b"\x00"),
            (b"propexo-signature", valid.as_bytes()),
        ]);
        assert_eq!(converted.len(), 3, "{converted:?}");
        assert_eq!(converted["x-obs-text"].as_bytes(), b"caf\xe9");
        assert!(matches!(
            Signature::from_headers(&converted),
            Err(Error::MultipleSignatures)
        ));

        let alone = convert(&[(b"propexo-signature", b"\x00")]);
        assert!(matches!(
            Signature::from_headers(&alone),
            Err(Error::EmptySignature)
        ));
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Webhook>();
        assert_send_sync::<BodyLimit>();
        assert_send_sync::<Receiver>();
    }

    #[test]
    fn every_rejection_maps_to_its_actix_status() {
        let rejections = [
            WebhookRejection::UnsupportedMediaType,
            WebhookRejection::PayloadTooLarge,
            WebhookRejection::UnreadableBody,
            WebhookRejection::Signature(Error::SignatureMismatch),
            WebhookRejection::Signature(Error::MissingSignature),
            WebhookRejection::Malformed(WebhookEvent::from_slice(b"[]").unwrap_err()),
        ];
        for rejection in rejections {
            let response = rejection.error_response();
            assert_eq!(response.status().as_u16(), rejection.status().as_u16());
            assert_eq!(
                rejection.status_code().as_u16(),
                rejection.status().as_u16()
            );
            assert!(response.headers().get(actix_header::RETRY_AFTER).is_none());
        }
    }
}
