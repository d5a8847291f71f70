//! The API client against a local mock of Propexo's REST API: a real axum server on
//! 127.0.0.1, spoken to over real HTTP, that follows Propexo's documented behaviour: bearer
//! auth, the `{meta, results}` envelope, `x-ratelimit-limit` / `x-ratelimit-remaining`, a
//! slowdown past 80 % of the limit, 429 past 100 % until the (shortened) window resets, the
//! `{"error": {...}}` body, and 5xx answers when told to.
//!
//! Nothing here asserts a duration: the mock counts what it received, and the tests assert
//! those counts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use propexo_webhooks::records::{Lease, Property, Resident, ServiceRequest, Unit};
use propexo_webhooks::{
    AnyRecord, ApiClient, ApiError, Delivery, Dispatcher, EventType, FetchedRecord, ObjectType,
    Outcome, Record, VerifiedBody, Verifier, WebhookEvent, sign,
};
use serde_json::{Value, json};
use tokio::time::Instant;

const KEY: &str = "pk_test_9f8e7d6c5b4a-never-printed";
const SECRET: &str = "whsec-api-test-secret-0123456789";

// --- the mock ------------------------------------------------------------------------------

#[derive(Clone)]
struct Mock {
    inner: Arc<MockInner>,
}

struct MockInner {
    limit: u32,
    window: Duration,
    started: Instant,
    /// How long answers past 80 % of the limit are held (Propexo: 2 s).
    slowdown: Duration,
    /// Every request whose number (from 1) is a multiple of this answers 500.
    fail_every: Option<u32>,
    state: Mutex<MockState>,
}

#[derive(Default)]
struct MockState {
    /// Requests received (all of them, 429s included) per window index.
    per_window: HashMap<u64, u32>,
    total: u32,
    answered_429: u32,
    answered_5xx: u32,
    per_path: HashMap<String, u32>,
    records: HashMap<String, Value>,
    /// Paths that always answer 503.
    down: Vec<String>,
}

impl Mock {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            inner: Arc::new(MockInner {
                limit,
                window,
                started: Instant::now(),
                slowdown: window / 20,
                fail_every: None,
                state: Mutex::default(),
            }),
        }
    }

    fn failing_every(mut self, n: u32) -> Self {
        Arc::get_mut(&mut self.inner).unwrap().fail_every = Some(n);
        self
    }

    /// Stores `record` (its `id` set to `id`) at `/v1/<resource>/<id>`.
    fn insert<R: Record>(&self, id: &str, mut record: Value) {
        record["id"] = json!(id);
        let path = R::OBJECT_TYPE.record_path(id).unwrap();
        self.inner
            .state
            .lock()
            .unwrap()
            .records
            .insert(path, record);
    }

    fn take_down(&self, path: &str) {
        self.inner.state.lock().unwrap().down.push(path.to_owned());
    }

    fn requests_to(&self, path: &str) -> u32 {
        let state = self.inner.state.lock().unwrap();
        state.per_path.get(path).copied().unwrap_or(0)
    }

    fn busiest_window(&self) -> u32 {
        let state = self.inner.state.lock().unwrap();
        state.per_window.values().copied().max().unwrap_or(0)
    }

    fn counts(&self) -> (u32, u32, u32) {
        let state = self.inner.state.lock().unwrap();
        (state.total, state.answered_429, state.answered_5xx)
    }

    /// Serves the mock on a free port of 127.0.0.1 and returns its base URL.
    async fn serve(&self) -> String {
        let app = Router::new()
            .route("/v1/{*path}", get(answer))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let content_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (status, content_type, body.to_string()).into_response()
}

fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": code, "message": message, "details": {}}}),
    )
}

