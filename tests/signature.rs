//! Signing and verification through the public API.

use http::{HeaderMap, HeaderValue};
use propexo_webhooks::{
    Diagnosis, Error, SIGNATURE_HEADER, Secret, Signature, Verifier, diagnose, sign,
    verify_signature,
};
use proptest::prelude::*;

const SECRET: &str = "propexo-demo-secret";
const BODY: &[u8] = br#"{"trigger":"WRITE_OPERATION_FAILURE","data":{"event":"WRITE_OPERATION_FAILURE","integration_id":"INTEGRATION_ID_002","vendor":"RESMAN","root_job_id":"ROOT_OPERATION_ID_002","write_status":"PARTIAL_SUCCESS","errors":["Failed to write resident transaction: Duplicate transaction ID"]}}"#;
/// `createHmac('sha256', SECRET).update(BODY).digest('hex')`, computed with Node's crypto module:
/// the documented reference receiver.
const BODY_SIGNATURE: &str = "11b35751160e165affc8e2a8451b9ff68c51d4da1419f0d8cdb739b533be2ffe";

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for value in values {
        map.append(SIGNATURE_HEADER, HeaderValue::from_bytes(value).unwrap());
    }
    map
}

// RFC 4231, section 4: test cases 1-4, 6 and 7 (case 5 truncates the output, which Propexo
// does not do).
const RFC_4231: &[(&[u8], &[u8], &str)] = &[
    (
        &[0x0b; 20],
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        &[0xaa; 20],
        &[0xdd; 50],
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        &[
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
            0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
        ],
        &[0xcd; 50],
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        &[0xaa; 131],
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        &[0xaa; 131],
        b"This is a test using a larger than block-size key and a larger than block-size data. \
          The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
];

#[test]
fn rfc_4231_vectors_sign_to_the_published_tags() {
    for (index, (key, data, tag)) in RFC_4231.iter().enumerate() {
        assert_eq!(sign(key, data), *tag, "RFC 4231 vector {index}");
    }
}

#[test]
fn rfc_4231_vectors_verify_and_reject_a_changed_tag() {
    for (key, data, tag) in RFC_4231 {
        assert!(verify_signature(key, data, tag).is_ok());
        let mut wrong = tag.to_string();
        wrong.replace_range(63.., if tag.ends_with('0') { "1" } else { "0" });
        assert!(matches!(
            verify_signature(key, data, &wrong),
            Err(Error::SignatureMismatch)
        ));
    }
}

#[test]
fn matches_the_node_reference_receiver() {
    assert_eq!(sign(SECRET, BODY), BODY_SIGNATURE);
    verify_signature(SECRET, BODY, BODY_SIGNATURE).unwrap();
    Verifier::new(SECRET)
        .unwrap()
        .verify(BODY, BODY_SIGNATURE)
        .unwrap();
}

#[test]
fn one_off_verification_refuses_an_empty_secret() {
    let forged = sign("", BODY);
    assert!(matches!(
        verify_signature("", BODY, &forged),
        Err(Error::EmptySecret)
    ));
}

#[test]
fn tampered_body_is_a_mismatch() {
    let mut body = BODY.to_vec();
    body[20] ^= 1;
    let verifier = Verifier::new(SECRET).unwrap();
    assert!(matches!(
        verifier.verify(&body, BODY_SIGNATURE),
        Err(Error::SignatureMismatch)
    ));
}

// --- lenient but safe header parsing ---------------------------------------------------------

#[test]
fn surrounding_whitespace_is_ignored() {
    let verifier = Verifier::new(SECRET).unwrap();
    verifier
        .verify(BODY, &format!(" \t{BODY_SIGNATURE}\t "))
        .unwrap();
}

#[test]
fn uppercase_hex_is_accepted() {
    let verifier = Verifier::new(SECRET).unwrap();
    verifier
        .verify(BODY, &BODY_SIGNATURE.to_uppercase())
        .unwrap();
}

#[test]
fn sha256_prefix_is_accepted() {
    let verifier = Verifier::new(SECRET).unwrap();
    verifier
        .verify(BODY, &format!("sha256={BODY_SIGNATURE}"))
        .unwrap();
    verifier
        .verify(BODY, &format!("SHA256={BODY_SIGNATURE}"))
        .unwrap();
}

// --- every malformed header, each with its own error -----------------------------------------

#[test]
fn missing_header_is_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    let err = verifier
        .verify_headers(&HeaderMap::new(), BODY)
        .unwrap_err();
    assert!(matches!(err, Error::MissingSignature), "{err:?}");
}

