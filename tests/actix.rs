//! The actix-web adapter: every row of the status table in process, and over a real socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use propexo_webhooks::actix::{BodyLimit, Webhook};
use propexo_webhooks::{
    Delivery, Dispatcher, Error, EventType, Inbox, InboxStats, MalformedDelivery,
    MemoryIdempotencyStore, MemoryInbox, Receiver, VerifiedBody, Verifier, WebhookEvent,
    WebhookRejection, WorkerConfig, Workers, testkit,
};

const SECRET: &str = "propexo-actix-secret";
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

/// What `actix_web::test::init_service` returns, for the helpers below.
trait TestApp:
    Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
{
}

impl<S> TestApp for S where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>
{
}

/// The receiver mounted with `service`, as an in-process actix service.
async fn app(receiver: Receiver) -> impl TestApp {
    test::init_service(App::new().configure(propexo_webhooks::actix::service(PATH, receiver))).await
}

fn signed(body: impl Into<Bytes>) -> Request<Bytes> {
    testkit::signed_request(PATH, SECRET, body)
}

/// The head of an `http` 1 request (what the testkit builds), as an actix test request.
fn head(request: &Request<Bytes>) -> TestRequest {
    let method = actix_web::http::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let mut test = TestRequest::default()
        .method(method)
        .uri(&request.uri().to_string());
    for (name, value) in request.headers() {
        let value = actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()).unwrap();
        test = test.append_header((name.as_str(), value));
    }
    test
}

/// The whole request, with a `Content-Length` (as `TestRequest::set_payload` sets it).
fn to_actix(request: Request<Bytes>) -> actix_http::Request {
    let body = request.body().clone();
    head(&request).set_payload(body).to_request()
}

/// The request with its body in 512-byte chunks and no length given in advance; `polled`
/// counts the chunks the server read.
fn chunked(request: &Request<Bytes>, polled: &Arc<AtomicUsize>) -> actix_http::Request {
    let polled = polled.clone();
    let chunks: Vec<Bytes> = request
        .body()
        .chunks(512)
        .map(Bytes::copy_from_slice)
        .collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        polled.fetch_add(1, Ordering::SeqCst);
        Ok::<_, actix_web::error::PayloadError>(chunk)
    }));
    let payload: actix_http::BoxedPayloadStream = Box::pin(stream);
    let (request, _) = head(request)
        .to_request()
        .replace_payload(actix_web::dev::Payload::from(payload));
    assert!(!request.head().headers().contains_key("content-length"));
    request
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: String,
}

