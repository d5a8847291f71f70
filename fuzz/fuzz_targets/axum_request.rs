//! The whole axum request path: arbitrary method, headers and body through the receiver route.
//!
//! Input: `[method, header_count, (name_len, value_len, name.., value..)*, body..]`, lengths cut
//! to what is there; every third input gets a signature made with the right secret over its
//! body, so the verified path (parse, dispatch) is reached as often as the rejections. Checked:
//!
//! - the answer is one of the receiver's documented statuses;
//! - a handler (route, fallback or `on_malformed`) ran only if the request's one
//!   `propexo-signature` header holds the body's MAC under the receiver's secret, and the body
//!   was a POST;
//! - a 2xx answer, or a handler run, never happens for a request that does not verify;
//! - the answer is short and never holds the secret.

#![no_main]

use std::convert::Infallible;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use propexo_webhooks::{
    Delivery, Dispatcher, MalformedDelivery, Receiver, SIGNATURE_HEADER, Signature, Verifier, sign,
};
use tower::ServiceExt;

const SECRET: &str = "propexo-fuzz-secret-5c1e";
const PATH: &str = "/webhooks/propexo";

static HANDLED: AtomicUsize = AtomicUsize::new(0);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
});

static APP: LazyLock<Router> = LazyLock::new(|| {
    let mut dispatcher = Dispatcher::new();
    for trigger in propexo_webhooks::EventType::KNOWN {
        dispatcher = dispatcher.on(trigger.clone(), |_: Delivery| {
            HANDLED.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        });
    }
    let dispatcher = dispatcher
        .fallback(|_: Delivery| {
            HANDLED.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        })
        .on_malformed(|_: MalformedDelivery| {
            HANDLED.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        });
    let receiver = Receiver::new(Verifier::new(SECRET).expect("a valid secret"), dispatcher)
        .body_limit(64 * 1024);
    Router::new().route(PATH, propexo_webhooks::axum::route(receiver))
});

const STATUSES: [u16; 11] = [200, 400, 401, 405, 408, 409, 413, 415, 422, 500, 503];

fuzz_target!(|data: &[u8]| {
    let Some(request) = build(data) else {
        return;
    };
    let verifies = verifies(&request);
    let request = request.map(Body::from);
    HANDLED.store(0, Ordering::SeqCst);
    let (status, answer) = RUNTIME.block_on(async {
        let response = APP.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, body)
    });
    assert!(
        STATUSES.contains(&status.as_u16()),
        "undocumented status {status}"
    );
    let handled = HANDLED.load(Ordering::SeqCst);
    if !verifies {
        assert_eq!(
            handled, 0,
            "a handler ran for a request that does not verify"
        );
        assert!(
            !status.is_success(),
            "{status} for a request that does not verify"
        );
    }
    if status == StatusCode::OK {
        assert_eq!(
            handled, 1,
            "acknowledged without running exactly one handler"
        );
    }
    assert!(answer.len() < 80, "a long answer");
    let secret = SECRET.as_bytes();
    assert!(!answer.windows(secret.len()).any(|window| window == secret));
});

/// Whether the request is a POST whose one signature header is the body's MAC.
fn verifies(request: &Request<bytes::Bytes>) -> bool {
    let mut values = request.headers().get_all(SIGNATURE_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let expected = sign(SECRET, request.body());
    request.method() == Method::POST
        && value
            .to_str()
            .ok()
            .and_then(|value| Signature::parse(value).ok())
            .is_some_and(|signature| signature.to_string() == expected)
}

fn build(data: &[u8]) -> Option<Request<bytes::Bytes>> {
    let (&method, rest) = data.split_first()?;
    let (&count, mut rest) = rest.split_first().unwrap_or((&0, &[]));
    let mut request = Request::new(bytes::Bytes::new());
    *request.method_mut() = match method % 4 {
        0 | 1 => Method::POST,
        2 => Method::GET,
        _ => Method::PUT,
    };
    *request.uri_mut() = PATH.parse().ok()?;
    for _ in 0..count % 8 {
        let [name_len, value_len, tail @ ..] = rest else {
            break;
        };
        let (name, tail) = tail.split_at(usize::from(*name_len % 32).min(tail.len()));
        let (value, tail) = tail.split_at(usize::from(*value_len).min(tail.len()));
        rest = tail;
        // Names from a few that matter, or the bytes themselves when they make a name.
        let name = match name.first().map(|byte| byte % 5) {
            Some(0) => HeaderName::from_static(SIGNATURE_HEADER),
            Some(1) => http::header::CONTENT_TYPE,
            Some(2) => http::header::CONTENT_LENGTH,
            _ => match HeaderName::from_bytes(name) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append(name, value);
        }
    }
    *request.body_mut() = bytes::Bytes::copy_from_slice(rest);
    if method % 3 == 0 {
        let signature = sign(SECRET, rest);
        request
            .headers_mut()
            .insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).ok()?);
    }
    Some(request)
}
