//! Load without loss: signed deliveries over a real socket, many at once, against an axum
//! receiver whose handler fails one call in ten, with a `MemoryIdempotencyStore`. The client
//! re-sends every answer that is not a 2xx until it is acknowledged, as Propexo does (without
//! its 15 minutes between attempts), and re-sends one delivery in ten once more after it was
//! acknowledged, as if the 200 had been lost on the way back. Every delivery must be handled
//! successfully exactly once, except the re-sent copies of SYNC_COMPLETE: it carries no job id,
//! so the default `DedupPolicy` runs an acknowledged copy again (it cannot be told from the next
//! sync), and those deliveries must be handled exactly twice.
//!
//! The failures are the same on every run: each handler call takes the next draw of one seeded
//! sequence, and the run ends with the last delivery's first success.
//!
//! `PROPEXO_LOAD_DELIVERIES` (default 2 000, so that CI stays fast) and
//! `PROPEXO_LOAD_CONCURRENCY` (default 64) size the run. The full run is 10 000 deliveries, in
//! release mode:
//!
//! ```sh
//! PROPEXO_LOAD_DELIVERIES=10000 cargo test --release --features axum,testkit --test load -- --nocapture
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use propexo_webhooks::{
    Delivery, Dispatcher, EventType, MemoryIdempotencyStore, Receiver, Verifier, testkit,
};

const SECRET: &str = "propexo-load-secret-5e0a";
const PATH: &str = "/webhooks/propexo";
/// The seed of the handler's failures: the same draws on every run.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}")),
        Err(_) => default,
    }
}

/// xorshift64: a seeded sequence of draws, shared by every handler call.
struct XorShift(AtomicU64);

impl XorShift {
    fn step(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    fn next(&self) -> u64 {
        let previous = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
                Some(Self::step(x))
            })
            .unwrap_or_else(|x| x);
        Self::step(previous)
    }
}

/// What the receiver's handler did.
struct Ledger {
    /// Successful handler calls, per delivery.
    handled: Vec<AtomicUsize>,
    calls: AtomicUsize,
    failures: AtomicUsize,
    draws: XorShift,
}

impl Ledger {
    fn new(deliveries: usize) -> Self {
        Self {
            handled: (0..deliveries).map(|_| AtomicUsize::new(0)).collect(),
            calls: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            draws: XorShift(AtomicU64::new(SEED)),
        }
    }

    /// Fails one call in ten, at random; otherwise records the delivery as handled.
    fn handle(&self, delivery: &Delivery) -> Result<(), &'static str> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.draws.next().is_multiple_of(10) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err("injected failure");
        }
        let number: usize = delivery
            .event()
            .integration_id()
            .and_then(|id| id.strip_prefix("LOAD_"))
            .and_then(|number| number.parse().ok())
            .expect("a load-test delivery");
        self.handled[number].fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Delivery `n` re-sent after it was acknowledged, as if the 200 had been lost.
fn resent_after_ack(n: usize) -> bool {
    n.is_multiple_of(10)
}

/// Delivery `n` is a SYNC_COMPLETE, which has no job id and so no de-duplication window.
fn without_job_id(n: usize) -> bool {
    n % 3 == 1
}

/// How often delivery `n` must have been handled successfully in the end.
fn expected_runs(n: usize) -> usize {
    if resent_after_ack(n) && without_job_id(n) {
        2
    } else {
        1
    }
}

/// Delivery `n`: one of three triggers, told apart by its integration id.
fn body(n: usize) -> String {
    match n % 3 {
        0 => format!(
            r#"{{"event":"JOB_FAILURE","integration_id":"LOAD_{n}","job_id":"JOB_{n}","job_type":"READ_LEASES","root_job_id":"ROOT_{n}","vendor":"YARDI"}}"#
        ),
        1 => format!(
            r#"{{"trigger":"SYNC_COMPLETE","data":{{"event":"SYNC_COMPLETE","integration_id":"LOAD_{n}","vendor":"ENTRATA","successful_job_count":{n},"failed_job_count":0,"is_sync_finished":true}}}}"#
        ),
        _ => format!(
            r#"{{"event":"DATA_UPDATE","integration_id":"LOAD_{n}","job_id":"JOB_{n}","root_job_id":"ROOT_{n}","vendor":"RESMAN","record_id":"LEASE_{n}","object":"leases","diff":{{"previous":{{"status_normalized":"PENDING"}},"new":{{"status_normalized":"ACTIVE"}}}},"meta":{{"object":"leases","integration_id":"LOAD_{n}"}}}}"#
        ),
    }
}

