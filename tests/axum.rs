//! The axum adapter: every row of the status table in process, and over a real socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;
use propexo_webhooks::axum::{BodyLimit, Webhook};
use propexo_webhooks::{
    Delivery, Dispatcher, EventType, Inbox, InboxStats, MalformedDelivery, MemoryIdempotencyStore,
    MemoryInbox, Receiver, VerifiedBody, Verifier, WebhookEvent, WorkerConfig, Workers, testkit,
};
use tower::ServiceExt;

const SECRET: &str = "propexo-axum-secret";
const PATH: &str = "/webhooks/propexo";
const JOB_FAILURE: &str = r#"{"event":"JOB_FAILURE","integration_id":"INTEGRATION_ID_002","job_id":"JOB_ID_002","job_type":"READ_RESIDENT_TRANSACTIONS","root_job_id":"ROOT_JOB_ID_002","vendor":"RESMAN"}"#;

fn verifier() -> Verifier {
    Verifier::new(SECRET).unwrap()
}

/// A dispatcher whose JOB_FAILURE handler counts its calls.
fn counting(calls: &Arc<AtomicUsize>) -> Dispatcher {
    let calls = calls.clone();
    Dispatcher::new().on(EventType::JobFailure, move |_| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(())
    })
}

fn app(receiver: Receiver) -> Router {
    Router::new().route(PATH, propexo_webhooks::axum::route(receiver))
}

