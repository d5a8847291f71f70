//! Secrets, signing and constant-time verification of the `propexo-signature` header.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

use crate::Error;

/// Name of the header that carries Propexo's signature of the request body.
///
/// Header names are case-insensitive; `http` stores them in lowercase.
pub const SIGNATURE_HEADER: &str = "propexo-signature";

/// The shortest secret Propexo accepts for a webhook (its API enforces `minLength: 10`).
pub const MIN_SECRET_LEN: usize = 10;

/// Length of an HMAC-SHA256 tag in bytes.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A webhook secret, validated, optionally labelled.
///
/// Its `Debug` output never shows the value. Build one with [`Secret::new`] and hand one or more
/// to [`Verifier::from_secrets`].
///
/// # Examples
///
/// ```
/// use propexo_webhooks::Secret;
///
/// let secret = Secret::new("whsec-2026-11-rotated")?.with_label("november");
/// assert_eq!(format!("{secret:?}"), r#"Secret { label: Some("november"), value: [redacted] }"#);
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    value: Box<[u8]>,
    label: Option<Arc<str>>,
}

impl Secret {
    /// Validates a secret as Propexo would have accepted it.
    ///
    /// # Errors
    ///
    /// - [`Error::EmptySecret`] if it is empty;
    /// - [`Error::SecretWhitespace`] if it starts or ends with whitespace;
    /// - [`Error::SecretTooShort`] if it is shorter than [`MIN_SECRET_LEN`] characters.
    pub fn new(value: impl AsRef<[u8]>) -> Result<Self, Error> {
        let value = value.as_ref();
        validate_secret(value)?;
        Ok(Self {
            value: value.into(),
            label: None,
        })
    }

    /// Names this secret, so that a verification reports which secret matched
    /// (e.g. `"current"` and `"previous"` while a secret is being replaced).
    #[must_use]
    pub fn with_label(mut self, label: impl Into<Arc<str>>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The label given with [`Secret::with_label`], if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("label", &self.label)
            .field("value", &format_args!("[redacted]"))
            .finish()
    }
}

fn validate_secret(value: &[u8]) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::EmptySecret);
    }
    let (len, padded) = match std::str::from_utf8(value) {
        Ok(text) => (text.chars().count(), text.trim() != text),
        Err(_) => (
            value.len(),
            value.first().is_some_and(u8::is_ascii_whitespace)
                || value.last().is_some_and(u8::is_ascii_whitespace),
        ),
    };
    if padded {
        return Err(Error::SecretWhitespace);
    }
    if len < MIN_SECRET_LEN {
        return Err(Error::SecretTooShort {
            len,
            min: MIN_SECRET_LEN,
        });
    }
    Ok(())
}

/// A decoded `propexo-signature` value: the 32 bytes of an HMAC-SHA256 tag.
///
/// Parsing is lenient where it is safe (surrounding whitespace, uppercase hex, a `sha256=`
/// prefix) and precise where it is not. Its `Display` is the lowercase hex Propexo sends.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{Error, Signature};
///
/// let sig: Signature = " SHA256=9307B3B915EFB5171FF14D8CB55FBCC798C6C0EF1456D66DED1A6AA723A58B7B ".parse()?;
/// assert_eq!(sig.to_string(), "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b");
/// assert!(matches!("abc".parse::<Signature>(), Err(Error::OddLengthSignature { len: 3 })));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; MAC_LEN]);

