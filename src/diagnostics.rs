//! Operator hints for a failed verification: why did this signature not match?
//!
//! These run only after a failure, off the hot path, and their output is meant for logs. Never
//! send it in an HTTP response: it tells whoever reads it how close a forgery came.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::signature::{Key, Signature, Verifier};

/// The likely cause of a failed signature verification, for logs.
///
/// Produced by [`diagnose`] and [`Verifier::diagnose`]. `Display` gives one sentence an
/// operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Diagnosis {
    /// The signature matches: there is nothing to explain.
    Valid,
    /// The header value is malformed (missing, empty, not hex, wrong length, ...).
    MalformedSignature(MalformedReason),
    /// The body is empty: something read the request body before the verification did.
    EmptyBody,
    /// The header is the right MAC encoded as base64 instead of hex.
    Base64Signature,
    /// The signature matches once the secret's surrounding whitespace is removed.
    SecretWhitespace,
    /// The signature matches a different serialization of the same JSON: someone parsed the body
    /// and encoded it again before verifying. Verify the raw bytes instead.
    BodyReserialized {
        /// Which re-encoding matched (e.g. `"compact"`, `"pretty-printed, 2 spaces"`).
        form: &'static str,
    },
    /// None of the above: most likely the secret is not this webhook's (it may have been
    /// replaced in Propexo), or the body was altered.
    WrongSecret,
}

/// Why a signature header is malformed; the message of the corresponding [`Error`](crate::Error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReason(String);

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Valid => f.write_str("the signature is valid"),
            Self::MalformedSignature(reason) => {
                write!(f, "the signature header is malformed: {reason}")
            }
            Self::EmptyBody => f.write_str(
                "the body is empty: a middleware or extractor probably consumed the request body \
                 before verification; verify the raw bytes as received",
            ),
            Self::Base64Signature => f.write_str(
                "the signature is the right MAC encoded as base64; Propexo sends lowercase hex: \
                 something between Propexo and this receiver re-encoded the header",
            ),
            Self::SecretWhitespace => f.write_str(
                "the signature matches once the secret is trimmed: remove the whitespace \
                 (a trailing newline?) around the configured secret",
            ),
            Self::BodyReserialized { form } => write!(
                f,
                "the signature matches the body re-serialized as {form} JSON: the body was parsed \
                 and re-encoded before verification; verify the raw bytes as received"
            ),
            Self::WrongSecret => f.write_str(
                "the signature does not match: the configured secret is probably not this \
                 webhook's (it may have been replaced in Propexo; accept both secrets while \
                 rotating), or the body was altered on the way",
            ),
        }
    }
}

/// Explains why `signature` does not verify `body` under `secret`, for logs.
///
/// Checks, in order: a base64-encoded MAC, a malformed header, an empty body, a body that was
/// re-serialized (compact, pretty-printed, or with sorted keys), a secret with surrounding
/// whitespace. Costs a few HMACs and a JSON parse: call it after a failure, not on every
/// request. Never put its output in an HTTP response.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{diagnose, sign, Diagnosis};
///
/// let sent = br#"{"event":"SYNC_COMPLETE","vendor":"YARDI"}"#;
/// let signature = sign("my-webhook-secret", sent);
/// // A framework parsed the body and pretty-printed it again before verification:
/// let received = b"{\n  \"event\": \"SYNC_COMPLETE\",\n  \"vendor\": \"YARDI\"\n}";
/// let diagnosis = diagnose("my-webhook-secret", received, &signature);
/// assert!(matches!(diagnosis, Diagnosis::BodyReserialized { .. }));
/// println!("{diagnosis}");
/// ```
pub fn diagnose(secret: impl AsRef<[u8]>, body: &[u8], signature: &str) -> Diagnosis {
    let secret = secret.as_ref();
    let diagnosis = diagnose_keys(&[Key::new(secret, None)], body, signature);
    if diagnosis == Diagnosis::WrongSecret {
        let trimmed = trim_whitespace(secret);
        if trimmed.len() != secret.len()
            && Signature::parse(signature)
                .is_ok_and(|parsed| Key::new(trimmed, None).matches(body, &parsed))
        {
            return Diagnosis::SecretWhitespace;
        }
    }
    diagnosis
}

impl Verifier {
    /// Explains why `signature` does not verify `body` under any of this verifier's secrets,
    /// for logs. See [`diagnose`].
    pub fn diagnose(&self, body: &[u8], signature: &str) -> Diagnosis {
        diagnose_keys(self.keys(), body, signature)
    }
}