async fn call(app: &impl TestApp, request: actix_http::Request) -> Answer {
    let response = test::call_service(app, request).await;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let retry_after = header(actix_web::http::header::RETRY_AFTER);
    let content_type = header(actix_web::http::header::CONTENT_TYPE);
    let body = test::read_body(response).await;
    Answer {
        status,
        retry_after,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn send(app: &impl TestApp, request: Request<Bytes>) -> Answer {
    call(app, to_actix(request)).await
}

/// Asserts the status, that no handler ran, and that the answer gives nothing away.
fn assert_rejected(answer: &Answer, calls: &AtomicUsize, status: StatusCode) {
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

#[actix_web::test]
async fn a_verified_delivery_is_handled_and_acknowledged() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(
        answer.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(answer.retry_after, None);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_missing_content_type_is_accepted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let mut request = signed(JOB_FAILURE);
    request.headers_mut().remove(header::CONTENT_TYPE);
    assert_eq!(send(&app, request).await.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn a_missing_signature_is_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let mut request = signed(JOB_FAILURE);
    request.headers_mut().remove("propexo-signature");
    let answer = send(&app, request).await;
    assert_rejected(&answer, &calls, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_malformed_signature_is_400() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    for value in ["", "sha256=", "abc", "zz", &"ab".repeat(31), "caf\u{e9}"] {
        let mut request = signed(JOB_FAILURE);
        request.headers_mut().insert(
            "propexo-signature",
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        let answer = send(&app, request).await;
        assert_rejected(&answer, &calls, StatusCode::BAD_REQUEST);
    }
}

#[actix_web::test]
async fn two_signature_headers_are_400_even_when_both_are_valid() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let valid = propexo_webhooks::sign(SECRET, JOB_FAILURE.as_bytes());
    for second in [valid.as_str(), "not-a-signature", ""] {
        let mut request = signed(JOB_FAILURE);
        request
            .headers_mut()
            .append("propexo-signature", HeaderValue::from_str(second).unwrap());
        assert_eq!(
            request
                .headers()
                .get_all("propexo-signature")
                .iter()
                .count(),
            2
        );
        let answer = send(&app, request).await;
        assert_rejected(&answer, &calls, StatusCode::BAD_REQUEST);
    }
}

#[actix_web::test]
async fn a_signature_mismatch_is_401() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let forged = testkit::signed_request(PATH, "not-the-propexo-secret", JOB_FAILURE);
    let answer = send(&app, forged).await;
    assert_rejected(&answer, &calls, StatusCode::UNAUTHORIZED);

    let (parts, _) = signed(JOB_FAILURE).into_parts();
    let tampered = Request::from_parts(parts, Bytes::from(JOB_FAILURE.replace("002", "003")));
    let answer = send(&app, tampered).await;
    assert_rejected(&answer, &calls, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver =
        Receiver::new(verifier(), counting(&calls)).body_timeout(Duration::from_millis(50));
    let app = app(receiver).await;
    let stalled: actix_http::BoxedPayloadStream = Box::pin(futures_util::stream::pending());
    let (request, _) = head(&signed(JOB_FAILURE))
        .to_request()
        .replace_payload(actix_web::dev::Payload::from(stalled));
    let answer = call(&app, request).await;
    assert_rejected(&answer, &calls, StatusCode::REQUEST_TIMEOUT);
}

#[actix_web::test]
async fn a_body_over_the_limit_is_413() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls)).body_limit(1024)).await;
    let big = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{}"}}"#,
        "x".repeat(4096)
    );
    // Declared by Content-Length...
    let answer = send(&app, signed(big.clone())).await;
    assert_rejected(&answer, &calls, StatusCode::PAYLOAD_TOO_LARGE);

    // ...or found while reading a body of unknown length, which is then read no further.
    let polled = Arc::new(AtomicUsize::new(0));
    let answer = call(&app, chunked(&signed(big.clone()), &polled)).await;
    assert_rejected(&answer, &calls, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        polled.load(Ordering::SeqCst),
        3,
        "stopped at the chunk that passed 1024 bytes, of {}",
        big.len().div_ceil(512)
    );

    // A chunked body within the limit is read whole.
    let answer = call(&app, chunked(&signed(JOB_FAILURE), &polled)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn the_default_limit_takes_propexo_sized_payloads_past_actix_webs_own() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    const { assert!(propexo_webhooks::DEFAULT_BODY_LIMIT >= 5 * 1024 * 1024) };
    let big = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{}"}}"#,
        "x".repeat(5 << 20)
    );
    assert_eq!(send(&app, signed(big.clone())).await.status, StatusCode::OK);
    let polled = Arc::new(AtomicUsize::new(0));
    let answer = call(&app, chunked(&signed(big), &polled)).await;
    assert_eq!(answer.status, StatusCode::OK, "streamed, read whole");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[actix_web::test]
async fn a_content_type_other_than_json_is_415() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let mut request = signed(JOB_FAILURE);
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        let answer = send(&app, request).await;
        assert_rejected(&answer, &calls, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}

#[actix_web::test]
async fn a_malformed_body_is_422_without_on_malformed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    let answer = send(&app, signed("not json")).await;
    assert_rejected(&answer, &calls, StatusCode::UNPROCESSABLE_ENTITY);
}

#[actix_web::test]
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
    let app = app(Receiver::new(verifier(), dispatcher)).await;
    assert_eq!(send(&app, signed("not json")).await.status, StatusCode::OK);
    assert_eq!(*stored.lock().unwrap(), [Bytes::from_static(b"not json")]);
    let failed = send(&app, signed("fail: not json")).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!failed.body.contains("storage down"));
}