async fn answer(
    State(mock): State<Mock>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let inner = &mock.inner;
    let path = format!("/v1/{rest}");
    let expected = format!("Bearer {KEY}");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        // Echo the key received, as a careless API might: the client must scrub it.
        return error_body(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            &format!("invalid API key: {auth}"),
        );
    }
    let (count, number, record, down) = {
        let mut state = inner.state.lock().unwrap();
        let window = (inner.started.elapsed().as_nanos() / inner.window.as_nanos()) as u64;
        let count = state.per_window.entry(window).or_default();
        *count += 1;
        let count = *count;
        state.total += 1;
        let number = state.total;
        *state.per_path.entry(path.clone()).or_default() += 1;
        if count > inner.limit {
            state.answered_429 += 1;
        }
        let down = state.down.contains(&path) || inner.fail_every.is_some_and(|n| number % n == 0);
        if down && count <= inner.limit {
            state.answered_5xx += 1;
        }
        (count, number, state.records.get(&path).cloned(), down)
    };
    let _ = number;
    let remaining = inner.limit.saturating_sub(count);
    let mut response = if count > inner.limit {
        error_body(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
        )
    } else {
        if count * 5 > inner.limit * 4 {
            tokio::time::sleep(inner.slowdown).await;
        }
        if down {
            error_body(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal_error",
                "try again",
            )
        } else {
            match record {
                Some(record) => {
                    json_response(StatusCode::OK, json!({"meta": {}, "results": record}))
                }
                None => error_body(StatusCode::NOT_FOUND, "not_found", "No such record"),
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", inner.limit.into());
    headers.insert("x-ratelimit-remaining", remaining.into());
    response
}

fn fixture(kebab: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/records/{kebab}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn client(base_url: &str, requests: u32, per: Duration) -> ApiClient {
    ApiClient::builder(KEY)
        .base_url(base_url)
        .rate_limit(requests, per)
        .retry_backoff(Duration::from_millis(20))
        .build()
        .unwrap()
}

/// Polls every future from the first poll on, on this task: all of them are under way before
/// any answer can arrive.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

fn data_update(object: &str, id: &str) -> String {
    json!({"trigger": "DATA_UPDATE", "data": {"event": "DATA_UPDATE", "integration_id": "int_1",
        "vendor": "ENTRATA", "object": object, "record_id": id,
        "diff": {"previous": {"status_normalized": "PENDING"}, "new": {"status_normalized": "ACTIVE"}}},
        "meta": {"object": object, "integration_id": "int_1"}})
    .to_string()
}

fn verified(body: &str) -> VerifiedBody {
    let verifier = Verifier::new(SECRET).unwrap();
    VerifiedBody::verify_signature(&verifier, body.to_owned(), &sign(SECRET, body.as_bytes()))
        .unwrap()
}

// --- typed reads -----------------------------------------------------------------------------

#[tokio::test]
async fn typed_reads_of_several_record_types() {
    let mock = Mock::new(150, Duration::from_secs(60));
    mock.insert::<Lease>("lease_1", fixture("leases"));
    mock.insert::<Resident>("resident_1", fixture("residents"));
    mock.insert::<Property>("property_1", fixture("properties"));
    mock.insert::<Unit>("unit_1", fixture("units"));
    mock.insert::<ServiceRequest>("sr_1", fixture("service-requests"));
    let api = client(&mock.serve().await, 150, Duration::from_secs(60));

    let lease: Lease = api.get("lease_1").await.unwrap();
    let mut expected: Lease = serde_json::from_value(fixture("leases")).unwrap();
    expected.id = Some("lease_1".to_owned());
    assert_eq!(lease, expected);
    assert!(
        lease.residents_meta_data.is_some(),
        "nested records are read too"
    );

    let resident: Resident = api.get("resident_1").await.unwrap();
    assert_eq!(resident.id.as_deref(), Some("resident_1"));
    assert_eq!(
        resident.first_name,
        serde_json::from_value::<Resident>(fixture("residents"))
            .unwrap()
            .first_name
    );
    let property: Property = api.get("property_1").await.unwrap();
    assert_eq!(property.id.as_deref(), Some("property_1"));
    let unit: Unit = api.get("unit_1").await.unwrap();
    assert_eq!(unit.id.as_deref(), Some("unit_1"));
    let request: ServiceRequest = api.get("sr_1").await.unwrap();
    assert_eq!(request.id.as_deref(), Some("sr_1"));

    // From an event, as whatever record type its object has.
    let event = WebhookEvent::from_slice(data_update("leases", "lease_1").as_bytes()).unwrap();
    match api.fetch(&event).await.unwrap() {
        AnyRecord::Lease(fetched) => assert_eq!(*fetched, expected),
        other => panic!("expected a lease, got {other:?}"),
    }
    let fetched: Lease = api.fetch_as(&event).await.unwrap();
    assert_eq!(fetched, expected);
    assert!(matches!(
        api.fetch_as::<Resident>(&event).await,
        Err(ApiError::ObjectMismatch { .. })
    ));

    // Objects without a single-record endpoint, and events about no record, are answered
    // without a request.
    let link =
        WebhookEvent::from_slice(data_update("residents-to-leases", "rtl_1").as_bytes()).unwrap();
    assert!(matches!(
        api.fetch(&link).await,
        Err(ApiError::NoRecordEndpoint(ObjectType::ResidentsToLeases))
    ));
    let job = WebhookEvent::from_slice(
        br#"{"event":"JOB_FAILURE","integration_id":"i","job_id":"j","vendor":"RESMAN"}"#,
    )
    .unwrap();
    assert!(matches!(
        api.fetch(&job).await,
        Err(ApiError::NotARecordEvent(EventType::JobFailure))
    ));
    assert!(matches!(
        api.get::<Lease>("..").await,
        Err(ApiError::InvalidRecordId(_))
    ));

    // A 404 is Propexo's typed error, and is not retried.
    let missing = api.get::<Lease>("nope").await.unwrap_err();
    assert!(
        missing.is_not_found() && !missing.is_transient(),
        "{missing:?}"
    );
    assert_eq!(
        missing.propexo_error().and_then(|e| e.code.as_deref()),
        Some("not_found")
    );
    assert_eq!(mock.requests_to("/v1/leases/nope"), 1);
    let (total, _, _) = mock.counts();
    assert_eq!(total, 8, "one request per read, none for the refused ones");
}

// --- the rate limit ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_fetches_stay_within_the_limit() {
    const FETCHES: u32 = 500;
    const LIMIT: u32 = 150;
    let window = Duration::from_millis(800);
    // Every 40th request answers 500: retries draw on the same budget.
    let mock = Mock::new(LIMIT, window).failing_every(40);
    let lease = fixture("leases");
    for i in 0..FETCHES {
        mock.insert::<Lease>(&format!("lease_{i}"), lease.clone());
    }
    let api = client(&mock.serve().await, LIMIT, window);

    // One task per fetch, each with its own clone, as handlers would be.
    let tasks: Vec<_> = (0..FETCHES)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move { api.get::<Lease>(&format!("lease_{i}")).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let lease = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("fetch {i}: {e}"));
        assert_eq!(lease.id, Some(format!("lease_{i}")));
    }

    let (total, answered_429, answered_5xx) = mock.counts();
    assert!(answered_5xx > 0, "the mock's 5xx answers were retried");
    assert_eq!(
        total,
        FETCHES + answered_5xx,
        "one request per fetch and per 5xx"
    );
    assert_eq!(answered_429, 0, "Propexo never had to answer 429");
    assert!(
        mock.busiest_window() <= LIMIT,
        "a window received {} requests, over the limit of {LIMIT}",
        mock.busiest_window()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_waits_for_the_window_and_retries() {
    // The client is told 150 per window, but the key's real limit is 40 (a smaller contract,
    // or another process using the key): Propexo answers 429, and every fetch still succeeds.
    let window = Duration::from_millis(400);
    let mock = Mock::new(40, window);
    let lease = fixture("leases");
    for i in 0..120 {
        mock.insert::<Lease>(&format!("lease_{i}"), lease.clone());
    }
    let api = ApiClient::builder(KEY)
        .base_url(mock.serve().await)
        .rate_limit(150, window)
        .retries(10)
        .build()
        .unwrap();
    let ids: Vec<String> = (0..120).map(|i| format!("lease_{i}")).collect();
    let results = join_all(ids.iter().map(|id| api.get::<Lease>(id)).collect()).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap().id, Some(format!("lease_{i}")));
    }
    let (total, answered_429, _) = mock.counts();
    assert!(answered_429 > 0, "the mock answered 429");
    assert_eq!(
        total,
        120 + answered_429,
        "each 429 was retried once, and only then"
    );
}

// --- single flight -------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_fetches_of_one_record_share_one_request() {
    let mock = Mock::new(150, Duration::from_secs(60));
    mock.insert::<Lease>("lease_1", fixture("leases"));
    let api = client(&mock.serve().await, 150, Duration::from_secs(60));

    let leases = join_all((0..50).map(|_| api.get::<Lease>("lease_1")).collect()).await;
    let first = leases[0].as_ref().unwrap();
    assert!(leases.iter().all(|lease| lease.as_ref().unwrap() == first));
    assert_eq!(mock.requests_to("/v1/leases/lease_1"), 1);

    // Typed and untyped reads of the same record share it too.
    let event = WebhookEvent::from_slice(data_update("leases", "lease_1").as_bytes()).unwrap();
    let (typed, any) = tokio::join!(api.get::<Lease>("lease_1"), api.fetch(&event));
    assert!(typed.is_ok() && any.is_ok());
    assert_eq!(mock.requests_to("/v1/leases/lease_1"), 2);

    // Nothing is cached once the request is over: a later read asks again.
    api.get::<Lease>("lease_1").await.unwrap();
    assert_eq!(mock.requests_to("/v1/leases/lease_1"), 3);
}

