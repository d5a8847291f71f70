//! The `propexo-signature` header, from the raw bytes a client can send to the verdict.
//!
//! Input: `[header_len, secret_len, header.., secret.., body..]` (lengths are cut to what is
//! there). Beyond "no panic", every call is checked against an independent model:
//!
//! - `Signature::parse` accepts exactly the trimmed values that are 64 hex digits after an
//!   optional case-insensitive `sha256=`, decodes them to the right bytes, and reports the
//!   documented error otherwise; `to_string()` re-parses to the same signature;
//! - a verification succeeds if and only if the header holds `sign(secret, body)`, through
//!   `verify_signature`, `Verifier::verify`, `Verifier::verify_headers` and the diagnostics;
//! - a header sent twice, or missing, is always refused;
//! - `sign(secret, body)` always verifies, whatever the secret and the body;
//! - nothing prints the secret or the expected MAC.

#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use propexo_webhooks::{
    Diagnosis, Error, SIGNATURE_HEADER, Secret, Signature, Verifier, diagnose, sign,
    verify_signature,
};

/// A second, fixed secret, to check verification with two secrets (rotation).
const OTHER_SECRET: &str = "the-other-webhook-secret";

fuzz_target!(|data: &[u8]| {
    let (header, secret, body) = split(data);
    let right = sign(secret, body);
    check_sign_output(&right);
    check_right_signature_verifies(secret, body, &right);
    if let Ok(text) = std::str::from_utf8(header) {
        check_parse(text);
        check_verify_str(secret, body, text, &right);
    }
    check_headers(secret, body, header, &right);
});

/// Splits the input into the header value, the secret and the body.
fn split(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (lengths, rest) = data.split_at(data.len().min(2));
    let header_len = usize::from(lengths.first().copied().unwrap_or(0));
    let secret_len = usize::from(lengths.get(1).copied().unwrap_or(0));
    let (header, rest) = rest.split_at(header_len.min(rest.len()));
    let (secret, body) = rest.split_at(secret_len.min(rest.len()));
    (header, secret, body)
}

/// The error `Signature::parse` must report, or the 32 bytes it must decode.
#[derive(Debug, PartialEq)]
enum Expected {
    Bytes([u8; 32]),
    Empty,
    NonHex,
    OddLength(usize),
    WrongLength(usize),
}

