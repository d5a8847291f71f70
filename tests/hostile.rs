//! Hostile requests: a webhook endpoint is a public URL, and anyone can send it anything.
//!
//! [`cases`] builds one table of bad requests, independent of any web framework: each is an
//! `http::Request<Bytes>`, how its body goes on the wire, and the exact status it must get. The
//! runners below send the table through the axum adapter in process (`tower::ServiceExt::oneshot`)
//! and over a real socket, and through the actix-web adapter (`actix_web::test`, with the
//! `actix-web` feature), and check every answer the same way ([`Harness::check`]): the exact
//! status, no handler run (not a route, not the fallback, not `on_malformed`), and neither the
//! secret nor the body in the answer. A runner for another framework is one more small function
//! over the same table.
//!
//! Requests whose body is verified but is not a valid event go to a receiver without
//! `on_malformed`: 422 and nothing ran. Every other request goes to a receiver where
//! `on_malformed` counts its calls too, and must not reach it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use Received::{Closed, Response};
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use propexo_webhooks::{
    DEFAULT_BODY_LIMIT, Delivery, Dispatcher, EventType, MalformedDelivery, Receiver,
    SIGNATURE_HEADER, Verifier, sign, testkit,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SECRET: &str = "propexo-hostile-secret-7d41";
/// In every body the table sends, so that a body quoted in a log line or an answer is found.
const MARKER: &str = "body-marker-9b2e61";
const PATH: &str = "/webhooks/propexo";
/// The receivers keep the default limit, so the cases over it are what production sees.
const LIMIT: usize = DEFAULT_BODY_LIMIT;
const MIB: usize = 1024 * 1024;
/// Bounds every wait on a socket: a hang fails the test instead of stalling it.
const HANG_GUARD: Duration = Duration::from_secs(30);

// --- the table -------------------------------------------------------------------------------

/// One hostile request and the one status it must get.
struct Case {
    name: &'static str,
    request: Request<Bytes>,
    /// How the body goes on the wire: an `http::Request<Bytes>` alone cannot say "chunked".
    framing: Framing,
    expected: StatusCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// With its length known up front (a `Content-Length` over HTTP/1.1).
    Sized,
    /// In chunks, with no length announced (`Transfer-Encoding: chunked` over HTTP/1.1).
    Chunked,
}

impl Case {
    fn new(name: &'static str, request: Request<Bytes>, expected: StatusCode) -> Self {
        Self {
            name,
            request,
            framing: Framing::Sized,
            expected,
        }
    }

    fn chunked(mut self) -> Self {
        self.framing = Framing::Chunked;
        self
    }

    /// Whether only a raw socket can send it and read the answer (see the socket runner).
    fn needs_a_raw_socket(&self) -> bool {
        self.lies_about_its_length() || self.expected == StatusCode::PAYLOAD_TOO_LARGE
    }

    /// A body that verifies but is not a valid event: only the dispatcher can refuse it, with
    /// 422 when it has no `on_malformed`.
    fn is_verified_but_malformed(&self) -> bool {
        self.expected == StatusCode::UNPROCESSABLE_ENTITY
    }

    /// Whether its `Content-Length` disagrees with its body (or is not a number): a request
    /// that an HTTP client cannot send as built, because the client frames the body itself.
    fn lies_about_its_length(&self) -> bool {
        self.request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|value| {
                value.to_str().ok().and_then(|value| value.parse().ok())
                    != Some(self.request.body().len())
            })
    }
}

/// A valid JOB_FAILURE body carrying the marker.
fn event() -> String {
    format!(
        r#"{{"event":"JOB_FAILURE","integration_id":"INTEGRATION_ID_002","job_id":"{MARKER}","job_type":"READ_RESIDENT_TRANSACTIONS","root_job_id":"ROOT_JOB_ID_002","vendor":"RESMAN"}}"#
    )
}

/// `body`, signed with the receiver's secret, as Propexo sends it.
fn signed(body: impl Into<Bytes>) -> Request<Bytes> {
    testkit::signed_request(PATH, SECRET, body)
}

/// The valid event, signed with `secret`.
fn signed_with(secret: &str) -> Request<Bytes> {
    testkit::signed_request(PATH, secret, event())
}