// --- the dispatcher --------------------------------------------------------------------------

#[tokio::test]
async fn a_typed_route_receives_the_full_record_and_a_failed_fetch_is_retried() {
    let mock = Mock::new(150, Duration::from_secs(60));
    mock.insert::<Lease>("lease_1", fixture("leases"));
    mock.insert::<Lease>("lease_down", fixture("leases"));
    mock.take_down("/v1/leases/lease_down");
    let api = ApiClient::builder(KEY)
        .base_url(mock.serve().await)
        .retries(1)
        .retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let dispatcher = Dispatcher::new()
        .on_update_fetched(&api, {
            let seen = Arc::clone(&seen);
            move |lease: FetchedRecord<Lease>| {
                seen.lock().unwrap().push(lease.record);
                async { Ok::<_, std::convert::Infallible>(()) }
            }
        })
        .on(EventType::DataUpdate, {
            let api = api.clone();
            move |delivery: Delivery| {
                let api = api.clone();
                async move { delivery.fetch_record(&api).await.map(|_| ()) }
            }
        });

    let outcome = dispatcher
        .dispatch(verified(&data_update("leases", "lease_1")))
        .await;
    assert!(
        matches!(outcome, Outcome::Handled { handlers: 2 }),
        "{outcome:?}"
    );
    let record = seen.lock().unwrap().pop().unwrap();
    assert_eq!(record.id.as_deref(), Some("lease_1"));
    // The full record, not the diff's one field.
    assert!(record.residents_meta_data.is_some() && record.x_id.is_some());

    // Propexo is down for this record: the delivery is not acknowledged, so it comes again.
    let outcome = dispatcher
        .dispatch(verified(&data_update("leases", "lease_down")))
        .await;
    let Outcome::Failed(errors) = &outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(!outcome.is_acknowledged());
    assert_eq!(errors.len(), 2);
    assert!(seen.lock().unwrap().is_empty());
    for error in errors.iter() {
        let api_error = error.error().unwrap().downcast_ref::<ApiError>().unwrap();
        assert_eq!(api_error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(api_error.is_transient());
    }
    // Both routes' reads were one request (single flight), retried once.
    assert_eq!(mock.requests_to("/v1/leases/lease_down"), 2);
}

// --- the API key ---------------------------------------------------------------------------

#[tokio::test]
async fn the_api_key_is_in_no_error_or_debug_output() {
    let mock = Mock::new(150, Duration::from_secs(60));
    mock.insert::<Lease>("lease_down", fixture("leases"));
    mock.take_down("/v1/leases/lease_down");
    let base = mock.serve().await;

    let builder = ApiClient::builder(KEY).base_url(&base).retries(1);
    let mut outputs = vec![format!("{builder:?}")];
    let api = builder
        .retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    outputs.push(format!("{api:?}"));

    // A key Propexo refuses, and echoes back in its error message.
    let wrong = ApiClient::builder(format!("{KEY}-revoked"))
        .base_url(&base)
        .build()
        .unwrap();
    let refused = wrong.get::<Lease>("lease_down").await.unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!refused.is_transient());
    assert!(
        refused
            .propexo_error()
            .and_then(|e| e.message.as_deref())
            .is_some_and(|m| m.contains("[redacted]")),
        "{refused}"
    );
    // 5xx after retries, and a connection refused.
    let down = api.get::<Lease>("lease_down").await.unwrap_err();
    // A server that accepts the connection (the listener's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let timed_out = ApiClient::builder(KEY)
        .base_url(format!("http://{}", silent.local_addr().unwrap()))
        .timeout(Duration::from_millis(200))
        .retries(0)
        .build()
        .unwrap()
        .get::<Lease>("lease_1")
        .await
        .unwrap_err();
    drop(silent);
    assert!(
        matches!(timed_out, ApiError::Transport { timeout: true, .. }),
        "{timed_out:?}"
    );
    assert!(timed_out.is_transient());
    let invalid = ApiClient::builder(format!("{KEY}\n")).build().unwrap_err();
    assert!(matches!(invalid, ApiError::InvalidApiKey(_)));

    for error in [&refused, &down, &timed_out, &invalid] {
        outputs.push(format!("{error}"));
        outputs.push(format!("{error:?}"));
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            outputs.push(format!("{inner} {inner:?}"));
            source = inner.source();
        }
    }
    assert!(outputs.iter().any(|o| o.contains("invalid API key")));
    for output in &outputs {
        assert!(!output.contains(KEY), "the key leaked: {output}");
        assert!(
            !output.contains("pk_test"),
            "part of the key leaked: {output}"
        );
    }
}