#[test]
fn header_twice_is_rejected_even_if_one_value_is_right() {
    let verifier = Verifier::new(SECRET).unwrap();
    let map = headers(&[BODY_SIGNATURE.as_bytes(), BODY_SIGNATURE.as_bytes()]);
    assert!(matches!(
        verifier.verify_headers(&map, BODY),
        Err(Error::MultipleSignatures)
    ));
    let map = headers(&[b"00", BODY_SIGNATURE.as_bytes()]);
    assert!(matches!(
        verifier.verify_headers(&map, BODY),
        Err(Error::MultipleSignatures)
    ));
}

#[test]
fn non_ascii_header_bytes_are_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    let mut value = BODY_SIGNATURE.as_bytes().to_vec();
    value[10] = 0xE9;
    assert!(matches!(
        verifier.verify_headers(&headers(&[&value]), BODY),
        Err(Error::NonAsciiSignature)
    ));
}

#[test]
fn empty_header_is_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    for value in ["", "   ", "sha256=", " sha256= "] {
        assert!(
            matches!(verifier.verify(BODY, value), Err(Error::EmptySignature)),
            "{value:?}"
        );
    }
    assert!(matches!(
        verifier.verify_headers(&headers(&[b""]), BODY),
        Err(Error::EmptySignature)
    ));
}

#[test]
fn odd_length_is_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    assert!(matches!(
        verifier.verify(BODY, &BODY_SIGNATURE[..63]),
        Err(Error::OddLengthSignature { len: 63 })
    ));
    assert!(matches!(
        verifier.verify(BODY, "a"),
        Err(Error::OddLengthSignature { len: 1 })
    ));
}

#[test]
fn non_hex_is_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    let mut value = BODY_SIGNATURE.to_owned();
    value.replace_range(0..1, "g");
    assert!(matches!(
        verifier.verify(BODY, &value),
        Err(Error::NonHexSignature)
    ));
    assert!(matches!(
        verifier.verify(BODY, "sha1=abcd"),
        Err(Error::NonHexSignature)
    ));
    assert!(matches!(
        verifier.verify(BODY, "v1,abcd"),
        Err(Error::NonHexSignature)
    ));
}

#[test]
fn wrong_length_is_rejected() {
    let verifier = Verifier::new(SECRET).unwrap();
    assert!(matches!(
        verifier.verify(BODY, &BODY_SIGNATURE[..62]),
        Err(Error::WrongLengthSignature { len: 62 })
    ));
    assert!(matches!(
        verifier.verify(BODY, &format!("{BODY_SIGNATURE}00")),
        Err(Error::WrongLengthSignature { len: 66 })
    ));
    // A truncated MAC never verifies, however much of it is right.
    assert!(matches!(
        verifier.verify(BODY, &BODY_SIGNATURE[..32]),
        Err(Error::WrongLengthSignature { len: 32 })
    ));
}

#[test]
fn signature_errors_carry_neither_mac_nor_body() {
    let verifier = Verifier::new(SECRET).unwrap();
    let wrong = sign("some-other-secret", BODY);
    let err = verifier.verify(BODY, &wrong).unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(BODY_SIGNATURE), "{text}");
        assert!(!text.contains(&wrong), "{text}");
        assert!(!text.contains("INTEGRATION_ID_002"), "{text}");
    }
}

// --- rotation --------------------------------------------------------------------------------

fn rotating_verifier() -> Verifier {
    Verifier::from_secrets([
        Secret::new("new-secret-2026-11")
            .unwrap()
            .with_label("current"),
        Secret::new("old-secret-2026-05")
            .unwrap()
            .with_label("previous"),
    ])
    .unwrap()
}

#[test]
fn rotation_accepts_the_new_secret_and_says_so() {
    let verified = rotating_verifier()
        .verify(BODY, &sign("new-secret-2026-11", BODY))
        .unwrap();
    assert_eq!(verified.index(), 0);
    assert_eq!(verified.label(), Some("current"));
}

#[test]
fn rotation_accepts_the_old_secret_and_says_so() {
    let verified = rotating_verifier()
        .verify(BODY, &sign("old-secret-2026-05", BODY))
        .unwrap();
    assert_eq!(verified.index(), 1);
    assert_eq!(verified.label(), Some("previous"));
}

#[test]
fn rotation_rejects_a_third_secret() {
    assert!(matches!(
        rotating_verifier().verify(BODY, &sign("neither-of-the-two", BODY)),
        Err(Error::SignatureMismatch)
    ));
}