#[actix_web::test]
async fn a_failing_handler_is_500() {
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, |_| Err::<(), _>("db down"));
    let app = app(Receiver::new(verifier(), dispatcher)).await;
    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!answer.body.contains("db down"), "details stay in the logs");
    assert!(!answer.body.contains(SECRET));
}

#[actix_web::test]
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
    let app = app(Receiver::new(verifier(), dispatcher)).await;
    let (first, second) = tokio::join!(send(&app, signed(JOB_FAILURE)), async {
        entered.notified().await;
        let second = send(&app, signed(JOB_FAILURE)).await;
        gate.notify_one();
        second
    });
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        send(&app, signed(JOB_FAILURE)).await.status,
        StatusCode::OK,
        "duplicate"
    );
}

#[actix_web::test]
async fn only_post_is_routed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(Receiver::new(verifier(), counting(&calls))).await;
    for method in [http::Method::GET, http::Method::PUT, http::Method::DELETE] {
        let mut request = signed(JOB_FAILURE);
        *request.method_mut() = method;
        let answer = send(&app, request).await;
        assert_rejected(&answer, &calls, StatusCode::METHOD_NOT_ALLOWED);
    }
    let mut elsewhere = signed(JOB_FAILURE);
    *elsewhere.uri_mut() = "/webhooks/other".parse().unwrap();
    let answer = send(&app, elsewhere).await;
    assert_rejected(&answer, &calls, StatusCode::NOT_FOUND);
}

// --- queue mode ------------------------------------------------------------------------------

#[actix_web::test]
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
    let app = app(Receiver::with_inbox(verifier(), inbox.clone())).await;
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

#[actix_web::test]
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
    let app = app(Receiver::with_inbox(verifier(), inbox.clone())).await;
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

type Seen = Arc<Mutex<Option<(WebhookEvent, Bytes)>>>;

async fn record_webhook(
    seen: web::Data<Seen>,
    Webhook { event, body, .. }: Webhook,
) -> &'static str {
    *seen.lock().unwrap() = Some((event, body.body().clone()));
    "handled"
}

