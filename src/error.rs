//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Signature failures are deliberately terse: they never carry the expected MAC, the body, or
/// which byte differed. For an operator-facing explanation of a failed verification, see
/// [`diagnose`](crate::diagnose).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request has no `propexo-signature` header.
    #[error("the `propexo-signature` header is missing")]
    MissingSignature,

    /// The request has the `propexo-signature` header more than once.
    #[error("the `propexo-signature` header appears more than once")]
    MultipleSignatures,

    /// The `propexo-signature` header holds bytes that are not visible ASCII.
    #[error("the `propexo-signature` header is not visible ASCII")]
    NonAsciiSignature,

    /// The `propexo-signature` header is empty (or holds only whitespace or a bare `sha256=`).
    #[error("the `propexo-signature` header is empty")]
    EmptySignature,

    /// The signature holds a character that is not a hexadecimal digit.
    #[error("the signature is not hexadecimal")]
    NonHexSignature,

    /// The signature has an odd number of hex digits.
    #[error("the signature has an odd number of hex digits ({len})")]
    OddLengthSignature {
        /// Number of hex digits received.
        len: usize,
    },

    /// The signature is valid hex but not the 64 digits of an HMAC-SHA256.
    #[error("the signature has {len} hex digits, expected 64")]
    WrongLengthSignature {
        /// Number of hex digits received.
        len: usize,
    },

    /// The signature is well formed but does not match the body under any configured secret.
    #[error("the signature does not match the body")]
    SignatureMismatch,

    /// A secret is empty.
    #[error(
        "the webhook secret is empty: is the variable it is read from (e.g. PROPEXO_WEBHOOK_SECRET) set?"
    )]
    EmptySecret,

    /// A secret is shorter than the minimum Propexo enforces.
    #[error(
        "the webhook secret is {len} characters long but Propexo requires at least {min}: \
         it is probably truncated, a placeholder, or not the webhook's secret"
    )]
    SecretTooShort {
        /// Length of the secret received, in characters.
        len: usize,
        /// The minimum Propexo enforces.
        min: usize,
    },

    /// A secret starts or ends with whitespace.
    #[error(
        "the webhook secret starts or ends with whitespace: probably a copy-paste or env-file \
         mistake (a trailing newline?); Propexo signs with the secret exactly as configured"
    )]
    SecretWhitespace,

    /// A [`Verifier`](crate::Verifier) was built from no secret at all.
    #[error("a verifier needs at least one secret")]
    NoSecret,
}