#[test]
fn verified_reports_the_signature_it_checked() {
    let signature = sign("new-secret-2026-11", BODY);
    let verified = rotating_verifier()
        .verify(BODY, &format!("sha256={}", signature.to_uppercase()))
        .unwrap();
    assert_eq!(verified.signature().to_string(), signature);
}

#[test]
fn unlabelled_secret_has_no_label() {
    let verified = Verifier::new(SECRET)
        .unwrap()
        .verify(BODY, BODY_SIGNATURE)
        .unwrap();
    assert_eq!((verified.index(), verified.label()), (0, None));
}

#[test]
fn verifier_signs_with_its_secrets() {
    let verifier = rotating_verifier();
    assert_eq!(verifier.sign(BODY), sign("new-secret-2026-11", BODY));
    assert_eq!(
        verifier.sign_with(1, BODY),
        Some(sign("old-secret-2026-05", BODY))
    );
    assert_eq!(verifier.sign_with(2, BODY), None);
}

// --- secret validation -----------------------------------------------------------------------

#[test]
fn empty_secret_is_refused() {
    assert!(matches!(Verifier::new(""), Err(Error::EmptySecret)));
    assert!(matches!(Secret::new(b""), Err(Error::EmptySecret)));
}

#[test]
fn short_secret_is_refused_with_the_minimum() {
    let err = Verifier::new("123456789").unwrap_err();
    assert!(matches!(err, Error::SecretTooShort { len: 9, min: 10 }));
    assert!(err.to_string().contains("at least 10"));
    // Characters, not bytes: nine two-byte characters are still too short.
    assert!(matches!(
        Verifier::new("ééééééééé"),
        Err(Error::SecretTooShort { len: 9, .. })
    ));
    Verifier::new("1234567890").unwrap();
}

#[test]
fn padded_secret_is_refused() {
    for secret in [
        "my-webhook-secret\n",
        " my-webhook-secret",
        "my-webhook-secret\r\n",
        "\tmy-webhook-secret",
    ] {
        let err = Verifier::new(secret).unwrap_err();
        assert!(matches!(err, Error::SecretWhitespace), "{secret:?}");
        assert!(err.to_string().contains("whitespace"));
    }
    assert!(matches!(
        Secret::new(b"\xff\xfe-binary-secret \n"),
        Err(Error::SecretWhitespace)
    ));
    Verifier::new("inner whitespace is fine").unwrap();
}

#[test]
fn verifier_needs_a_secret() {
    assert!(matches!(
        Verifier::from_secrets(Vec::new()),
        Err(Error::NoSecret)
    ));
}

// --- redaction -------------------------------------------------------------------------------

#[test]
fn debug_output_never_shows_a_secret() {
    let secret = Secret::new("super-secret-value")
        .unwrap()
        .with_label("current");
    let shown = format!("{secret:?} {secret:#?}");
    assert!(shown.contains("[redacted]"));
    assert!(!shown.contains("super-secret-value"));

    let verifier = Verifier::from_secrets([secret]).unwrap();
    let shown = format!("{verifier:?} {verifier:#?}");
    assert!(shown.contains("current"));
    assert!(!shown.contains("super-secret-value"));

    let verified = verifier
        .verify(BODY, &sign("super-secret-value", BODY))
        .unwrap();
    assert!(!format!("{verified:?}").contains("super-secret-value"));
}

#[test]
fn secret_validation_errors_never_show_the_secret() {
    for secret in ["short", " padded-super-secret "] {
        let err = Verifier::new(secret).unwrap_err();
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(secret.trim()), "{text}");
        }
    }
}

// --- diagnostics -----------------------------------------------------------------------------

#[test]
fn diagnose_finds_a_reserialized_body() {
    // A receiver that parsed the body into `serde_json::Value` and printed it again.
    let sent = br#"{"event":"SYNC_COMPLETE","failed_job_count":0,"integration_id":"INTEGRATION_ID_003","is_sync_finished":true,"job_schedule_id":"JOB_SCHEDULE_ID_001","successful_job_count":49,"vendor":"YARDI"}"#;
    let signature = sign(SECRET, sent);
    let value: serde_json::Value = serde_json::from_slice(sent).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert_eq!(
        diagnose(SECRET, &pretty, &signature),
        Diagnosis::BodyReserialized { form: "compact" }
    );

    // A receiver that pretty-printed the body with its keys in their original order.
    let pretty_in_order = b"{\n  \"trigger\": \"WRITE_OPERATION_FAILURE\",\n  \"data\": {\n    \"event\": \"WRITE_OPERATION_FAILURE\",\n    \"integration_id\": \"INTEGRATION_ID_002\",\n    \"vendor\": \"RESMAN\",\n    \"root_job_id\": \"ROOT_OPERATION_ID_002\",\n    \"write_status\": \"PARTIAL_SUCCESS\",\n    \"errors\": [\n      \"Failed to write resident transaction: Duplicate transaction ID\"\n    ]\n  }\n}";
    assert_eq!(
        diagnose(SECRET, pretty_in_order, BODY_SIGNATURE),
        Diagnosis::BodyReserialized { form: "compact" }
    );

    // A sender that pretty-printed, and a receiver that compacted it.
    let pretty_sent = serde_json::to_vec_pretty(&value).unwrap();
    let signature = sign(SECRET, &pretty_sent);
    assert_eq!(
        diagnose(SECRET, sent, &signature),
        Diagnosis::BodyReserialized {
            form: "pretty-printed, 2 spaces"
        }
    );
}

