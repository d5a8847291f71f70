//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Signature failures are deliberately terse: they never carry the expected MAC, the body, or
/// which byte differed. For an operator-facing explanation of a failed verification, see
/// [`diagnose`](crate::diagnose).
#[derive(Debug, Clone, thiserror::Error)]
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

    /// The body is not a Propexo event: not JSON, not a JSON object, or a known trigger whose
    /// fields do not have the documented types.
    #[error(transparent)]
    InvalidEvent(ParseError),

    /// The body is a JSON object that names no trigger (`trigger`, `event` or `data.event`) and
    /// holds neither a `diff` nor a `payload` from which to infer one.
    #[error("the body names no trigger and has neither `diff` nor `payload`")]
    MissingTrigger,

    /// A record (a DATA_NEW payload, one side of a DATA_UPDATE diff) does not fit the record
    /// type asked for.
    #[error(transparent)]
    InvalidRecord(ParseError),

    /// A record of one object type was asked for, and the event is about another (or names
    /// none).
    #[error("expected a record of `{expected}`, but the event is about {}", found.as_ref().map_or_else(|| "no object".to_owned(), |found| format!("`{found}`")))]
    ObjectMismatch {
        /// The object type of the record type asked for.
        expected: crate::ObjectType,
        /// The object type the event names, if any.
        found: Option<crate::ObjectType>,
    },
}

/// Where and why a JSON document did not parse into the type expected.
///
/// It names what was being parsed (e.g. `a DATA_UPDATE event`, `a Lease record`) and the JSON
/// path of the failing value, and says what was expected. It never quotes the document: no value,
/// no unknown key, nothing an attacker sent or a record held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: String,
    path: String,
    reason: String,
}

impl ParseError {
    /// A parse error of `what` at the JSON `path` (empty for the document itself), for the
    /// serde_json error `err`, whose message is reduced to what it says about the expected type.
    pub(crate) fn new(
        what: impl Into<String>,
        path: impl Into<String>,
        err: &serde_json::Error,
    ) -> Self {
        Self {
            what: what.into(),
            path: path.into(),
            reason: describe(err),
        }
    }

    /// A parse error with a reason written by this crate.
    pub(crate) fn with_reason(
        what: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            what: what.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Parses `json` into `T`, tracking the JSON path of a failure below `base` (a path prefix,
    /// possibly empty).
    pub(crate) fn parse_str<'a, T: serde::Deserialize<'a>>(
        what: impl Fn() -> String,
        base: &str,
        json: &'a str,
    ) -> Result<T, Self> {
        // Valid documents, the common case, parse without tracking the path: the tracker
        // allocates a `String` for every key it passes. Only a failure is parsed again, with
        // tracking, to find where; parsing is deterministic, so it fails the same way.
        let mut de = serde_json::Deserializer::from_str(json);
        if let Ok(value) = T::deserialize(&mut de)
            && de.end().is_ok()
        {
            return Ok(value);
        }
        let mut de = serde_json::Deserializer::from_str(json);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let inner = err.path().to_string();
            // serde_path_to_error writes "." for the root and "?" where it has no path.
            let inner = if inner == "." || inner == "?" {
                ""
            } else {
                inner.as_str()
            };
            Self::new(what(), join_path(base, inner), err.inner())
        })?;
        de.end().map_err(|err| Self::new(what(), base, &err))?;
        Ok(value)
    }

    /// What was being parsed, e.g. `a DATA_UPDATE event`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// JSON path of the value that failed, e.g. `data.successful_job_count`; empty for the
    /// document itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong, without quoting the document.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} is invalid: {}", self.what, self.reason)
        } else {
            let Self { what, path, reason } = self;
            write!(f, "{what} is invalid at `{path}`: {reason}")
        }
    }
}

impl std::error::Error for ParseError {}

/// Joins two JSON paths written in the `a.b[0].c` style.
pub(crate) fn join_path(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (_, true) => base.to_owned(),
        (true, false) => rest.to_owned(),
        (false, false) if rest.starts_with('[') => format!("{base}{rest}"),
        (false, false) => format!("{base}.{rest}"),
    }
}

