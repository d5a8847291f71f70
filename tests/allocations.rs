//! Verification allocates nothing: measured with `allocation-counter`, a global allocator that
//! counts per thread, so tests running in parallel do not disturb each other.

use http::{HeaderMap, HeaderValue};
use propexo_webhooks::{SIGNATURE_HEADER, Secret, Verifier, sign};

fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn the_counter_sees_allocations() {
    let counted = allocations_during(|| {
        std::hint::black_box(vec![0u8; 64]);
    });
    assert_eq!(counted, 1);
}

#[test]
fn verifying_a_one_mebibyte_body_allocates_nothing() {
    let body = vec![b'x'; 1 << 20];
    let verifier = Verifier::new("propexo-demo-secret").unwrap();
    let signature = sign("propexo-demo-secret", &body);
    let mut headers = HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).unwrap());

    let counted = allocations_during(|| {
        verifier.verify(&body, &signature).unwrap();
        verifier.verify_headers(&headers, &body).unwrap();
    });
    assert_eq!(counted, 0);
}

#[test]
fn a_failed_verification_allocates_nothing_either() {
    let body = vec![b'y'; 1 << 20];
    let verifier = Verifier::from_secrets([
        Secret::new("propexo-new-secret").unwrap().with_label("new"),
        Secret::new("propexo-old-secret").unwrap().with_label("old"),
    ])
    .unwrap();
    let signature = sign("a-third-secret", &body);

    let counted = allocations_during(|| {
        assert!(verifier.verify(&body, &signature).is_err());
        assert!(verifier.verify(&body, "not-hex").is_err());
    });
    assert_eq!(counted, 0);
}

#[test]
fn a_labelled_match_allocates_nothing() {
    let body = vec![b'z'; 4096];
    let verifier = Verifier::from_secrets([
        Secret::new("propexo-new-secret").unwrap().with_label("new"),
        Secret::new("propexo-old-secret").unwrap().with_label("old"),
    ])
    .unwrap();
    let signature = sign("propexo-old-secret", &body);
    let counted = allocations_during(|| {
        let verified = verifier.verify(&body, &signature).unwrap();
        assert_eq!(verified.label(), Some("old"));
    });
    assert_eq!(counted, 0);
}