impl Signature {
    /// Parses a signature header value.
    ///
    /// # Errors
    ///
    /// [`Error::EmptySignature`], [`Error::NonHexSignature`], [`Error::OddLengthSignature`] or
    /// [`Error::WrongLengthSignature`], checked in that order.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        let hex_digits = strip_prefix_ignore_case(value, "sha256=").unwrap_or(value);
        // What Propexo sends: 64 hex digits, decoded in one pass. Anything else is looked at
        // again below, to say precisely what is wrong with it.
        if let Some(bytes) = decode_tag(hex_digits.as_bytes()) {
            return Ok(Self(bytes));
        }
        if hex_digits.is_empty() {
            return Err(Error::EmptySignature);
        }
        if !hex_digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::NonHexSignature);
        }
        let len = hex_digits.len();
        if !len.is_multiple_of(2) {
            return Err(Error::OddLengthSignature { len });
        }
        // Hex, of even length, and not 64 digits: those were decoded above.
        Err(Error::WrongLengthSignature { len })
    }

    /// Reads the one `propexo-signature` header of a request and parses it.
    ///
    /// # Errors
    ///
    /// [`Error::MissingSignature`], [`Error::MultipleSignatures`], [`Error::NonAsciiSignature`],
    /// or any error of [`Signature::parse`].
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Error> {
        let mut values = headers.get_all(SIGNATURE_HEADER).iter();
        let value = values.next().ok_or(Error::MissingSignature)?;
        if values.next().is_some() {
            return Err(Error::MultipleSignatures);
        }
        let value = value.to_str().map_err(|_| Error::NonAsciiSignature)?;
        Self::parse(value)
    }

    /// The raw 32 tag bytes.
    pub fn as_bytes(&self) -> &[u8; MAC_LEN] {
        &self.0
    }
}

impl std::str::FromStr for Signature {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Error> {
        Self::parse(value)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * MAC_LEN];
        // Encoding 32 bytes into a 64-byte buffer cannot fail.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// Value of a hex digit (either case); `NOT_HEX` for any other byte.
fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => NOT_HEX,
    }
}

/// Set in [`hex_value`]'s result for a byte that is not a hex digit; never in a digit's value.
const NOT_HEX: u8 = 0x80;

/// Decodes exactly `2 * MAC_LEN` hex digits; `None` for any other length or a non-hex byte.
///
/// One pass, no early exit: an invalid digit sets `NOT_HEX`'s bit, checked once at the end.
fn decode_tag(digits: &[u8]) -> Option<[u8; MAC_LEN]> {
    if digits.len() != 2 * MAC_LEN {
        return None;
    }
    let mut tag = [0u8; MAC_LEN];
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        if let [high, low] = *pair {
            let (high, low) = (hex_value(high), hex_value(low));
            invalid |= high | low;
            *byte = (high << 4) | low;
        }
    }
    (invalid & NOT_HEX == 0).then_some(tag)
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

/// A secret turned into a keyed HMAC state, ready to hash bodies without re-keying.
#[derive(Clone)]
pub(crate) struct Key {
    mac: HmacSha256,
    label: Option<Arc<str>>,
}

impl Key {
    /// Keys an HMAC with `secret`. HMAC accepts keys of any length, so this cannot fail.
    pub(crate) fn new(secret: &[u8], label: Option<Arc<str>>) -> Self {
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable_invalid_length(),
        };
        Self { mac, label }
    }

    /// The HMAC-SHA256 tag of `body` under this key.
    pub(crate) fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Whether `signature` is the tag of `body`, compared in constant time.
    pub(crate) fn matches(&self, body: &[u8], signature: &Signature) -> bool {
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(signature.as_bytes()).is_ok()
    }
}

// HMAC's `new_from_slice` only fails for MACs with a fixed key size, which HMAC is not.
#[cold]
fn unreachable_invalid_length() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

/// Signs `body` the way Propexo does: HMAC-SHA256 keyed with `secret`, as lowercase hex.
///
/// Use it in tests and tools to produce the `propexo-signature` value of a body.
///
/// # Examples
///
/// ```
/// let signature = propexo_webhooks::sign("my-webhook-secret", br#"{"event":"SYNC_COMPLETE"}"#);
/// assert_eq!(signature.len(), 64);
/// assert!(propexo_webhooks::verify_signature("my-webhook-secret", br#"{"event":"SYNC_COMPLETE"}"#, &signature).is_ok());
/// ```
pub fn sign(secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    Signature(Key::new(secret.as_ref(), None).tag(body)).to_string()
}