fn signed(body: impl Into<Bytes>) -> Request<Body> {
    testkit::signed_request(PATH, SECRET, body).map(Body::from)
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        retry_after,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Asserts the status and that no handler ran.
async fn assert_rejected(
    app: &Router,
    calls: &AtomicUsize,
    request: Request<Body>,
    status: StatusCode,
) {
    let answer = send(app, request).await;
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a handler ran");
    assert!(!answer.body.contains(SECRET));
    assert!(
        answer.body.len() < 80,
        "error bodies are short: {}",
        answer.body
    );
}

// --- the status table, in process ------------------------------------------------------------

#[tokio::test]
async fn a_verified_delivery_is_handled_and_acknowledged() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_content_type_is_accepted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    let mut request = signed(JOB_FAILURE);
    request.headers_mut().remove(header::CONTENT_TYPE);
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_signature_is_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    let mut request = signed(JOB_FAILURE);
    request.headers_mut().remove("propexo-signature");
    assert_rejected(&app, &calls, request, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_malformed_signature_is_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    for value in ["", "sha256=", "abc", "zz", &"ab".repeat(31)] {
        let mut request = signed(JOB_FAILURE);
        request
            .headers_mut()
            .insert("propexo-signature", HeaderValue::from_str(value).unwrap());
        assert_rejected(&app, &calls, request, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_signature_mismatch_is_401() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    let request = testkit::signed_request(PATH, "not-the-propexo-secret", JOB_FAILURE);
    assert_rejected(
        &app,
        &calls,
        request.map(Body::from),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (parts, _) = signed(JOB_FAILURE).into_parts();
    let tampered = Request::from_parts(parts, Body::from(JOB_FAILURE.replace("002", "003")));
    assert_rejected(&app, &calls, tampered, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)).body_limit(1024));
    let big = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{}"}}"#,
        "x".repeat(2048)
    );
    // Declared by Content-Length...
    let mut request = signed(big.clone());
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(big.len()));
    assert_rejected(&app, &calls, request, StatusCode::PAYLOAD_TOO_LARGE).await;
    // ...or found while reading a body of unknown length.
    let (parts, _) = signed(big.clone()).into_parts();
    let streamed = Request::from_parts(parts, Chunked::body(big.as_bytes()));
    assert_rejected(&app, &calls, streamed, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn the_default_limit_takes_propexo_sized_payloads() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    const { assert!(propexo_webhooks::DEFAULT_BODY_LIMIT >= 5 * 1024 * 1024) };
    let big = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{}"}}"#,
        "x".repeat(5 << 20)
    );
    assert_eq!(send(&app, signed(big)).await.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_that_is_not_as_long_as_its_content_length_is_400() {
    // In process nothing frames the body by its Content-Length, as a server would: a
    // correctly signed body whose declared length lies must not reach a handler.
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver = app(Receiver::new(verifier(), counting(&calls)));
    let handled = calls.clone();
    let extractor = Router::new()
        .route(
            PATH,
            post(move |_: Webhook| async move {
                handled.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .with_state(verifier());
    for declared in [JOB_FAILURE.len() - 1, JOB_FAILURE.len() + 1] {
        for app in [&receiver, &extractor] {
            let mut request = signed(JOB_FAILURE);
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(declared));
            assert_rejected(app, &calls, request, StatusCode::BAD_REQUEST).await;
        }
    }
    let mut request = signed(JOB_FAILURE);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(JOB_FAILURE.len()));
    assert_eq!(send(&receiver, request).await.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A body in 512-byte chunks, with no length known in advance.
struct Chunked(std::collections::VecDeque<Bytes>);

impl Chunked {
    fn body(bytes: &[u8]) -> Body {
        Body::new(Self(
            bytes.chunks(512).map(Bytes::copy_from_slice).collect(),
        ))
    }
}

impl axum::body::HttpBody for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .0
                .pop_front()
                .map(|chunk| Ok(http_body::Frame::data(chunk))),
        )
    }
}

/// A body that never finishes arriving.
struct Stalled;

impl axum::body::HttpBody for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver =
        Receiver::new(verifier(), counting(&calls)).body_timeout(Duration::from_millis(50));
    let app = app(receiver);
    let (parts, _) = signed(JOB_FAILURE).into_parts();
    let stalled = Request::from_parts(parts, Body::new(Stalled));
    assert_rejected(&app, &calls, stalled, StatusCode::REQUEST_TIMEOUT).await;
}

#[tokio::test]
async fn a_content_type_other_than_json_is_415() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let mut request = signed(JOB_FAILURE);
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        assert_rejected(&app, &calls, request, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
}

#[tokio::test]
async fn a_malformed_body_is_422_without_on_malformed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    assert_rejected(
        &app,
        &calls,
        signed("not json"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn a_malformed_body_is_200_when_on_malformed_stores_it_and_500_when_it_fails() {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = stored.clone();
    let dispatcher = Dispatcher::new().on_malformed(move |malformed: MalformedDelivery| {
        if malformed.body().starts_with(b"fail") {
            return Err("storage down");
        }
        sink.lock().unwrap().push(malformed.body().clone());
        Ok(())
    });
    let app = app(Receiver::new(verifier(), dispatcher));
    assert_eq!(send(&app, signed("not json")).await.status, StatusCode::OK);
    assert_eq!(*stored.lock().unwrap(), [Bytes::from_static(b"not json")]);
    assert_eq!(
        send(&app, signed("fail: not json")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn a_failing_handler_is_500() {
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, |_| Err::<(), _>("db down"));
    let app = app(Receiver::new(verifier(), dispatcher));
    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!answer.body.contains("db down"), "details stay in the logs");
}

#[tokio::test]
async fn a_copy_in_progress_is_409() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let (wait, signal) = (gate.clone(), entered.clone());
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on(EventType::JobFailure, move |_| {
            let (wait, signal) = (wait.clone(), signal.clone());
            async move {
                signal.notify_one();
                wait.notified().await;
                Ok::<_, String>(())
            }
        });
    let app = app(Receiver::new(verifier(), dispatcher));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, signed(JOB_FAILURE)).await.status }
    });
    entered.notified().await;
    let second = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    gate.notify_one();
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(
        send(&app, signed(JOB_FAILURE)).await.status,
        StatusCode::OK,
        "duplicate"
    );
}

#[tokio::test]
async fn only_post_is_routed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)));
    let mut request = signed(JOB_FAILURE);
    *request.method_mut() = http::Method::GET;
    assert_rejected(&app, &calls, request, StatusCode::METHOD_NOT_ALLOWED).await;
}

// --- queue mode ------------------------------------------------------------------------------

