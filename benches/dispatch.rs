//! A delivery end to end in process: verify, parse, dispatch to one trivial handler; against
//! verify and parse alone, so that what the dispatcher adds is visible. Then the same with a
//! `MemoryIdempotencyStore`, for a new delivery and for a duplicate.
//!
//! Every delivery is a realistic 1 KiB lease DATA_UPDATE with its `propexo-signature` header.
//! Inputs are made outside the timed part (`iter_batched`); each one carries its own job id, so
//! that the store sees a new delivery each time, except in `idempotent_duplicate`.
//!
//! - `verify+parse`: `VerifiedBody::verify`, then `WebhookEvent::from_slice` (the baseline);
//! - `dispatch`: `VerifiedBody::verify`, then `Dispatcher::dispatch` (which parses);
//! - `idempotent_new`: the same with a store already holding 100 000 deliveries (its default
//!   bound, about what three hours of steady traffic leave), so that each claim also evicts the
//!   oldest one;
//! - `idempotent_duplicate`: a delivery the store has seen: verified, hashed, recognised,
//!   acknowledged without parsing or running the handler.
//!
//! The handler is a plain closure, so `dispatch` completes at its first poll: a tiny `block_on`
//! with a no-op waker polls it once, and fails loudly if it ever waits.
//!
//! Run with `cargo bench --bench dispatch`.

#![expect(missing_docs, reason = "criterion_group! declares a pub fn")]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use propexo_webhooks::{
    Delivery, Dispatcher, EventType, MemoryIdempotencyStore, Outcome, SIGNATURE_HEADER,
    VerifiedBody, Verifier, WebhookEvent,
};

const SECRET: &str = "propexo-bench-secret-2026";
const BODY_LEN: usize = 1 << 10;
const LABEL: &str = "data_update_1KiB";
/// `MemoryIdempotencyStore`'s default bound.
const STORE_ENTRIES: u64 = 100_000;

/// Polls a future that must not wait on anything: the dispatch of plain closures.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the dispatch waited, but nothing here can wake it"),
    }
}

/// Makes deliveries of one lease update that differ only in their job id, each signed.
struct Deliveries {
    verifier: Verifier,
    template: Vec<u8>,
    digits: std::ops::Range<usize>,
    next: u64,
}

impl Deliveries {
    fn new(verifier: Verifier) -> Self {
        let template = common::lease_update(BODY_LEN);
        let marker = br#""job_id":"clz8job"#;
        let start = template
            .windows(marker.len())
            .position(|window| window == marker)
            .expect("the body has a job id")
            + marker.len();
        Self {
            verifier,
            template,
            digits: start..start + 8,
            next: 0,
        }
    }

    /// The next delivery: headers and body, as a web framework hands them over.
    fn next(&mut self) -> (HeaderMap, Bytes) {
        let mut body = self.template.clone();
        let digits = format!("{:08}", self.next);
        body[self.digits.clone()].copy_from_slice(digits.as_bytes());
        self.next += 1;
        let signature = self.verifier.sign(&body);
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&signature).expect("hex is a valid header value"),
        );
        (headers, Bytes::from(body))
    }
}

fn one_handler() -> Dispatcher {
    Dispatcher::new().on(EventType::DataUpdate, |delivery: Delivery| {
        black_box(&delivery);
        Ok::<_, Infallible>(())
    })
}

fn dispatch(c: &mut Criterion) {
    let verifier = Verifier::new(SECRET).expect("a valid secret");
    let mut deliveries = Deliveries::new(verifier.clone());
    let plain = one_handler();
    let idempotent = one_handler().idempotency(MemoryIdempotencyStore::new());

    // Check once what the timed loops only black-box.
    let (headers, body) = deliveries.next();
    let verified = VerifiedBody::verify(&verifier, headers, body).expect("a valid signature");
    assert!(matches!(
        block_on(plain.dispatch(verified)),
        Outcome::Handled { handlers: 1 }
    ));
    // The idempotent dispatcher starts with a full store.
    for _ in 0..STORE_ENTRIES {
        let (headers, body) = deliveries.next();
        let verified = VerifiedBody::verify(&verifier, headers, body).expect("a valid signature");
        assert!(block_on(idempotent.dispatch(verified)).is_acknowledged());
    }
    let duplicate = deliveries.next();
    let verified = VerifiedBody::verify(&verifier, duplicate.0.clone(), duplicate.1.clone())
        .expect("a valid signature");
    assert!(matches!(
        block_on(idempotent.dispatch(verified.clone())),
        Outcome::Handled { handlers: 1 }
    ));
    assert!(matches!(
        block_on(idempotent.dispatch(verified)),
        Outcome::Duplicate
    ));

    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("verify+parse", LABEL), |b| {
        b.iter_batched(
            || deliveries.next(),
            |(headers, body)| {
                let verified = VerifiedBody::verify(&verifier, headers, body);
                let event = verified.map(|verified| WebhookEvent::from_slice(verified.body()));
                black_box(event.is_ok_and(|event| event.is_ok()))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function(BenchmarkId::new("dispatch", LABEL), |b| {
        b.iter_batched(
            || deliveries.next(),
            |(headers, body)| {
                let verified = VerifiedBody::verify(&verifier, headers, body);
                let outcome = verified.map(|verified| block_on(plain.dispatch(verified)));
                black_box(outcome.is_ok_and(|outcome| outcome.is_acknowledged()))
            },
            BatchSize::SmallInput,
        );
    });
    // The duplicate first: the new deliveries below evict the oldest entries of the store.
    group.bench_function(BenchmarkId::new("idempotent_duplicate", LABEL), |b| {
        b.iter_batched(
            || duplicate.clone(),
            |(headers, body)| {
                let verified = VerifiedBody::verify(&verifier, headers, body);
                let outcome = verified.map(|verified| block_on(idempotent.dispatch(verified)));
                black_box(outcome.is_ok_and(|outcome| matches!(outcome, Outcome::Duplicate)))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function(BenchmarkId::new("idempotent_new", LABEL), |b| {
        b.iter_batched(
            || deliveries.next(),
            |(headers, body)| {
                let verified = VerifiedBody::verify(&verifier, headers, body);
                let outcome = verified.map(|verified| block_on(idempotent.dispatch(verified)));
                black_box(outcome.is_ok_and(|outcome| outcome.is_acknowledged()))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