#[actix_web::test]
async fn the_webhook_extractor_verifies_then_parses_with_a_data_verifier() {
    let seen: Seen = Arc::default();
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(verifier()))
            .app_data(web::Data::new(seen.clone()))
            .route(PATH, web::post().to(record_webhook)),
    )
    .await;

    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "handled")
    );
    let (event, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(event.event_type(), EventType::JobFailure);
    assert_eq!(body, JOB_FAILURE.as_bytes());

    // Past actix-web's own 256 kB default, within this crate's.
    let big = format!(
        r#"{{"event":"JOB_FAILURE","job_id":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(send(&app, signed(big)).await.status, StatusCode::OK);
    assert!(seen.lock().unwrap().take().is_some());

    let forged = testkit::signed_request(PATH, "another-secret-here", JOB_FAILURE);
    let rejections = [
        (forged, StatusCode::UNAUTHORIZED),
        (signed("[1,2]"), StatusCode::UNPROCESSABLE_ENTITY),
        (
            {
                let mut request = signed(JOB_FAILURE);
                request.headers_mut().remove("propexo-signature");
                request
            },
            StatusCode::BAD_REQUEST,
        ),
        (
            {
                let mut request = signed(JOB_FAILURE);
                request
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
                request
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (request, status) in rejections {
        let answer = send(&app, request).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert!(answer.body.len() < 80 && !answer.body.contains(SECRET));
    }
    assert!(
        seen.lock().unwrap().is_none(),
        "no handler ran on a rejection"
    );
}

#[actix_web::test]
async fn the_verified_body_extractor_takes_a_plain_verifier_and_a_body_limit() {
    let app = test::init_service(
        App::new()
            .app_data(verifier())
            .app_data(BodyLimit(64))
            .route(
                PATH,
                web::post().to(|body: VerifiedBody| async move { body.body().len().to_string() }),
            ),
    )
    .await;
    let answer = send(&app, signed("{}")).await;
    assert_eq!((answer.status, answer.body.as_str()), (StatusCode::OK, "2"));
    assert_eq!(
        send(&app, signed("x".repeat(65))).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let polled = Arc::new(AtomicUsize::new(0));
    let streamed = call(&app, chunked(&signed("x".repeat(2000)), &polled)).await;
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        polled.load(Ordering::SeqCst),
        1,
        "stopped at the first chunk"
    );
}

#[actix_web::test]
async fn a_body_limit_in_web_data_is_honoured_too() {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(verifier()))
            .app_data(web::Data::new(BodyLimit(64)))
            .route(PATH, web::post().to(|_: VerifiedBody| async { "ok" })),
    )
    .await;
    assert_eq!(send(&app, signed("{}")).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, signed("x".repeat(65))).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[actix_web::test]
async fn without_a_verifier_the_extractors_fail_with_500_not_a_panic() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (webhooks, bodies) = (calls.clone(), calls.clone());
    let app = test::init_service(
        App::new()
            .route(
                PATH,
                web::post().to(move |_: Webhook| {
                    webhooks.fetch_add(1, Ordering::SeqCst);
                    async { "ok" }
                }),
            )
            .route(
                "/raw",
                web::post().to(move |_: VerifiedBody| {
                    bodies.fetch_add(1, Ordering::SeqCst);
                    async { "ok" }
                }),
            ),
    )
    .await;
    let answer = send(&app, signed(JOB_FAILURE)).await;
    assert_rejected(&answer, &calls, StatusCode::INTERNAL_SERVER_ERROR);
    let raw = testkit::signed_request("/raw", SECRET, JOB_FAILURE);
    let answer = send(&app, raw).await;
    assert_rejected(&answer, &calls, StatusCode::INTERNAL_SERVER_ERROR);
}

#[actix_web::test]
async fn an_extractor_failure_downcasts_to_the_webhook_rejection() {
    async fn describe(body: Result<VerifiedBody, actix_web::Error>) -> HttpResponse {
        match body {
            Ok(_) => HttpResponse::Ok().body("verified"),
            Err(error) => match error.as_error::<WebhookRejection>() {
                Some(WebhookRejection::Signature(Error::MultipleSignatures)) => {
                    HttpResponse::BadRequest().body("multiple signatures")
                }
                Some(other) => HttpResponse::BadRequest().body(format!("{other:?}")),
                None => HttpResponse::InternalServerError().finish(),
            },
        }
    }
    let app = test::init_service(
        App::new()
            .app_data(verifier())
            .route(PATH, web::post().to(describe)),
    )
    .await;
    assert_eq!(send(&app, signed(JOB_FAILURE)).await.body, "verified");
    let mut twice = signed(JOB_FAILURE);
    let value = twice.headers()["propexo-signature"].clone();
    twice.headers_mut().append("propexo-signature", value);
    let answer = send(&app, twice).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::BAD_REQUEST, "multiple signatures")
    );
}

// --- raw-body safety -------------------------------------------------------------------------

#[actix_web::test]
async fn unusual_whitespace_and_key_order_verify_because_nothing_is_reserialized() {
    let body = "{\n\t\"vendor\" :\"RESMAN\" ,  \"job_id\":\"JOB_ID_002\",\r\n   \"event\":   \"JOB_FAILURE\"   }\n";
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let dispatcher = Dispatcher::new().on(EventType::JobFailure, move |delivery: Delivery| {
        sink.lock().unwrap().push(delivery.body().clone());
        Ok::<_, String>(())
    });
    let app = app(Receiver::new(verifier(), dispatcher)).await;
    assert_eq!(send(&app, signed(body)).await.status, StatusCode::OK);
    // The same bytes in chunks: the handler still sees them exactly.
    let polled = Arc::new(AtomicUsize::new(0));
    let spaced = format!("{body}{}", " ".repeat(1500));
    assert_eq!(
        call(&app, chunked(&signed(spaced.clone()), &polled))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [Bytes::from(body), Bytes::from(spaced)]
    );
}

// --- over a real socket ----------------------------------------------------------------------