#[tokio::test]
async fn inbox_mode_answers_202_once_stored_and_503_when_full() {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let sink = handled.clone();
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, move |delivery: Delivery| {
        sink.lock()
            .unwrap()
            .push(delivery.event().job_id().unwrap().to_owned());
        Ok::<_, String>(())
    });
    let inbox = MemoryInbox::with_capacity(1);
    let app = app(Receiver::with_inbox(verifier(), inbox.clone()));
    let body = |n: u32| JOB_FAILURE.replace("JOB_ID_002", &format!("JOB_{n}"));

    let first = send(&app, signed(body(1))).await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (StatusCode::ACCEPTED, "accepted")
    );
    // Stored before the answer, and nothing handled yet: no worker runs.
    assert_eq!(inbox.stats().await.unwrap().pending, 1);
    // The same delivery again is stored already: acknowledged, not stored twice.
    assert_eq!(
        send(&app, signed(body(1))).await.status,
        StatusCode::ACCEPTED
    );
    let full = send(&app, signed(body(2))).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.retry_after.as_deref(), Some("5"));

    let workers = Workers::start(inbox.clone(), dispatcher, fast_workers());
    wait_until(&inbox, |stats| stats.done == 1).await;
    assert_eq!(
        send(&app, signed(body(2))).await.status,
        StatusCode::ACCEPTED
    );
    wait_until(&inbox, |stats| stats.done == 2).await;
    // A copy within its de-duplication window is a duplicate: 200, nothing stored.
    let again = send(&app, signed(body(1))).await;
    assert_eq!((again.status, again.body.as_str()), (StatusCode::OK, "ok"));
    workers.shutdown().await;
    assert_eq!(*handled.lock().unwrap(), ["JOB_1", "JOB_2"]);
}

#[tokio::test]
async fn inbox_mode_retries_a_failing_handler_itself() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Err("not yet")
        } else {
            Ok(())
        }
    });
    let inbox = MemoryInbox::new();
    let workers = Workers::start(inbox.clone(), dispatcher, fast_workers());
    let app = app(Receiver::with_inbox(verifier(), inbox.clone()));
    assert_eq!(
        send(&app, signed(JOB_FAILURE)).await.status,
        StatusCode::ACCEPTED
    );
    wait_until(&inbox, |stats| stats.done == 1).await;
    workers.shutdown().await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

/// Workers that retry and poll within milliseconds, for tests.
fn fast_workers() -> WorkerConfig {
    WorkerConfig::default()
        .workers(1)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .poll_interval(Duration::from_millis(5))
}

