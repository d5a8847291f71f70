//! Signed requests for your own tests: one call gives an `http::Request` that a receiver
//! accepts, for any event or JSON body.
//!
//! ```
//! use propexo_webhooks::{WebhookEvent, testkit};
//!
//! let body = r#"{"event":"JOB_FAILURE","job_id":"JOB_ID_002"}"#;
//! let request = testkit::signed_request("/webhooks/propexo", "my-webhook-secret", body);
//! assert_eq!(request.headers()["content-type"], "application/json");
//! assert_eq!(
//!     request.headers()["propexo-signature"],
//!     propexo_webhooks::sign("my-webhook-secret", body.as_bytes()).as_str()
//! );
//!
//! let event: WebhookEvent = body.parse()?;
//! let request = testkit::signed_event_request("/webhooks/propexo", "my-webhook-secret", &event)?;
//! assert_eq!(request.method(), http::Method::POST);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};

use crate::{SIGNATURE_HEADER, WebhookEvent, sign};

/// A `POST` of `body` to `uri`, signed with `secret` as Propexo signs it, with
/// `Content-Type: application/json`.
///
/// # Panics
///
/// If `uri` is not a valid request URI: this is a test helper, fed by the test's own constants.
pub fn signed_request(
    uri: &str,
    secret: impl AsRef<[u8]>,
    body: impl Into<Bytes>,
) -> Request<Bytes> {
    let body = body.into();
    let signature = sign(secret, &body);
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    #[allow(clippy::expect_used)]
    {
        *request.uri_mut() = uri.parse().expect("a valid request URI");
    }
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Lowercase hex is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(SIGNATURE_HEADER, value);
    }
    request
}

/// A signed `POST` of `event`, serialized in Propexo's envelope form.
///
/// # Errors
///
/// If the event cannot be serialized (it always can, unless it holds a value JSON cannot
/// represent).
///
/// # Panics
///
/// If `uri` is not a valid request URI.
pub fn signed_event_request(
    uri: &str,
    secret: impl AsRef<[u8]>,
    event: &WebhookEvent,
) -> Result<Request<Bytes>, serde_json::Error> {
    Ok(signed_request(uri, secret, serde_json::to_vec(event)?))
}
