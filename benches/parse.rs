//! `WebhookEvent::from_slice` against the naive baseline, `serde_json::from_slice::<Value>` of
//! the same bytes, for every trigger and for realistic DATA_UPDATEs of 1 KiB and 64 KiB.
//!
//! - `typed`: `WebhookEvent::from_slice`: the event, its ids and enums typed; payloads and
//!   diff sides kept as text with an index of their keys.
//! - `value`: `serde_json::from_slice::<serde_json::Value>`: every string and object allocated.
//! - `verify+typed`: what a receiver does with a delivery: `Verifier::verify`, then
//!   `WebhookEvent::from_slice`; the target is to beat `value` alone.
//!
//! Run with `cargo bench --bench parse`.

#![expect(missing_docs, reason = "criterion_group! declares a pub fn")]

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use propexo_webhooks::{EventType, Verifier, WebhookEvent, sign};

const SECRET: &str = "propexo-bench-secret-2026";

/// One fixture per trigger, in the envelope form (the API reference's).
const FIXTURES: [(&str, &[u8]); 7] = [
    (
        "data_new",
        include_bytes!("../tests/fixtures/events/data_new.envelope.json"),
    ),
    (
        "data_update",
        include_bytes!("../tests/fixtures/events/data_update.envelope.json"),
    ),
    (
        "sync_complete",
        include_bytes!("../tests/fixtures/events/sync_complete.envelope.json"),
    ),
    (
        "first_sync_complete",
        include_bytes!("../tests/fixtures/events/first_sync_complete.envelope.json"),
    ),
    (
        "job_failure",
        include_bytes!("../tests/fixtures/events/job_failure.envelope.json"),
    ),
    (
        "job_success",
        include_bytes!("../tests/fixtures/events/job_success.envelope.json"),
    ),
    (
        "write_operation_failure",
        include_bytes!("../tests/fixtures/events/write_operation_failure.envelope.json"),
    ),
];

fn typed_and_value(group_name: &str, inputs: &[(String, Vec<u8>)], c: &mut Criterion) {
    let mut group = c.benchmark_group(group_name);
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    for (label, body) in inputs {
        let event = WebhookEvent::from_slice(body).expect("the body parses");
        assert!(!event.event_type().is_unknown(), "{label}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("typed", label), body, |b, body| {
            b.iter(|| WebhookEvent::from_slice(black_box(body)));
        });
        group.bench_with_input(BenchmarkId::new("value", label), body, |b, body| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)));
        });
    }
    group.finish();
}

fn fixtures(c: &mut Criterion) {
    let inputs: Vec<_> = FIXTURES
        .iter()
        .map(|(label, body)| ((*label).to_owned(), body.to_vec()))
        .collect();
    typed_and_value("parse", &inputs, c);
}

fn data_update(c: &mut Criterion) {
    let inputs = [
        ("data_update_1KiB".to_owned(), common::lease_update(1 << 10)),
        (
            "data_update_64KiB".to_owned(),
            common::lease_update(64 << 10),
        ),
    ];
    for (label, body) in &inputs {
        let event = WebhookEvent::from_slice(body).expect("the body parses");
        assert_eq!(event.event_type(), EventType::DataUpdate, "{label}");
    }
    typed_and_value("parse_data_update", &inputs, c);

    // A delivery as a receiver handles it: verify, then parse into the typed event.
    let verifier = Verifier::new(SECRET).expect("a valid secret");
    let (label, body) = &inputs[0];
    let header = sign(SECRET, body);
    let mut group = c.benchmark_group("verify_and_parse");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_with_input(BenchmarkId::new("verify+typed", label), body, |b, body| {
        b.iter(|| {
            let body = black_box(body.as_slice());
            verifier
                .verify(body, black_box(&header))
                .and_then(|_| WebhookEvent::from_slice(body))
        });
    });
    group.bench_with_input(BenchmarkId::new("value", label), body, |b, body| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)));
    });
    group.finish();
}

criterion_group!(benches, fixtures, data_update);
criterion_main!(benches);