/// Starts an `HttpServer` with two workers on a free port of 127.0.0.1. Drop the clients
/// before stopping it: a graceful stop waits for their idle keep-alive connections.
fn serve(receiver: Receiver) -> (SocketAddr, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = HttpServer::new(move || {
        App::new().configure(propexo_webhooks::actix::service(PATH, receiver.clone()))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (address, handle)
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

fn full(body: Bytes) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(body).boxed()
}

/// A body in 512-byte chunks, with no length known in advance: sent chunked.
fn streamed(body: Bytes) -> Body {
    use http_body_util::BodyExt;
    let chunks: Vec<_> = body
        .chunks(512)
        .map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

async fn post_to(client: &Client, address: SocketAddr, body: String) -> StatusCode {
    let request = testkit::signed_request(&format!("http://{address}{PATH}"), SECRET, body);
    client.request(request.map(full)).await.unwrap().status()
}

#[actix_web::test]
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
    let (address, server) = serve(Receiver::new(verifier(), dispatcher));
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
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 200);
        assert!(seen.values().all(|&count| count == 1));
    }
    drop(client);
    server.stop(true).await;
}

#[actix_web::test]
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
    let (address, server) = serve(Receiver::new(verifier(), dispatcher));
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
    drop(client);
    server.stop(true).await;
}

#[actix_web::test]
async fn every_status_row_holds_over_a_socket() {
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, |_| Ok::<_, String>(()))
        .on(EventType::JobSuccess, |_| Err::<(), _>("handler failed"));
    let (address, server) = serve(Receiver::new(verifier(), dispatcher).body_limit(4096));
    let client = client();
    let url = format!("http://{address}{PATH}");
    let job_success = JOB_FAILURE.replace("JOB_FAILURE", "JOB_SUCCESS");
    let signed_to = |body: &str| testkit::signed_request(&url, SECRET, body.to_owned());
    let with = |edit: &dyn Fn(&mut Request<Bytes>)| {
        let mut request = signed_to(JOB_FAILURE);
        edit(&mut request);
        request.map(full)
    };
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        (signed_to(JOB_FAILURE).map(full), StatusCode::OK),
        (signed_to(JOB_FAILURE).map(streamed), StatusCode::OK),
        (
            with(&|request| {
                request.headers_mut().remove(header::CONTENT_TYPE);
            }),
            StatusCode::OK,
        ),
        (
            signed_to(&job_success).map(full),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            testkit::signed_request(&url, "wrong-secret-value", JOB_FAILURE).map(full),
            StatusCode::UNAUTHORIZED,
        ),
        (
            signed_to("{oops").map(full),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            signed_to(&"x".repeat(5000)).map(full),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            signed_to(&"x".repeat(5000)).map(streamed),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            with(&|request| {
                request.headers_mut().remove("propexo-signature");
            }),
            StatusCode::BAD_REQUEST,
        ),
        (
            with(&|request| {
                let value = request.headers()["propexo-signature"].clone();
                request.headers_mut().append("propexo-signature", value);
            }),
            StatusCode::BAD_REQUEST,
        ),
        (
            with(&|request| {
                request
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            }),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            with(&|request| *request.method_mut() = http::Method::GET),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (index, (request, expected)) in cases.into_iter().enumerate() {
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), expected, "case {index}");
        let retry_after = response.headers().contains_key(header::RETRY_AFTER);
        assert!(!retry_after, "case {index}: only 503s carry Retry-After");
    }

    // Inbox mode: 202 once stored, then 503 with Retry-After once the inbox is full.
    drop(client);
    server.stop(true).await;
    let client = crate::client();
    let inbox = MemoryInbox::with_capacity(1);
    let (address, server) = serve(Receiver::with_inbox(verifier(), inbox.clone()));
    let body = |n: u32| JOB_FAILURE.replace("JOB_ID_002", &format!("JOB_{n}"));
    assert_eq!(
        post_to(&client, address, body(1)).await,
        StatusCode::ACCEPTED
    );
    let request = testkit::signed_request(&format!("http://{address}{PATH}"), SECRET, body(2));
    let full_inbox = client.request(request.map(full)).await.unwrap();
    assert_eq!(full_inbox.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full_inbox.headers()[header::RETRY_AFTER], "5");
    drop(client);
    server.stop(true).await;
}

#[test]
fn the_receiver_can_be_shared_by_every_worker() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Receiver>();
    assert_send_sync_clone::<BodyLimit>();
    assert_send_sync_clone::<Webhook>();
}
