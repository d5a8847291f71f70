//! `Verifier::verify` against its floor and against the naive way, body by body size.
//!
//! - `sha256`: `sha2::Sha256::digest` of the body, nothing else. HMAC-SHA256 hashes the body
//!   once plus two or three extra blocks, so no verifier can be faster: this is the floor.
//! - `verifier`: `Verifier::verify(body, header)`: parse the header, hash from the cached keyed
//!   state, compare in constant time.
//! - `naive`: what a receiver often writes: key a new `Hmac<Sha256>` per request, `hex::decode`
//!   the header into a `Vec`, compare.
//!
//! Run with `cargo bench --bench verify`; `scripts/bench-report.py` turns the results into
//! BENCHMARKS.md.

#![expect(missing_docs, reason = "criterion_group! declares a pub fn")]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use propexo_webhooks::{Verifier, sign};
use sha2::{Digest, Sha256};

const SECRET: &str = "propexo-bench-secret-2026";

const SIZES: [(&str, usize); 5] = [
    ("256B", 256),
    ("1KiB", 1 << 10),
    ("16KiB", 16 << 10),
    ("256KiB", 256 << 10),
    ("1MiB", 1 << 20),
];

/// JSON-looking bytes; what they say does not change the cost of hashing them.
fn body(len: usize) -> Vec<u8> {
    br#"{"status_normalized":"ACTIVE","rent_amount_in_cents":185000,"#
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

fn naive_verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let Ok(expected) = hex::decode(header) else {
        return false;
    };
    mac.verify_slice(&expected).is_ok()
}

fn verify(c: &mut Criterion) {
    let verifier = Verifier::new(SECRET).expect("a valid secret");
    let mut group = c.benchmark_group("verify");
    for (label, len) in SIZES {
        let body = body(len);
        let header = sign(SECRET, &body);
        assert!(verifier.verify(&body, &header).is_ok());
        assert!(naive_verify(SECRET.as_bytes(), &body, &header));

        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("sha256", label), &body, |b, body| {
            b.iter(|| Sha256::digest(black_box(body.as_slice())));
        });
        group.bench_with_input(BenchmarkId::new("verifier", label), &body, |b, body| {
            b.iter(|| verifier.verify(black_box(body), black_box(&header)).is_ok());
        });
        group.bench_with_input(BenchmarkId::new("naive", label), &body, |b, body| {
            b.iter(|| naive_verify(SECRET.as_bytes(), black_box(body), black_box(&header)));
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