/// Describes a serde_json error without quoting the input.
///
/// serde's data errors embed the offending value (`invalid type: string "…", expected …`);
/// only the kind of value and the expectation are kept. Syntax errors keep serde_json's
/// category and position, which quote nothing.
fn describe(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = err.to_string();
    // serde_json appends " at line L column C"; keep the position apart from the message.
    let text = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(text, _)| text);
    let position = if err.line() > 0 {
        format!(" (line {}, column {})", err.line(), err.column())
    } else {
        String::new()
    };
    match err.classify() {
        Category::Io => "the input could not be read".to_owned(),
        Category::Eof => format!("the JSON ends too early{position}"),
        Category::Syntax => format!("{}{position}", strip_quoted(text)),
        Category::Data => describe_data(text),
    }
}

fn describe_data(text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let expected = rest
                .split_once(", expected ")
                .map_or("", |(_, expected)| expected);
            let found = rest
                .split([' ', ','])
                .next()
                .filter(|kind| {
                    [
                        "string",
                        "integer",
                        "floating",
                        "boolean",
                        "null",
                        "map",
                        "sequence",
                        "unit",
                        "character",
                        "byte",
                        "option",
                        "newtype",
                        "enum",
                        "unit_variant",
                    ]
                    .contains(kind)
                })
                .map_or("another value", |kind| match kind {
                    "floating" => "a number",
                    "map" => "an object",
                    "sequence" => "an array",
                    "integer" => "an integer",
                    "boolean" => "a boolean",
                    "null" | "unit" => "null",
                    "string" | "character" => "a string",
                    _ => "another value",
                });
            let verb = prefix.trim_end_matches(": ");
            return if expected.is_empty() {
                format!("{verb}: found {found}")
            } else {
                format!("{verb}: expected {}, found {found}", strip_quoted(expected))
            };
        }
    }
    if crate::event::IndexError::MESSAGES.contains(&text) {
        return text.to_owned();
    }
    for keep in ["missing field `", "duplicate field `", "invalid length "] {
        if text.starts_with(keep) {
            return text.to_owned();
        }
    }
    if text.starts_with("unknown variant") {
        return "unknown variant".to_owned();
    }
    if text.starts_with("unknown field") {
        return "unknown field".to_owned();
    }
    if text.starts_with("recursion limit exceeded") {
        return "nested too deeply".to_owned();
    }
    "invalid value".to_owned()
}

/// Removes anything between double quotes, which in serde messages is input text.
fn strip_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for ch in text.chars() {
        if ch == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_for<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> ParseError {
        ParseError::parse_str::<T>(|| "a test".to_owned(), "data", json).unwrap_err()
    }

    #[test]
    fn data_errors_keep_the_expectation_and_drop_the_value() {
        let err =
            error_for::<std::collections::BTreeMap<String, u64>>(r#"{"count": "sensitive-value"}"#);
        assert_eq!(err.path(), "data.count");
        assert_eq!(err.reason(), "invalid type: expected u64, found a string");
        assert!(!err.to_string().contains("sensitive"));
    }

    #[test]
    fn syntax_errors_keep_the_position() {
        let err = error_for::<serde_json::Value>("{\"a\": tru}");
        assert!(err.reason().contains("line 1"), "{err}");
        let err = error_for::<serde_json::Value>("{\"a\": ");
        assert!(err.reason().starts_with("the JSON ends too early"), "{err}");
    }

    #[test]
    fn missing_fields_are_named() {
        #[derive(Debug, serde::Deserialize)]
        struct Needs {
            _name: String,
        }
        let err = error_for::<Needs>("{}");
        assert_eq!(err.reason(), "missing field `_name`");
        assert_eq!(
            err.to_string(),
            "a test is invalid at `data`: missing field `_name`"
        );
    }

    #[test]
    fn trailing_characters_are_an_error() {
        let err = error_for::<serde_json::Value>("{} {}");
        assert!(err.reason().contains("trailing characters"), "{err}");
    }

    #[test]
    fn paths_join_like_serde_path_to_error() {
        assert_eq!(join_path("", "a.b"), "a.b");
        assert_eq!(join_path("data", ""), "data");
        assert_eq!(join_path("data", "errors[0]"), "data.errors[0]");
        assert_eq!(join_path("data.errors", "[0]"), "data.errors[0]");
    }
}
