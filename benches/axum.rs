//! The axum adapter in process (`tower::ServiceExt::oneshot`), against a bare axum handler
//! that only reads the body as `Bytes`: what the receiver adds to axum's own cost per request.
//!
//! - `bare`: `post(|body: Bytes| ...)`, the floor;
//! - `route`: `propexo_webhooks::axum::route(Receiver)`: header checks, body read with the
//!   limit, verification, parsing, dispatch to one trivial handler;
//! - `extractor`: a handler taking the `Webhook` extractor (verify, then parse).
//!
//! Every request is a realistic, signed 1 KiB lease DATA_UPDATE, built outside the timed part.
//!
//! Run with `cargo bench --features axum,testkit --bench axum`.

#![expect(missing_docs, reason = "criterion_group! declares a pub fn")]

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use propexo_webhooks::axum::Webhook;
use propexo_webhooks::{Delivery, Dispatcher, EventType, Receiver, Verifier, testkit};
use tower::ServiceExt;

const SECRET: &str = "propexo-bench-secret-2026";
const PATH: &str = "/webhooks/propexo";

fn apps() -> [(&'static str, Router); 3] {
    let verifier = Verifier::new(SECRET).unwrap();
    let dispatcher = Dispatcher::new().on(EventType::DataUpdate, |delivery: Delivery| {
        black_box(delivery.event().record_id());
        Ok::<_, Infallible>(())
    });
    let bare = Router::new().route(
        PATH,
        post(|body: Bytes| async move { black_box(body).len().to_string() }),
    );
    let route = Router::new().route(
        PATH,
        propexo_webhooks::axum::route(Receiver::new(verifier.clone(), dispatcher)),
    );
    let extractor = Router::new()
        .route(
            PATH,
            post(|webhook: Webhook| async move {
                black_box(webhook.event.record_id().map(str::len));
                "ok"
            }),
        )
        .with_state(verifier);
    [("bare", bare), ("route", route), ("extractor", extractor)]
}

fn axum_in_process(c: &mut Criterion) {
    // The receiver times the body read out, so it needs the time driver, as in any server.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let body = Bytes::from(common::lease_update(1024));
    let request = || testkit::signed_request(PATH, SECRET, body.clone()).map(Body::from);

    let mut group = c.benchmark_group("axum");
    group.throughput(Throughput::Elements(1));
    for (name, app) in apps() {
        // Every app must answer 200 to the request measured.
        let status = runtime
            .block_on(app.clone().oneshot(request()))
            .unwrap()
            .status();
        assert_eq!(status, 200, "{name}");
        group.bench_function(name, |b| {
            b.iter_batched(
                request,
                |request| runtime.block_on(app.clone().oneshot(request)).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, axum_in_process);
criterion_main!(benches);