/// Checks that `signature` (a `propexo-signature` header value) is the HMAC-SHA256 of the exact
/// raw `body` bytes under `secret`, in constant time.
///
/// This is the one-off form. A receiver should build a [`Verifier`] once instead: it validates
/// the secret, keeps the keyed HMAC state, and supports several secrets during a rotation.
/// This function accepts any non-empty secret, so that it also checks vectors and tools that
/// use keys Propexo would not issue.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{sign, verify_signature, Error};
///
/// let body = br#"{"event":"JOB_FAILURE","job_id":"JOB_ID_002"}"#;
/// let signature = sign("my-webhook-secret", body);
/// verify_signature("my-webhook-secret", body, &signature)?;
/// assert!(matches!(
///     verify_signature("another-secret", body, &signature),
///     Err(Error::SignatureMismatch)
/// ));
/// # Ok::<(), Error>(())
/// ```
///
/// # Errors
///
/// [`Error::EmptySecret`] for an empty secret, any error of [`Signature::parse`] for a malformed
/// value, and [`Error::SignatureMismatch`] when the signature is not the body's.
pub fn verify_signature(
    secret: impl AsRef<[u8]>,
    body: &[u8],
    signature: &str,
) -> Result<(), Error> {
    let secret = secret.as_ref();
    if secret.is_empty() {
        return Err(Error::EmptySecret);
    }
    let signature = Signature::parse(signature)?;
    if Key::new(secret, None).matches(body, &signature) {
        Ok(())
    } else {
        Err(Error::SignatureMismatch)
    }
}

/// Verifies Propexo signatures against one or more secrets.
///
/// Build it once at start-up and share it: it is `Send + Sync`, and `Clone` is cheap (the keyed
/// HMAC states are behind an `Arc`). Each verification hashes the body once per secret tried,
/// starting from the cached keyed state: no re-keying and no heap allocation.
///
/// While a secret is being replaced (Propexo documents no grace period), give the verifier both
/// the new and the old secret; [`Verified`] tells which one matched, so you know when the old
/// one stops being used.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{sign, Secret, Verifier};
///
/// let verifier = Verifier::from_secrets([
///     Secret::new("new-secret-2026-11")?.with_label("current"),
///     Secret::new("old-secret-2026-05")?.with_label("previous"),
/// ])?;
///
/// let body = br#"{"event":"SYNC_COMPLETE","vendor":"YARDI"}"#;
/// let verified = verifier.verify(body, &sign("old-secret-2026-05", body))?;
/// assert_eq!(verified.label(), Some("previous"));
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<[Key]>,
}

impl Verifier {
    /// A verifier for one secret.
    ///
    /// # Errors
    ///
    /// Any error of [`Secret::new`].
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, Error> {
        Self::from_secrets([Secret::new(secret)?])
    }