/// With feature `tracing`, retries are logged: never with the key.
#[cfg(feature = "tracing")]
mod logs {
    use std::fmt::Write;
    use std::sync::Mutex;

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// Every event, one line each as a log formatter would write them.
    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

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
            let mut line = Line(format!("span {}:", span.metadata().name()));
            span.record(&mut line);
            self.0.lock().unwrap().push(line.0);
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(format!(
                "{} {}:",
                event.metadata().level(),
                event.metadata().target()
            ));
            event.record(&mut line);
            self.0.lock().unwrap().push(line.0);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[tokio::test]
    async fn retries_are_logged_without_the_key() {
        // Global, as tracing caches call sites' interest process-wide; every test of this
        // binary uses the same key, so every line any of them logs must go without it.
        let capture: &'static Capture = Box::leak(Box::default());
        tracing::subscriber::set_global_default(capture).unwrap();
        // Forget whatever another test's thread cached about call sites before this one.
        tracing::callsite::rebuild_interest_cache();

        let mock = Mock::new(150, Duration::from_secs(60));
        mock.take_down("/v1/leases/lease_down");
        let api = ApiClient::builder(KEY)
            .base_url(mock.serve().await)
            .retries(2)
            .retry_backoff(Duration::from_millis(1))
            .build()
            .unwrap();
        api.get::<Lease>("lease_down").await.unwrap_err();
        let lines = capture.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .filter(|line| line.starts_with("WARN propexo_webhooks::api:"))
                .count()
                >= 2,
            "each retry is logged: {lines:?}"
        );
        for line in &lines {
            assert!(
                !line.contains(KEY),
                "the key leaked into a log line: {line}"
            );
        }
    }
}