fn diagnose_keys(keys: &[Key], body: &[u8], signature: &str) -> Diagnosis {
    let any_matches = |body: &[u8], sig: &Signature| keys.iter().any(|k| k.matches(body, sig));

    if keys
        .iter()
        .any(|key| is_base64_of(signature.trim(), &key.tag(body)))
    {
        return Diagnosis::Base64Signature;
    }
    let parsed = match Signature::parse(signature) {
        Ok(parsed) => parsed,
        Err(err) => return Diagnosis::MalformedSignature(MalformedReason(err.to_string())),
    };
    if any_matches(body, &parsed) {
        return Diagnosis::Valid;
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Diagnosis::EmptyBody;
    }
    for (form, candidate) in reserializations(body) {
        if any_matches(&candidate, &parsed) {
            return Diagnosis::BodyReserialized { form };
        }
    }
    Diagnosis::WrongSecret
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.trim().as_bytes(),
        Err(_) => bytes.trim_ascii(),
    }
}

/// Other encodings of the same JSON document that a framework or a sender might produce.
fn reserializations(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut forms = Vec::new();
    let Ok(text) = std::str::from_utf8(body) else {
        return forms;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return forms;
    };
    forms.push(("compact", reindent(text, None)));
    forms.push(("pretty-printed, 2 spaces", reindent(text, Some(2))));
    forms.push(("pretty-printed, 4 spaces", reindent(text, Some(4))));
    if let Ok(sorted) = serde_json::to_vec(&value) {
        forms.push(("compact with sorted keys", sorted));
    }
    if let Ok(sorted) = serde_json::to_vec_pretty(&value) {
        forms.push(("pretty-printed with sorted keys", sorted));
    }
    forms.dedup_by(|a, b| a.1 == b.1);
    forms.retain(|(_, candidate)| candidate.as_slice() != body);
    forms
}

/// Re-lays out valid JSON text, keeping key order and every token as written: compact when
/// `indent` is `None`, else pretty-printed like `JSON.stringify(value, null, indent)`.
fn reindent(json: &str, indent: Option<usize>) -> Vec<u8> {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        if let Some(width) = indent {
            out.push(b'\n');
            out.extend(std::iter::repeat_n(b' ', width * depth));
        }
    };
    let mut iter = bytes.iter().copied().peekable();
    while let Some(byte) = iter.next() {
        if in_string {
            out.push(byte);
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                in_string = true;
                out.push(byte);
            }
            b'{' | b'[' => {
                out.push(byte);
                while iter.peek().is_some_and(u8::is_ascii_whitespace) {
                    iter.next();
                }
                if matches!(iter.peek(), Some(b'}' | b']')) {
                    if let Some(close) = iter.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(byte);
            }
            b',' => {
                out.push(byte);
                newline(&mut out, depth);
            }
            b':' => {
                out.push(byte);
                if indent.is_some() {
                    out.push(b' ');
                }
            }
            _ => out.push(byte),
        }
    }
    out
}

fn is_base64_of(candidate: &str, tag: &[u8]) -> bool {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let candidate = candidate.trim_end_matches('=').as_bytes();
    [STANDARD, URL_SAFE].iter().any(|alphabet| {
        let encoded = base64_unpadded(tag, alphabet);
        encoded.len() == candidate.len() && bool::from(encoded.as_slice().ct_eq(candidate))
    })
}

fn base64_unpadded(input: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let symbol = |index: u32| alphabet.get((index & 63) as usize).copied().unwrap_or(b'=');
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut group = [0u8; 3];
        group
            .iter_mut()
            .zip(chunk)
            .for_each(|(slot, byte)| *slot = *byte);
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        let symbols = chunk.len() + 1;
        for shift in [18, 12, 6, 0].into_iter().take(symbols) {
            out.push(symbol(bits >> shift));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindent_matches_json_stringify_layouts() {
        let text = "{ \"a\" : [1, 2, {}], \"b\": {\"c\": \"x, y: {z}\"}, \"d\": [] }";
        assert_eq!(
            String::from_utf8(reindent(text, None)).unwrap(),
            r#"{"a":[1,2,{}],"b":{"c":"x, y: {z}"},"d":[]}"#
        );
        assert_eq!(
            String::from_utf8(reindent(text, Some(2))).unwrap(),
            "{\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"b\": {\n    \"c\": \"x, y: {z}\"\n  },\n  \"d\": []\n}"
        );
    }

    #[test]
    fn reindent_keeps_escaped_quotes_inside_strings() {
        let text = r#"{"a": "say \"hi\", \\ ok"}"#;
        assert_eq!(
            String::from_utf8(reindent(text, None)).unwrap(),
            r#"{"a":"say \"hi\", \\ ok"}"#
        );
    }

    #[test]
    fn base64_matches_known_encodings() {
        assert_eq!(base64_unpadded(b"foobar", STANDARD_FOR_TEST), b"Zm9vYmFy");
        assert_eq!(base64_unpadded(b"fooba", STANDARD_FOR_TEST), b"Zm9vYmE");
        assert_eq!(base64_unpadded(b"f", STANDARD_FOR_TEST), b"Zg");
        assert!(is_base64_of("Zm9vYg==", b"foob"));
        assert!(!is_base64_of("Zm9vYh==", b"foob"));
    }

    const STANDARD_FOR_TEST: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}