/// What `Signature::parse` must return, written without the crate's code: trim, drop one
/// case-insensitive `sha256=`, then exactly 64 hex digits.
fn model_parse(value: &str) -> Expected {
    let trimmed = value.trim().as_bytes();
    let digits = match trimmed.split_at_checked(7) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case(b"sha256=") => rest,
        _ => trimmed,
    };
    if digits.is_empty() {
        return Expected::Empty;
    }
    let nibbles: Option<Vec<u8>> = digits.iter().map(|&digit| nibble(digit)).collect();
    let Some(nibbles) = nibbles else {
        return Expected::NonHex;
    };
    if nibbles.len() % 2 != 0 {
        return Expected::OddLength(nibbles.len());
    }
    if nibbles.len() != 64 {
        return Expected::WrongLength(nibbles.len());
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(nibbles.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Expected::Bytes(bytes)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Whether `actual` is what the model says `Signature::parse` returns.
fn agrees(actual: &Result<Signature, Error>, expected: &Expected) -> bool {
    match (actual, expected) {
        (Ok(signature), Expected::Bytes(bytes)) => signature.as_bytes() == bytes,
        (Err(Error::EmptySignature), Expected::Empty)
        | (Err(Error::NonHexSignature), Expected::NonHex) => true,
        (Err(Error::OddLengthSignature { len }), Expected::OddLength(expected))
        | (Err(Error::WrongLengthSignature { len }), Expected::WrongLength(expected)) => {
            len == expected
        }
        _ => false,
    }
}

/// Whether a verification result is the same error as a parse failure.
fn same_error(actual: &Error, parse_error: &Error) -> bool {
    std::mem::discriminant(actual) == std::mem::discriminant(parse_error)
        && actual.to_string() == parse_error.to_string()
}

fn is_lower_hex_mac(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_sign_output(right: &str) {
    assert!(
        is_lower_hex_mac(right),
        "sign() is not 64 lowercase hex digits: {right}"
    );
}

fn check_parse(text: &str) {
    let parsed = Signature::parse(text);
    let expected = model_parse(text);
    assert!(
        agrees(&parsed, &expected),
        "Signature::parse({text:?}) = {parsed:?}, expected {expected:?}"
    );
    let via_from_str = text.parse::<Signature>();
    assert_eq!(via_from_str.ok(), parsed.as_ref().ok().copied());
    if let Ok(signature) = parsed {
        let shown = signature.to_string();
        assert!(
            is_lower_hex_mac(&shown),
            "Display is not lowercase hex: {shown}"
        );
        assert_eq!(shown.parse::<Signature>().ok(), Some(signature));
        assert_eq!(format!("{signature:?}"), format!("Signature({shown})"));
    }
}

/// The verification entry points that take the header value as a string.
fn check_verify_str(secret: &[u8], body: &[u8], text: &str, right: &str) {
    let parsed = Signature::parse(text);
    // The model of every verification: a well-formed header verifies iff it is the body's MAC.
    let matches = parsed
        .as_ref()
        .is_ok_and(|signature| signature.to_string() == right);

    let result = verify_signature(secret, body, text);
    match (&result, &parsed) {
        _ if secret.is_empty() => assert!(matches!(result, Err(Error::EmptySecret))),
        (Ok(()), _) => assert!(
            matches,
            "verify_signature accepted a header that is not the MAC"
        ),
        (Err(Error::SignatureMismatch), Ok(_)) => {
            assert!(!matches, "verify_signature refused the MAC")
        }
        (Err(err), Err(parse_error)) => {
            assert!(same_error(err, parse_error), "{err} vs {parse_error}")
        }
        (Err(err), Ok(_)) => panic!("verify_signature: unexpected {err}"),
    }
    if let Err(err) = &result {
        assert!(
            !err.to_string().contains(right),
            "an error shows the expected MAC"
        );
    }

    let diagnosis = diagnose(secret, body, text);
    check_diagnosis(&diagnosis, matches, &parsed, right);

    if let Ok(verifier) = Verifier::new(secret) {
        let verified = verifier.verify(body, text);
        match (&verified, &parsed) {
            (Ok(verified), Ok(signature)) => {
                assert!(
                    matches,
                    "Verifier::verify accepted a header that is not the MAC"
                );
                assert_eq!(verified.index(), 0);
                assert_eq!(verified.signature(), signature);
            }
            (Err(Error::SignatureMismatch), Ok(_)) => {
                assert!(!matches, "Verifier::verify refused the MAC")
            }
            (Err(err), Err(parse_error)) => {
                assert!(same_error(err, parse_error), "{err} vs {parse_error}")
            }
            (result, _) => panic!("Verifier::verify: unexpected {result:?}"),
        }
        check_diagnosis(&verifier.diagnose(body, text), matches, &parsed, right);
    }
}

fn check_diagnosis(
    diagnosis: &Diagnosis,
    matches: bool,
    parsed: &Result<Signature, Error>,
    right: &str,
) {
    assert_eq!(
        *diagnosis == Diagnosis::Valid,
        matches,
        "diagnose says {diagnosis:?} but the header {} the MAC",
        if matches { "is" } else { "is not" }
    );
    if parsed.is_err() {
        assert!(
            matches!(
                diagnosis,
                Diagnosis::MalformedSignature(_) | Diagnosis::Base64Signature
            ),
            "diagnose says {diagnosis:?} for a malformed header"
        );
    }
    assert!(
        !diagnosis.to_string().contains(right),
        "a diagnosis shows the expected MAC"
    );
}

/// The right signature verifies through every entry point, in every accepted spelling.
fn check_right_signature_verifies(secret: &[u8], body: &[u8], right: &str) {
    let spellings = [
        right.to_owned(),
        right.to_ascii_uppercase(),
        format!("sha256={right}"),
        format!(" SHA256={right}\t"),
    ];
    for spelling in &spellings {
        if secret.is_empty() {
            assert!(matches!(
                verify_signature(secret, body, spelling),
                Err(Error::EmptySecret)
            ));
        } else {
            assert!(
                verify_signature(secret, body, spelling).is_ok(),
                "sign() does not verify"
            );
            assert_eq!(diagnose(secret, body, spelling), Diagnosis::Valid);
        }
    }

    let Ok(key) = Secret::new(secret) else {
        return;
    };
    assert_eq!(
        format!("{key:?}"),
        "Secret { label: None, value: [redacted] }",
        "Debug shows more than the label"
    );
    let verifier = Verifier::from_secrets([key.clone()]).expect("one secret is enough");
    assert_eq!(format!("{verifier:?}"), "Verifier { secrets: [None], .. }");
    assert_eq!(verifier.sign(body), right);
    for spelling in &spellings {
        let verified = verifier
            .verify(body, spelling)
            .expect("sign() does not verify");
        assert_eq!(verified.index(), 0);
        assert_eq!(verified.signature().to_string(), right);
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(right).expect("hex is a valid header value"),
    );
    assert!(verifier.verify_headers(&headers, body).is_ok());

    // Rotation: the same secret second in line verifies with its index, unless the first
    // secret happens to produce the same MAC (HMAC pads short keys with zeros).
    let other = Secret::new(OTHER_SECRET).expect("a valid secret");
    let rotating = Verifier::from_secrets([other, key.with_label("current")]).expect("two secrets");
    let verified = rotating
        .verify(body, right)
        .expect("the second secret does not verify");
    let other_right = sign(OTHER_SECRET, body);
    if other_right == right {
        assert_eq!(verified.index(), 0);
    } else {
        assert_eq!((verified.index(), verified.label()), (1, Some("current")));
    }
    assert_eq!(
        rotating.verify(body, &other_right).map(|v| v.index()).ok(),
        Some(0)
    );
}

/// `Verifier::verify_headers` with the fuzzed header once, twice, beside the right MAC, and
/// missing.
fn check_headers(secret: &[u8], body: &[u8], header: &[u8], right: &str) {
    let Ok(verifier) = Verifier::new(secret) else {
        return;
    };
    let mut empty = HeaderMap::new();
    assert!(matches!(
        verifier.verify_headers(&empty, body),
        Err(Error::MissingSignature)
    ));
    // A header with another name is not the signature.
    empty.insert("propexo-signature-2", HeaderValue::from_static("x"));
    assert!(matches!(
        verifier.verify_headers(&empty, body),
        Err(Error::MissingSignature)
    ));

    let Ok(value) = HeaderValue::from_bytes(header) else {
        return;
    };
    let mut once = HeaderMap::new();
    once.insert(SIGNATURE_HEADER, value.clone());
    let verified = verifier.verify_headers(&once, body);
    let visible_ascii = header
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if visible_ascii {
        let text = std::str::from_utf8(header).expect("visible ASCII is UTF-8");
        let direct = verifier.verify(body, text);
        assert_eq!(
            verified.as_ref().map_err(ToString::to_string),
            direct.as_ref().map_err(ToString::to_string),
            "verify_headers and verify disagree"
        );
        assert_eq!(
            Signature::from_headers(&once).ok(),
            Signature::parse(text).ok()
        );
    } else {
        assert!(
            matches!(verified, Err(Error::NonAsciiSignature)),
            "{verified:?}"
        );
    }

    let right = HeaderValue::from_str(right).expect("hex is a valid header value");
    for second in [value.clone(), right.clone()] {
        for (first, second) in [(value.clone(), second.clone()), (second, value.clone())] {
            let mut twice = HeaderMap::new();
            twice.append(SIGNATURE_HEADER, first);
            twice.append(SIGNATURE_HEADER, second);
            assert!(
                matches!(
                    verifier.verify_headers(&twice, body),
                    Err(Error::MultipleSignatures)
                ),
                "a repeated header was not refused"
            );
        }
    }
}