/// Waits (at most 10 s) until the inbox's counts satisfy `done`.
async fn wait_until(inbox: &MemoryInbox, done: impl Fn(InboxStats) -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(inbox.stats().await.unwrap()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the inbox never got there: {:?}", inbox));
}

// --- the extractors --------------------------------------------------------------------------

#[tokio::test]
async fn the_webhook_extractor_verifies_then_parses_with_the_state_verifier() {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let app = Router::new()
        .route(
            PATH,
            post(move |Webhook { event, body, .. }: Webhook| {
                let sink = sink.clone();
                async move {
                    *sink.lock().unwrap() = Some((event, body.body().clone()));
                    "handled"
                }
            }),
        )
        .with_state(verifier());

    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "handled")
    );
    let (event, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(event.event_type(), EventType::JobFailure);
    assert_eq!(body, JOB_FAILURE.as_bytes());

    let forged = testkit::signed_request(PATH, "another-secret-here", JOB_FAILURE);
    assert_eq!(
        send(&app, forged.map(Body::from)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, signed("[1,2]")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(
        seen.lock().unwrap().is_none(),
        "no handler ran on a rejection"
    );
}

#[tokio::test]
async fn the_verified_body_extractor_honours_a_body_limit_extension() {
    let app = Router::new()
        .route(
            PATH,
            post(|body: VerifiedBody| async move { body.body().len().to_string() }),
        )
        .layer(axum::Extension(BodyLimit(64)))
        .with_state(verifier());
    assert_eq!(send(&app, signed("{}")).await.body, "2");
    assert_eq!(
        send(&app, signed("x".repeat(65))).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

// --- raw-body safety -------------------------------------------------------------------------

#[tokio::test]
async fn unusual_whitespace_and_key_order_verify_because_nothing_is_reserialized() {
    let body = "{\n\t\"vendor\" :\"RESMAN\" ,  \"job_id\":\"JOB_ID_002\",\r\n   \"event\":   \"JOB_FAILURE\"   }\n";
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, move |delivery: Delivery| {
        *sink.lock().unwrap() = Some(delivery.body().clone());
        Ok::<_, String>(())
    });
    let app = app(Receiver::new(verifier(), dispatcher));
    assert_eq!(send(&app, signed(body)).await.status, StatusCode::OK);
    assert_eq!(seen.lock().unwrap().as_deref(), Some(body.as_bytes()));
}

// --- over a real socket ----------------------------------------------------------------------

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

async fn post_to(client: &Client, address: SocketAddr, body: String) -> StatusCode {
    let request = testkit::signed_request(&format!("http://{address}{PATH}"), SECRET, body)
        .map(http_body_util::Full::new);
    client.request(request).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_deliveries_over_a_socket_are_each_handled_once() {
    let seen = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let sink = seen.clone();
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on(EventType::JobFailure, move |delivery: Delivery| {
            let job = delivery.event().job_id().unwrap_or_default().to_owned();
            *sink.lock().unwrap().entry(job).or_default() += 1;
            Ok::<_, String>(())
        });
    let address = serve(app(Receiver::new(verifier(), dispatcher))).await;
    let client = client();
    let sends: Vec<_> = (0..200)
        .map(|n| {
            let client = client.clone();
            let body = JOB_FAILURE.replace("JOB_ID_002", &format!("JOB_{n}"));
            tokio::spawn(async move { post_to(&client, address, body).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), StatusCode::OK);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&count| count == 1));
}

#[tokio::test]
async fn a_failed_delivery_resent_by_propexo_is_handled_and_nothing_is_lost() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    let (counter, done) = (attempts.clone(), handled.clone());
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on(EventType::JobFailure, move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("transient failure");
            }
            done.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    let address = serve(app(Receiver::new(verifier(), dispatcher))).await;
    let client = client();
    assert_eq!(
        post_to(&client, address, JOB_FAILURE.to_owned()).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        post_to(&client, address, JOB_FAILURE.to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(
        post_to(&client, address, JOB_FAILURE.to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the duplicate did not run again"
    );
}

#[tokio::test]
async fn every_status_row_holds_over_a_socket() {
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, |_| Ok::<_, String>(()))
        .on(EventType::JobSuccess, |_| Err::<(), _>("handler failed"));
    let address = serve(app(Receiver::new(verifier(), dispatcher).body_limit(4096))).await;
    let client = client();
    let url = format!("http://{address}{PATH}");
    let job_success = JOB_FAILURE.replace("JOB_FAILURE", "JOB_SUCCESS");
    let cases: Vec<(Request<Bytes>, StatusCode)> = vec![
        (
            testkit::signed_request(&url, SECRET, JOB_FAILURE),
            StatusCode::OK,
        ),
        (
            testkit::signed_request(&url, SECRET, job_success),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            testkit::signed_request(&url, "wrong-secret-value", JOB_FAILURE),
            StatusCode::UNAUTHORIZED,
        ),
        (
            testkit::signed_request(&url, SECRET, "{oops"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            testkit::signed_request(&url, SECRET, "x".repeat(5000)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            {
                let mut request = testkit::signed_request(&url, SECRET, JOB_FAILURE);
                request.headers_mut().remove("propexo-signature");
                request
            },
            StatusCode::BAD_REQUEST,
        ),
        (
            {
                let mut request = testkit::signed_request(&url, SECRET, JOB_FAILURE);
                request
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
                request
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (request, expected) in cases {
        let response = client
            .request(request.map(http_body_util::Full::new))
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
}

#[test]
fn webhook_events_still_parse_the_testkit_bodies() {
    let request =
        testkit::signed_event_request(PATH, SECRET, &JOB_FAILURE.parse::<WebhookEvent>().unwrap())
            .unwrap();
    assert!(WebhookEvent::from_slice(request.body()).is_ok());
    verifier()
        .verify_headers(request.headers(), request.body())
        .unwrap();
}