/// The valid event with its signature header replaced by `value`.
fn with_signature(value: HeaderValue) -> Request<Bytes> {
    let mut request = signed(event());
    request.headers_mut().insert(SIGNATURE_HEADER, value);
    request
}

fn with_signature_str(value: &str) -> Request<Bytes> {
    with_signature(HeaderValue::from_str(value).unwrap())
}

/// The valid signature of the valid event.
fn good_signature() -> String {
    sign(SECRET, event().as_bytes())
}

fn with_header(
    mut request: Request<Bytes>,
    name: header::HeaderName,
    value: &str,
) -> Request<Bytes> {
    request
        .headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
    request
}

/// A JSON document nested `depth` levels deep inside `{"a": ...}`, e.g. `{"a":{"a":1}}`.
fn nested_objects(depth: usize) -> String {
    format!(
        r#"{{"marker":"{MARKER}",{}1{}}}"#,
        r#""a":{"#.repeat(depth).trim_end_matches('{'),
        "}".repeat(depth - 1)
    )
}

/// Standard base64 with padding (RFC 4648), small enough not to need a crate.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (i, &byte)| {
            bits | u32::from(byte) << (16 - 8 * i)
        });
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every hostile request, with the exact status the receiver owes it.
fn cases() -> Vec<Case> {
    use StatusCode as S;
    let good = good_signature();
    let wrong_mac = sign("not-the-propexo-secret", event().as_bytes());
    let mut off_by_one = SECRET.to_owned();
    off_by_one.pop();
    off_by_one.push('2');
    let mac_bytes = hex_decode(&good);
    let over_limit = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{MARKER}","x":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let body = event();
    let huge = format!(
        r#"{{"event":"SYNC_COMPLETE","successful_job_count":"{}"}}"#,
        MARKER.repeat(4 * MIB / MARKER.len())
    );

    vec![
        // The signature header.
        Case::new(
            "no signature header",
            {
                let mut request = signed(event());
                request.headers_mut().remove(SIGNATURE_HEADER);
                request
            },
            S::BAD_REQUEST,
        ),
        Case::new(
            "an empty signature header",
            with_signature_str(""),
            S::BAD_REQUEST,
        ),
        Case::new(
            "`sha256=` and nothing else",
            with_signature_str("sha256="),
            S::BAD_REQUEST,
        ),
        Case::new(
            "whitespace only",
            with_signature_str(" \t  "),
            S::BAD_REQUEST,
        ),
        Case::new(
            "an odd number of hex digits (63)",
            with_signature_str(&good[..63]),
            S::BAD_REQUEST,
        ),
        Case::new(
            "a digit that is not hex",
            with_signature_str(&format!("g{}", &good[1..])),
            S::BAD_REQUEST,
        ),
        Case::new(
            "too short (62 hex digits)",
            with_signature_str(&good[..62]),
            S::BAD_REQUEST,
        ),
        Case::new(
            "too long (66 hex digits)",
            with_signature_str(&format!("{good}00")),
            S::BAD_REQUEST,
        ),
        Case::new(
            "the right MAC twice in one value (128 hex digits)",
            with_signature_str(&good.repeat(2)),
            S::BAD_REQUEST,
        ),
        Case::new(
            "the right MAC truncated to 32 hex digits",
            with_signature_str(&good[..32]),
            S::BAD_REQUEST,
        ),
        Case::new(
            "two signature headers, both valid",
            {
                let mut request = signed(event());
                request
                    .headers_mut()
                    .append(SIGNATURE_HEADER, HeaderValue::from_str(&good).unwrap());
                request
            },
            S::BAD_REQUEST,
        ),
        Case::new(
            "two valid signatures, comma-separated in one header",
            with_signature_str(&format!("{good}, {good}")),
            S::BAD_REQUEST,
        ),
        Case::new(
            "the right MAC in base64",
            with_signature_str(&base64(&mac_bytes)),
            S::BAD_REQUEST,
        ),
        Case::new(
            "non-UTF-8 bytes (obs-text) before the right MAC",
            with_signature(
                HeaderValue::from_bytes(&[b"\xff\xfe".as_slice(), good.as_bytes()].concat())
                    .unwrap(),
            ),
            S::BAD_REQUEST,
        ),
        Case::new(
            "non-ASCII UTF-8 after the right MAC",
            with_signature(
                HeaderValue::from_bytes(&[good.as_bytes(), "é".as_bytes()].concat()).unwrap(),
            ),
            S::BAD_REQUEST,
        ),
        // Well-formed signatures that are not this body's under this secret.
        Case::new(
            "a valid signature of another body",
            with_signature_str(&sign(SECRET, br#"{"event":"JOB_FAILURE"}"#)),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "signed with the secret one character off",
            signed_with(&off_by_one),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "signed with the secret and a trailing newline",
            signed_with(&format!("{SECRET}\n")),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "uppercase hex of a wrong MAC",
            with_signature_str(&wrong_mac.to_uppercase()),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "`sha256=` and a wrong MAC",
            with_signature_str(&format!("sha256={wrong_mac}")),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "the right signature, then the body is tampered with",
            {
                let (parts, _) = signed(event()).into_parts();
                Request::from_parts(parts, Bytes::from(body.replace("RESMAN", "YARDI")))
            },
            S::UNAUTHORIZED,
        ),
        Case::new(
            "a forged body nested 10 000 deep",
            testkit::signed_request(PATH, "not-the-propexo-secret", nested_objects(10_000)),
            S::UNAUTHORIZED,
        ),
        Case::new(
            "a forged 4 MiB body",
            testkit::signed_request(PATH, "not-the-propexo-secret", huge.clone()),
            S::UNAUTHORIZED,
        ),
        // Size and framing.
        Case::new(
            "a body over the limit, declared by Content-Length",
            with_header(
                signed(over_limit.clone()),
                header::CONTENT_LENGTH,
                &over_limit.len().to_string(),
            ),
            S::PAYLOAD_TOO_LARGE,
        ),
        Case::new(
            "a body over the limit, chunked with no length",
            signed(over_limit),
            S::PAYLOAD_TOO_LARGE,
        )
        .chunked(),
        Case::new(
            "a Content-Length smaller than the body",
            with_header(
                signed(event()),
                header::CONTENT_LENGTH,
                &(body.len() - 10).to_string(),
            ),
            S::BAD_REQUEST,
        ),
        Case::new(
            "a Content-Length larger than the body",
            with_header(
                signed(event()),
                header::CONTENT_LENGTH,
                &(body.len() + 10).to_string(),
            ),
            S::BAD_REQUEST,
        ),
        Case::new(
            "a Content-Length that is not a number",
            with_header(signed(event()), header::CONTENT_LENGTH, "12abc"),
            S::BAD_REQUEST,
        ),
        // Content types.
        Case::new(
            "text/plain",
            with_header(signed(event()), header::CONTENT_TYPE, "text/plain"),
            S::UNSUPPORTED_MEDIA_TYPE,
        ),
        Case::new(
            "a form",
            with_header(
                signed(event()),
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            ),
            S::UNSUPPORTED_MEDIA_TYPE,
        ),
        Case::new(
            "multipart/form-data",
            with_header(
                signed(event()),
                header::CONTENT_TYPE,
                "multipart/form-data; boundary=x",
            ),
            S::UNSUPPORTED_MEDIA_TYPE,
        ),
        Case::new(
            "a content type that is not ASCII",
            {
                let mut request = signed(event());
                request.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_bytes(b"application/json\xff").unwrap(),
                );
                request
            },
            S::UNSUPPORTED_MEDIA_TYPE,
        ),
        // Verified, but not a valid event.
        Case::new(
            "JSON objects nested 10 000 deep",
            signed(nested_objects(10_000)),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "`data` that is arrays nested 10 000 deep",
            signed(format!(
                r#"{{"trigger":"JOB_FAILURE","job_id":"{MARKER}","data":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "invalid UTF-8 in the body",
            signed(
                [
                    br#"{"event":"JOB_FAILURE","job_id":""#.as_slice(),
                    MARKER.as_bytes(),
                    b"\xc3\x28\"}",
                ]
                .concat(),
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a JSON array",
            signed(format!("[{}]", event())),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new("`null`", signed("null"), S::UNPROCESSABLE_ENTITY),
        Case::new("an empty body", signed(""), S::UNPROCESSABLE_ENTITY),
        Case::new(
            "a byte-order mark before the JSON",
            signed(format!("\u{feff}{}", event())),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a second object after the event",
            signed(format!("{} {}", event(), event())),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a 4 MiB string where a count belongs",
            signed(huge),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "`event` twice at the top level",
            signed(format!(
                r#"{{"event":"JOB_FAILURE","job_id":"{MARKER}","event":"JOB_SUCCESS"}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a payload key twice",
            signed(format!(
                r#"{{"event":"DATA_NEW","object":"leases","payload":{{"id":"{MARKER}","rent":1,"id":"x"}}}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a known trigger with fields of the wrong types",
            signed(format!(
                r#"{{"event":"JOB_FAILURE","job_id":12345,"vendor":["{MARKER}"]}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a count that is a string",
            signed(format!(
                r#"{{"event":"SYNC_COMPLETE","successful_job_count":"{MARKER}"}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a count too large for any integer",
            signed(format!(
                r#"{{"event":"SYNC_COMPLETE","vendor":"{MARKER}","failed_job_count":1e400}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a trigger that is a number",
            signed(format!(r#"{{"event":42,"job_id":"{MARKER}"}}"#)),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "an envelope trigger that is a number",
            signed(format!(
                r#"{{"trigger":42,"data":{{"event":"JOB_FAILURE","job_id":"{MARKER}"}}}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "`data` that is a string",
            signed(format!(r#"{{"trigger":"JOB_FAILURE","data":"{MARKER}"}}"#)),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "no trigger, no diff, no payload",
            signed(format!(r#"{{"job_id":"{MARKER}"}}"#)),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a lone surrogate escape in a string field",
            signed(format!(
                r#"{{"event":"JOB_FAILURE","job_id":"{MARKER}\ud800"}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a DATA_UPDATE whose diff is a string",
            signed(format!(
                r#"{{"event":"DATA_UPDATE","object":"leases","diff":"{MARKER}"}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
        Case::new(
            "a DATA_NEW whose meta is a number",
            signed(format!(
                r#"{{"event":"DATA_NEW","meta":7,"payload":{{"id":"{MARKER}"}}}}"#
            )),
            S::UNPROCESSABLE_ENTITY,
        ),
    ]
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

// --- what every runner checks ----------------------------------------------------------------

/// Counts every handler call, of any kind.
#[derive(Default)]
struct Calls {
    routes: AtomicUsize,
    fallback: AtomicUsize,
    on_malformed: AtomicUsize,
}

impl Calls {
    fn take(&self) -> [usize; 3] {
        [
            self.routes.swap(0, Ordering::SeqCst),
            self.fallback.swap(0, Ordering::SeqCst),
            self.on_malformed.swap(0, Ordering::SeqCst),
        ]
    }
}

/// The two receivers every runner serves, and the calls of their handlers.
struct Harness {
    calls: Arc<Calls>,
}

impl Harness {
    fn new() -> Self {
        Self {
            calls: Arc::default(),
        }
    }

    /// A route for every known trigger and a fallback, each counting its calls; with
    /// `on_malformed` (counting too, and storing successfully) or without.
    fn receiver(&self, on_malformed: bool) -> Receiver {
        let mut dispatcher = Dispatcher::new();
        for trigger in [
            EventType::DataNew,
            EventType::DataUpdate,
            EventType::SyncComplete,
            EventType::FirstSyncComplete,
            EventType::JobFailure,
            EventType::JobSuccess,
            EventType::WriteOperationFailure,
        ] {
            let calls = self.calls.clone();
            dispatcher = dispatcher.on(trigger, move |_: Delivery| {
                calls.routes.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            });
        }
        let calls = self.calls.clone();
        dispatcher = dispatcher.fallback(move |_: Delivery| {
            calls.fallback.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(())
        });
        if on_malformed {
            let calls = self.calls.clone();
            dispatcher = dispatcher.on_malformed(move |_: MalformedDelivery| {
                calls.on_malformed.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(())
            });
        }
        Receiver::new(Verifier::new(SECRET).unwrap(), dispatcher).log_diagnosis(true)
    }

    /// The receiver `case` goes to: without `on_malformed` for a verified but malformed body,
    /// with it (so that reaching it shows) for everything else.
    fn app_for(&self, case: &Case) -> Router {
        app(self.receiver(!case.is_verified_but_malformed()))
    }

    /// The exact status, no handler run, and neither the secret nor the body in the answer.
    fn check(&self, case: &Case, answer: &Answer, runner: &str) {
        let name = case.name;
        assert_eq!(
            answer.status, case.expected,
            "{runner}: {name}: answered {} ({:?})",
            answer.status, answer.body
        );
        assert_eq!(
            self.calls.take(),
            [0, 0, 0],
            "{runner}: {name}: a handler ran (routes, fallback, on_malformed)"
        );
        assert_no_leak(&answer.body, &format!("{runner}: {name}: the body"));
        for (header, value) in &answer.headers {
            assert_no_leak(value.as_bytes(), &format!("{runner}: {name}: {header}"));
        }
    }
}

fn app(receiver: Receiver) -> Router {
    Router::new().route(PATH, propexo_webhooks::axum::route(receiver))
}

fn assert_no_leak(text: &[u8], what: &str) {
    for needle in [SECRET.as_bytes(), MARKER.as_bytes()] {
        assert!(
            !text.windows(needle.len()).any(|window| window == needle),
            "{what} holds the secret or the request body"
        );
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    async fn read<B>(response: http::Response<B>) -> Self
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }
}

/// A request body framed as the case says: with an exact length, or in 16 KiB chunks with none.
struct Framed {
    chunks: VecDeque<Bytes>,
    sized: bool,
}

impl Framed {
    fn new(body: Bytes, framing: Framing) -> Self {
        let chunks = match framing {
            Framing::Sized => VecDeque::from([body]),
            Framing::Chunked => (0..body.len())
                .step_by(16 * 1024)
                .map(|start| body.slice(start..body.len().min(start + 16 * 1024)))
                .collect(),
        };
        Self {
            chunks: chunks
                .into_iter()
                .filter(|chunk| !chunk.is_empty())
                .collect(),
            sized: framing == Framing::Sized,
        }
    }
}

impl http_body::Body for Framed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .chunks
                .pop_front()
                .map(|chunk| Ok(Frame::data(chunk))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.sized && self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.chunks.iter().map(|chunk| chunk.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

// --- runners ---------------------------------------------------------------------------------

#[test]
fn the_table_has_at_least_thirty_cases_with_unique_names() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names: Vec<_> = cases.iter().map(|case| case.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
}

#[tokio::test]
async fn every_case_gets_its_status_and_runs_no_handler_in_process() {
    let harness = Harness::new();
    for case in cases() {
        let answer = send_in_process(&harness.app_for(&case), &case).await;
        harness.check(&case, &answer, "in process");
    }
}

async fn send_in_process(app: &Router, case: &Case) -> Answer {
    let (parts, body) = case.request_clone().into_parts();
    let request = Request::from_parts(parts, Body::new(Framed::new(body, case.framing)));
    Answer::read(app.clone().oneshot(request).await.unwrap()).await
}

impl Case {
    /// A copy of the request (method, URI, version, headers and body; no extensions).
    fn request_clone(&self) -> Request<Bytes> {
        let mut request = Request::new(self.request.body().clone());
        *request.method_mut() = self.request.method().clone();
        *request.uri_mut() = self.request.uri().clone();
        *request.version_mut() = self.request.version();
        *request.headers_mut() = self.request.headers().clone();
        request
    }
}

/// With `on_malformed`, the verified but malformed bodies are stored (200), by `on_malformed`
/// alone: proof that they were authentic and that the 422s above are the dispatcher's.
#[tokio::test]
async fn verified_but_malformed_cases_reach_on_malformed_and_nothing_else() {
    let harness = Harness::new();
    let app = app(harness.receiver(true));
    for case in cases().into_iter().filter(Case::is_verified_but_malformed) {
        let answer = send_in_process(&app, &case).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", case.name);
        assert_eq!(harness.calls.take(), [0, 0, 1], "{}", case.name);
    }
}

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Framed>;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_gets_its_status_and_runs_no_handler_over_a_socket() {
    let harness = Harness::new();
    let with_on_malformed = serve(app(harness.receiver(true))).await;
    let without_on_malformed = serve(app(harness.receiver(false))).await;
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut sent = 0;
    for case in cases() {
        // Skipped here, and sent over a raw socket below instead:
        // - a Content-Length that disagrees with the body: an HTTP client frames the body
        //   itself, so it cannot send one;
        // - a body over the limit: the server refuses it on the head (or at the limit) and
        //   closes, and a client that writes the whole body before reading, as hyper's does,
        //   may fail on the write (EPIPE) and never read the 413.
        if case.needs_a_raw_socket() {
            continue;
        }
        let address = if case.is_verified_but_malformed() {
            without_on_malformed
        } else {
            with_on_malformed
        };
        let (mut parts, body) = case.request_clone().into_parts();
        parts.uri = format!("http://{address}{PATH}").parse().unwrap();
        let request = Request::from_parts(parts, Framed::new(body, case.framing));
        let response = tokio::time::timeout(HANG_GUARD, client.request(request))
            .await
            .unwrap_or_else(|_| panic!("over a socket: {}: no answer", case.name))
            .unwrap_or_else(|error| panic!("over a socket: {}: {error:?}", case.name));
        harness.check(&case, &Answer::read(response).await, "over a socket");
        sent += 1;
    }
    assert_eq!(
        sent,
        cases().len() - 5,
        "only the three lying lengths and the two bodies over the limit are skipped"
    );
}

// --- a raw socket, for what an HTTP client will not send ---------------------------------------

/// One HTTP/1.1 connection driven byte by byte.
struct Raw {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

/// What came back on a raw connection.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    /// A response with this status.
    Response(u16),
    /// The server closed the connection (or reset it) without a response.
    Closed,
}

impl Raw {
    async fn connect(address: SocketAddr) -> Self {
        Self {
            stream: tokio::net::TcpStream::connect(address).await.unwrap(),
            buffer: Vec::new(),
        }
    }

    /// The request as HTTP/1.1 bytes, exactly as built: no header added (but `host`), none
    /// fixed, the body as it is.
    fn serialize(request: &Request<Bytes>) -> Vec<u8> {
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\nhost: localhost\r\n",
            request.method(),
            request.uri()
        )
        .into_bytes();
        for (name, value) in request.headers() {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(request.body());
        bytes
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn finish_writing(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    /// Reads the next response (its head, and its body by Content-Length), or the close.
    async fn receive(&mut self) -> Received {
        tokio::time::timeout(HANG_GUARD, self.receive_unguarded())
            .await
            .expect("the server neither answered nor closed the connection")
    }

    async fn receive_unguarded(&mut self) -> Received {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let status = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while self.buffer.len() < end + 4 + length {
                    let mut chunk = [0; 4096];
                    let n = self.stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the connection closed inside a response");
                    self.buffer.extend_from_slice(&chunk[..n]);
                }
                self.buffer.drain(..end + 4 + length);
                return Received::Response(status);
            }
            let mut chunk = [0; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Received::Closed,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Received::Closed;
                }
                Err(error) => panic!("{error}"),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What each case whose Content-Length lies gets over a socket, in order, until the server
/// closes. The server frames the body by the declared length, so this differs from in process.
fn over_a_raw_socket(case: &Case) -> Vec<Received> {
    match case.name {
        // The declared bytes are a truncated body: its signature does not match (401, from the
        // receiver). The rest is read as the start of a next request, which is not HTTP: 400
        // from hyper, which closes the connection.
        "a Content-Length smaller than the body" => vec![Response(401), Response(400), Closed],
        // The body ends before the declared length, when the client stops sending: the body
        // is unreadable (400, from the receiver).
        "a Content-Length larger than the body" => vec![Response(400), Closed],
        // hyper refuses the head itself (400) before any handler is called.
        "a Content-Length that is not a number" => vec![Response(400), Closed],
        name => panic!("no expectation over a socket for {name:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_content_length_runs_no_handler_over_a_socket() {
    let harness = Harness::new();
    let address = serve(app(harness.receiver(true))).await;
    for case in cases().into_iter().filter(Case::lies_about_its_length) {
        let mut raw = Raw::connect(address).await;
        raw.write(&Raw::serialize(&case.request)).await;
        // The client is done: a body shorter than declared ends here (a client that keeps the
        // connection open instead is the next test).
        raw.finish_writing().await;
        let mut received = Vec::new();
        while received.last() != Some(&Closed) {
            received.push(raw.receive().await);
        }
        assert_eq!(received, over_a_raw_socket(&case), "{}", case.name);
        assert_eq!(
            harness.calls.take(),
            [0, 0, 0],
            "{}: a handler ran",
            case.name
        );
    }
}

/// A client that declares more bytes than it sends and keeps the connection open makes the
/// server wait for them: nothing bounds that wait but the client, or a timeout the server sets
/// around the route (the receiver sets none; e.g. tower-http's `TimeoutLayer`). Meanwhile no
/// handler runs, and the server answers everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_holds_only_its_own_connection() {
    let harness = Harness::new();
    let address = serve(app(harness.receiver(true))).await;
    let liar = cases()
        .into_iter()
        .find(|case| case.name == "a Content-Length larger than the body")
        .unwrap();
    let mut waiting = Raw::connect(address).await;
    waiting.write(&Raw::serialize(&liar.request)).await;

    let body = event();
    let mut honest = Raw::connect(address).await;
    honest
        .write(&Raw::serialize(&with_header(
            signed(body.clone()),
            header::CONTENT_LENGTH,
            &body.len().to_string(),
        )))
        .await;
    assert_eq!(honest.receive().await, Response(200));
    assert_eq!(
        harness.calls.take(),
        [1, 0, 0],
        "only the honest delivery ran"
    );

    waiting.finish_writing().await;
    assert_eq!(waiting.receive().await, Response(400));
    assert_eq!(harness.calls.take(), [0, 0, 0], "a handler ran");
}

/// The client announces the body and waits for `100 Continue` before sending it, as curl does
/// for large bodies, so it reads the 413 that a client writing the whole body first may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_over_a_socket() {
    let harness = Harness::new();
    let address = serve(app(harness.receiver(true))).await;
    let over_limit: Vec<Case> = cases()
        .into_iter()
        .filter(|case| case.expected == StatusCode::PAYLOAD_TOO_LARGE)
        .collect();
    assert_eq!(over_limit.len(), 2);
    for case in over_limit {
        let mut request = case.request_clone();
        let body = std::mem::take(request.body_mut());
        request
            .headers_mut()
            .insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let mut raw = Raw::connect(address).await;
        match case.framing {
            Framing::Sized => {
                // The head alone: refused on its Content-Length, the body is never sent.
                raw.write(&Raw::serialize(&request)).await;
                assert_eq!(raw.receive().await, Response(413), "{}", case.name);
            }
            Framing::Chunked => {
                request.headers_mut().insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                raw.write(&Raw::serialize(&request)).await;
                assert_eq!(raw.receive().await, Response(100), "{}", case.name);
                // Exactly one byte past the limit, the last one in a chunk of its own; then
                // wait for the answer.
                let (within, past) = body.split_at(LIMIT);
                for chunk in within.chunks(64 * 1024).chain([&past[..1]]) {
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.extend_from_slice(chunk);
                    framed.extend_from_slice(b"\r\n");
                    raw.write(&framed).await;
                }
                assert_eq!(raw.receive().await, Response(413), "{}", case.name);
            }
        }
        assert_eq!(
            harness.calls.take(),
            [0, 0, 0],
            "{}: a handler ran",
            case.name
        );
    }
}

// --- logs ------------------------------------------------------------------------------------

/// With feature `tracing`, the receiver logs every rejection; the log lines must never hold the
/// secret or the body.
#[cfg(feature = "tracing")]
mod logs {
    use std::fmt::Write;
    use std::sync::{Mutex, OnceLock};
    use std::thread::{self, ThreadId};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::{Harness, assert_no_leak, cases, send_in_process};

    /// Every event and every span field, one line each as a log formatter would write them,
    /// with the thread that logged it.
    #[derive(Default)]
    struct Capture(Mutex<Vec<(ThreadId, String)>>);

    impl Capture {
        /// The process-wide subscriber, installed once. A global one rather than a scoped one:
        /// tracing caches whether a call site is enabled, and a cache filled by another test's
        /// thread, with no subscriber, would hide this thread's events.
        fn global() -> &'static Self {
            static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
            CAPTURE.get_or_init(|| {
                let capture: &'static Capture = Box::leak(Box::default());
                tracing::subscriber::set_global_default(capture).unwrap();
                capture
            })
        }

        /// Takes the lines logged by this thread so far.
        fn take_mine(&self) -> Vec<String> {
            let me = thread::current().id();
            let mut lines = self.0.lock().unwrap();
            let (mine, others) = lines.drain(..).partition(|(thread, _)| *thread == me);
            *lines = others;
            mine.into_iter().map(|(_, line)| line).collect()
        }

        fn push(&self, prefix: String, fields: impl FnOnce(&mut Line)) {
            let mut line = Line(prefix);
            fields(&mut line);
            self.0
                .lock()
                .unwrap()
                .push((thread::current().id(), line.0));
        }
    }

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    impl Subscriber for &'static Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            self.push(format!("span {}:", span.metadata().name()), |line| {
                span.record(line)
            });
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, values: &Record<'_>) {
            self.push("span record:".to_owned(), |line| values.record(line));
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let metadata = event.metadata();
            self.push(
                format!("{} {}:", metadata.level(), metadata.target()),
                |line| event.record(line),
            );
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    #[tokio::test]
    async fn every_case_is_logged_without_the_secret_or_the_body() {
        let capture = Capture::global();
        // The test runs on one thread, and so does every request it sends in process.
        let harness = Harness::new();
        for case in cases() {
            let answer = send_in_process(&harness.app_for(&case), &case).await;
            harness.check(&case, &answer, "logged");
            let lines = capture.take_mine();
            let status = case.expected.to_string();
            assert!(
                lines.iter().any(|line| {
                    line.starts_with("WARN propexo_webhooks:")
                        && (line.contains(&format!("rejected with {status}"))
                            || line.contains(&format!("answered {status}")))
                }),
                "{}: the rejection is not logged: {lines:?}",
                case.name
            );
            for line in &lines {
                assert_no_leak(line.as_bytes(), &format!("{}: a log line", case.name));
            }
        }
    }
}

// --- the same table through the actix-web adapter --------------------------------------------

/// The case as an actix test request: its headers as they are (repeated ones too), its body as
/// a fixed payload or, for a chunked case, as a stream with no length given in advance. A lying
/// `Content-Length` is written after the payload, which would otherwise replace it.
#[cfg(feature = "actix-web")]
fn to_actix(case: &Case) -> actix_http::Request {
    use actix_web::test::TestRequest;

    let request = &case.request;
    let method = actix_web::http::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let mut test = TestRequest::default()
        .method(method)
        .uri(&request.uri().to_string());
    if case.framing == Framing::Sized {
        test = test.set_payload(request.body().clone());
    }
    for (name, value) in request.headers() {
        let value = actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
        test = if name == header::CONTENT_LENGTH {
            test.insert_header((name.as_str(), value))
        } else {
            test.append_header((name.as_str(), value))
        };
    }
    let test = test.to_request();
    if case.framing == Framing::Sized {
        return test;
    }
    let chunks: Vec<Bytes> = request
        .body()
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(Ok::<_, actix_web::error::PayloadError>),
    );
    let payload: actix_http::BoxedPayloadStream = Box::pin(stream);
    test.replace_payload(actix_web::dev::Payload::from(payload))
        .0
}

#[cfg(feature = "actix-web")]
#[actix_web::test]
async fn every_case_gets_its_status_and_runs_no_handler_through_actix() {
    use actix_web::test;

    let harness = Harness::new();
    for case in cases() {
        let receiver = harness.receiver(!case.is_verified_but_malformed());
        let app = test::init_service(
            actix_web::App::new().configure(propexo_webhooks::actix::service(PATH, receiver)),
        )
        .await;
        let response = test::call_service(&app, to_actix(&case)).await;
        let mut headers = HeaderMap::new();
        for (name, value) in response.headers() {
            headers.append(
                http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        let answer = Answer {
            status: StatusCode::from_u16(response.status().as_u16()).unwrap(),
            headers,
            body: test::read_body(response).await,
        };
        harness.check(&case, &answer, "actix-web");
    }
}

/// A client that announces more bytes than it sends is answered 408 once the receiver's body
/// timeout passes, instead of holding its connection (and the receiver's memory) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_times_out_with_408() {
    let harness = Harness::new();
    let receiver = harness
        .receiver(true)
        .body_timeout(Duration::from_millis(200));
    let address = serve(app(receiver)).await;
    let liar = cases()
        .into_iter()
        .find(|case| case.name == "a Content-Length larger than the body")
        .unwrap();
    let mut waiting = Raw::connect(address).await;
    waiting.write(&Raw::serialize(&liar.request)).await;
    assert_eq!(waiting.receive().await, Response(408));
    assert_eq!(harness.calls.take(), [0, 0, 0], "a handler ran");
}