async fn serve(ledger: &Arc<Ledger>) -> SocketAddr {
    let mut dispatcher = Dispatcher::new().idempotency(MemoryIdempotencyStore::new());
    for trigger in [
        EventType::JobFailure,
        EventType::SyncComplete,
        EventType::DataUpdate,
    ] {
        let ledger = ledger.clone();
        dispatcher = dispatcher.on(trigger, move |delivery: Delivery| ledger.handle(&delivery));
    }
    let receiver = Receiver::new(Verifier::new(SECRET).unwrap(), dispatcher);
    let app = Router::new().route(PATH, propexo_webhooks::axum::route(receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// What the client saw.
#[derive(Default)]
struct Sent {
    requests: AtomicUsize,
    acknowledged: AtomicUsize,
    /// Answers that are not 2xx, all of them re-sent.
    refused: AtomicUsize,
    /// Refusals with a status other than the 500 of a failed handler.
    refused_otherwise: AtomicUsize,
    /// Requests that got no answer (a connection error), re-sent too.
    unanswered: AtomicUsize,
    /// Copies of acknowledged deliveries, sent as if the acknowledgment had been lost.
    lost_acks: AtomicUsize,
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Sends delivery `n` until it is acknowledged; returns whether the answer was a 2xx.
async fn send_once(client: &Client, url: &str, body: &str, sent: &Sent) -> bool {
    sent.requests.fetch_add(1, Ordering::SeqCst);
    let request = testkit::signed_request(url, SECRET, body.to_owned()).map(Full::new);
    match client.request(request).await {
        Ok(response) if response.status().is_success() => true,
        Ok(response) => {
            sent.refused.fetch_add(1, Ordering::SeqCst);
            if response.status() != http::StatusCode::INTERNAL_SERVER_ERROR {
                sent.refused_otherwise.fetch_add(1, Ordering::SeqCst);
            }
            false
        }
        Err(_) => {
            sent.unanswered.fetch_add(1, Ordering::SeqCst);
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_is_handled_exactly_once_under_load_with_failing_handlers() {
    let deliveries = env_or("PROPEXO_LOAD_DELIVERIES", 2_000);
    let concurrency = env_or("PROPEXO_LOAD_CONCURRENCY", 64).max(1);
    let ledger = Arc::new(Ledger::new(deliveries));
    let address = serve(&ledger).await;
    let url: Arc<str> = format!("http://{address}{PATH}").into();
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let sent = Arc::new(Sent::default());
    let next = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, sent, next) =
                (client.clone(), url.clone(), sent.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= deliveries {
                        break;
                    }
                    let body = body(n);
                    while !send_once(&client, &url, &body, &sent).await {}
                    sent.acknowledged.fetch_add(1, Ordering::SeqCst);
                    if resent_after_ack(n) {
                        sent.lost_acks.fetch_add(1, Ordering::SeqCst);
                        while !send_once(&client, &url, &body, &sent).await {}
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();

    let load = |counter: &AtomicUsize| counter.load(Ordering::SeqCst);
    let requests = load(&sent.requests);
    let failures = load(&ledger.failures);
    println!(
        "load: {deliveries} deliveries at concurrency {concurrency}: {failures} failures \
         injected in {} handler calls, {} re-sent after a refusal, {} re-sent after an \
         acknowledgment, {requests} requests in {:.2?} ({:.0} requests/s)",
        load(&ledger.calls),
        load(&sent.refused) + load(&sent.unanswered),
        load(&sent.lost_acks),
        elapsed,
        requests as f64 / elapsed.as_secs_f64(),
    );

    assert_eq!(
        load(&sent.acknowledged),
        deliveries,
        "every delivery acknowledged"
    );
    let handled: Vec<usize> = ledger.handled.iter().map(load).collect();
    let lost = handled.iter().filter(|&&count| count == 0).count();
    let miscounted = handled
        .iter()
        .enumerate()
        .filter(|&(n, &count)| count != 0 && count != expected_runs(n))
        .count();
    assert_eq!(
        (lost, miscounted),
        (0, 0),
        "deliveries never handled, and handled another number of times than their policy allows"
    );
    let runs_again = (0..deliveries)
        .filter(|&n| resent_after_ack(n) && without_job_id(n))
        .count();
    assert_eq!(load(&sent.unanswered), 0, "requests without an answer");
    assert_eq!(
        load(&sent.refused),
        failures,
        "one refusal per injected failure, and no other"
    );
    assert_eq!(load(&sent.refused_otherwise), 0, "refusals other than 500");
    assert_eq!(
        load(&ledger.calls),
        deliveries + failures + runs_again,
        "acknowledged deliveries sent again ran the handler only when they have no job id"
    );
    assert_eq!(
        requests,
        deliveries + failures + load(&sent.lost_acks),
        "every request accounted for"
    );
}