    /// A verifier that accepts a signature made with any of `secrets`, tried in order.
    ///
    /// # Errors
    ///
    /// [`Error::NoSecret`] if `secrets` is empty.
    pub fn from_secrets(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, Error> {
        let keys: Arc<[Key]> = secrets
            .into_iter()
            .map(|secret| Key::new(&secret.value, secret.label))
            .collect();
        if keys.is_empty() {
            return Err(Error::NoSecret);
        }
        Ok(Self { keys })
    }

    /// Verifies `signature` (a `propexo-signature` header value) against the raw `body` bytes.
    ///
    /// # Errors
    ///
    /// Any error of [`Signature::parse`], or [`Error::SignatureMismatch`] if no secret matches.
    pub fn verify(&self, body: &[u8], signature: &str) -> Result<Verified, Error> {
        self.verify_parsed(body, &Signature::parse(signature)?)
    }

    /// Verifies the `propexo-signature` header of a request against its raw `body` bytes.
    ///
    /// # Errors
    ///
    /// Any error of [`Signature::from_headers`], or [`Error::SignatureMismatch`] if no secret
    /// matches.
    pub fn verify_headers(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, Error> {
        self.verify_parsed(body, &Signature::from_headers(headers)?)
    }

    /// Verifies an already parsed signature against the raw `body` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::SignatureMismatch`] if no secret matches.
    pub fn verify_parsed(&self, body: &[u8], signature: &Signature) -> Result<Verified, Error> {
        self.keys
            .iter()
            .enumerate()
            .find(|(_, key)| key.matches(body, signature))
            .map(|(index, key)| Verified {
                index,
                label: key.label.clone(),
                signature: *signature,
            })
            .ok_or(Error::SignatureMismatch)
    }

    /// Signs `body` with the first secret, as Propexo would: for tests and tools.
    pub fn sign(&self, body: &[u8]) -> String {
        self.sign_with(0, body).unwrap_or_default()
    }

    /// Signs `body` with the secret at `index` (in the order given), if there is one.
    pub fn sign_with(&self, index: usize, body: &[u8]) -> Option<String> {
        let key = self.keys.get(index)?;
        Some(Signature(key.tag(body)).to_string())
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<_> = self.keys.iter().map(|key| key.label.as_deref()).collect();
        f.debug_struct("Verifier")
            .field("secrets", &labels)
            .finish_non_exhaustive()
    }
}

/// Proof of a successful verification: which secret matched, and the signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    index: usize,
    label: Option<Arc<str>>,
    signature: Signature,
}

impl Verified {
    /// The proof of a verification done before the delivery was stored in an inbox, restored
    /// from what the inbox kept of it.
    #[cfg(any(
        feature = "axum",
        feature = "actix-web",
        feature = "sqlite",
        feature = "postgres",
        feature = "nats"
    ))]
    pub(crate) fn restored(index: usize, label: Option<Arc<str>>, signature: Signature) -> Self {
        Self {
            index,
            label,
            signature,
        }
    }

    /// Position of the matching secret, in the order given to the [`Verifier`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Label of the matching secret, if it was given one.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The signature that was verified. It authenticates the body, so it is a sound key for
    /// recognising a repeated delivery.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn public_types_are_send_sync_clone() {
        assert_send_sync_clone::<Verifier>();
        assert_send_sync_clone::<Verified>();
        assert_send_sync_clone::<Secret>();
        assert_send_sync_clone::<Signature>();
    }

    #[test]
    fn tags_decode_like_the_hex_crate() {
        let lower = "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b";
        let mut expected = [0u8; MAC_LEN];
        hex::decode_to_slice(lower, &mut expected).unwrap();
        assert_eq!(decode_tag(lower.as_bytes()), Some(expected));
        assert_eq!(decode_tag(lower.to_uppercase().as_bytes()), Some(expected));
        let every_digit = "0123456789abcdefABCDEF".repeat(3);
        let every_digit = &every_digit[..2 * MAC_LEN];
        let mut expected = [0u8; MAC_LEN];
        hex::decode_to_slice(every_digit, &mut expected).unwrap();
        assert_eq!(decode_tag(every_digit.as_bytes()), Some(expected));
    }

    #[test]
    fn tags_refuse_every_non_hex_byte_in_every_position() {
        let valid = [b'a'; 2 * MAC_LEN];
        for byte in (0..=u8::MAX).filter(|byte| !byte.is_ascii_hexdigit()) {
            for position in [0, 1, 31, 62, 63] {
                let mut digits = valid;
                digits[position] = byte;
                assert_eq!(decode_tag(&digits), None, "byte {byte:#x} at {position}");
            }
        }
        assert_eq!(decode_tag(&valid[1..]), None);
        assert_eq!(decode_tag(&[b'a'; 2 * MAC_LEN + 2]), None);
        assert_eq!(decode_tag(b""), None);
    }

    #[test]
    fn prefix_is_stripped_case_insensitively() {
        assert_eq!(strip_prefix_ignore_case("SHA256=ab", "sha256="), Some("ab"));
        assert_eq!(strip_prefix_ignore_case("sha25", "sha256="), None);
        assert_eq!(strip_prefix_ignore_case("é", "sha256="), None);
    }
}