#[test]
fn diagnose_finds_a_padded_secret() {
    assert_eq!(
        diagnose(format!("{SECRET}\n"), BODY, BODY_SIGNATURE),
        Diagnosis::SecretWhitespace
    );
}

#[test]
fn diagnose_finds_a_base64_header() {
    let tag = hex::decode(BODY_SIGNATURE).unwrap();
    let b64 = base64_for_test(&tag);
    assert_eq!(diagnose(SECRET, BODY, &b64), Diagnosis::Base64Signature);
}

#[test]
fn diagnose_finds_an_empty_body() {
    assert_eq!(diagnose(SECRET, b"", BODY_SIGNATURE), Diagnosis::EmptyBody);
}

#[test]
fn diagnose_falls_back_to_the_wrong_secret() {
    assert_eq!(
        diagnose("not-the-webhook-secret", BODY, BODY_SIGNATURE),
        Diagnosis::WrongSecret
    );
    let verifier = Verifier::new("not-the-webhook-secret").unwrap();
    assert_eq!(
        verifier.diagnose(BODY, BODY_SIGNATURE),
        Diagnosis::WrongSecret
    );
}

#[test]
fn diagnose_reports_valid_and_malformed() {
    assert_eq!(diagnose(SECRET, BODY, BODY_SIGNATURE), Diagnosis::Valid);
    let diagnosis = diagnose(SECRET, BODY, "xyz");
    assert!(matches!(diagnosis, Diagnosis::MalformedSignature(_)));
    assert!(diagnosis.to_string().contains("not hexadecimal"));
}

fn base64_for_test(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_helper_matches_rfc_4648() {
    assert_eq!(base64_for_test(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64_for_test(b"fooba"), "Zm9vYmE=");
    assert_eq!(base64_for_test(b"foob"), "Zm9vYg==");
}

// --- properties ------------------------------------------------------------------------------

fn any_secret() -> impl Strategy<Value = String> {
    "[!-~][ -~]{8,62}[!-~]"
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(secret in any_secret(), body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let signature = sign(&secret, &body);
        prop_assert!(verify_signature(&secret, &body, &signature).is_ok());
        let verifier = Verifier::new(&secret).unwrap();
        prop_assert!(verifier.verify(&body, &signature).is_ok());
        prop_assert_eq!(signature.parse::<Signature>().unwrap().to_string(), signature);
    }

    #[test]
    fn flipping_any_body_bit_fails(secret in any_secret(), body in proptest::collection::vec(any::<u8>(), 1..2048), bit in any::<prop::sample::Index>()) {
        let signature = sign(&secret, &body);
        let mut tampered = body.clone();
        let bit = bit.index(body.len() * 8);
        tampered[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(matches!(verify_signature(&secret, &tampered, &signature), Err(Error::SignatureMismatch)));
    }

    #[test]
    fn flipping_any_signature_bit_fails(secret in any_secret(), body in proptest::collection::vec(any::<u8>(), 0..2048), bit in 0usize..256) {
        let signature = sign(&secret, &body);
        let mut tag = hex::decode(&signature).unwrap();
        tag[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(matches!(verify_signature(&secret, &body, &hex::encode(tag)), Err(Error::SignatureMismatch)));
    }

    #[test]
    fn arbitrary_header_values_never_panic(value in any::<String>()) {
        let verifier = Verifier::new(SECRET).unwrap();
        let _ = verifier.verify(BODY, &value);
        let _ = diagnose(SECRET, BODY, &value);
    }

    #[test]
    fn arbitrary_header_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut map = HeaderMap::new();
            map.insert(SIGNATURE_HEADER, value);
            let _ = Verifier::new(SECRET).unwrap().verify_headers(&map, BODY);
        }
    }
}
