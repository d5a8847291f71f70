//! JSON objects kept as received: payloads, diff sides, context.
//!
//! A record inside an event is kept as its JSON text plus an index of its keys, built once while
//! parsing. Nothing is turned into `serde_json::Value` or a typed record until a handler asks.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::Error;
use crate::error::ParseError;

/// A field of a partial record: absent, explicitly `null`, or a value.
///
/// Propexo's payloads and diffs are partial, so "the key is not there" (unknown or unchanged)
/// and "the key is `null`" (cleared) mean different things; this keeps them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Field<T> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// The key is there with the value `null`.
    Null,
    /// The key is there with a value.
    Value(T),
}

impl<T> Field<T> {
    /// The value, if there is one (`None` for both absent and `null`).
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Value(value) => Some(value),
            Self::Absent | Self::Null => None,
        }
    }

    /// The value, if there is one, by value.
    pub fn into_value(self) -> Option<T> {
        match self {
            Self::Value(value) => Some(value),
            Self::Absent | Self::Null => None,
        }
    }

    /// Whether the key is absent.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// Whether the key is there with the value `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// Applies `f` to the value, keeping absent and `null` as they are.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Self::Absent => Field::Absent,
            Self::Null => Field::Null,
            Self::Value(value) => Field::Value(f(value)),
        }
    }

    /// As an `Option<Option<T>>`, the form of the records' nullable fields: `None` when
    /// absent, `Some(None)` for `null`, `Some(Some(value))` otherwise.
    pub fn into_option(self) -> Option<Option<T>> {
        match self {
            Self::Absent => None,
            Self::Null => Some(None),
            Self::Value(value) => Some(Some(value)),
        }
    }

    fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Field<U>, E> {
        Ok(match self {
            Self::Absent => Field::Absent,
            Self::Null => Field::Null,
            Self::Value(value) => Field::Value(f(value)?),
        })
    }
}

/// Reads `null` as [`Field::Null`] and anything else as a value; with `#[serde(default)]`, a
/// missing key is [`Field::Absent`].
///
/// ```
/// use propexo_webhooks::Field;
///
/// #[derive(serde::Deserialize)]
/// struct Partial {
///     #[serde(default)]
///     unit_id: Field<String>,
/// }
///
/// let cleared: Partial = serde_json::from_str(r#"{"unit_id":null}"#)?;
/// let absent: Partial = serde_json::from_str("{}")?;
/// assert_eq!((cleared.unit_id, absent.unit_id), (Field::Null, Field::Absent));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => Self::Value(value),
            None => Self::Null,
        })
    }
}

/// One JSON value as received: its text, not parsed yet.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// The JSON text, exactly as received.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Parses the value into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if the value does not fit `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        ParseError::parse_str(|| "a field value".to_owned(), "", self.0)
            .map_err(Error::InvalidRecord)
    }

    /// The value as a `serde_json::Value`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if the text cannot be represented (e.g. nested too deeply).
    pub fn to_value(&self) -> Result<serde_json::Value, Error> {
        self.parse()
    }
}

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A JSON object as received — a record payload, one side of a diff, the event context — kept
/// as text with an index of its keys, and parsed only when asked.
///
/// Keys are unique: an object that repeats a key is refused when the event is parsed, because
/// which value was meant is ambiguous.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{Field, JsonObject};
///
/// let object: JsonObject = serde_json::from_str(r#"{"status":"pending","unit_id":null}"#)?;
/// assert_eq!(object.get_as::<String>("status")?, Field::Value("pending".to_owned()));
/// assert!(object.get("unit_id").is_null());
/// assert!(object.get("rent").is_absent());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct JsonObject {
    raw: Box<RawValue>,
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    key: Key,
    value: Range<usize>,
}

#[derive(Clone)]
enum Key {
    /// The key is written without escapes: it is this range of the text.
    Span(Range<usize>),
    /// The key has escapes: decoded once, here.
    Decoded(Box<str>),
}

/// Above this many keys, duplicates are found by sorting the keys rather than by comparing each
/// with every other.
const LINEAR_DUPLICATE_CHECK: usize = 16;

impl JsonObject {
    /// Indexes a JSON value that must be an object with unique keys.
    pub(crate) fn from_raw(raw: Box<RawValue>) -> Result<Self, IndexError> {
        if !raw.get().starts_with('{') {
            return Err(IndexError::NotAnObject);
        }
        let entries = Indexer::index(raw.get())?;
        let object = Self { raw, entries };
        object.check_unique_keys()?;
        Ok(object)
    }

    /// An empty object, `{}`.
    pub(crate) fn empty() -> Result<Self, IndexError> {
        let raw = RawValue::from_string("{}".to_owned()).map_err(|_| IndexError::BadKey)?;
        Ok(Self {
            raw,
            entries: Vec::new(),
        })
    }

    fn check_unique_keys(&self) -> Result<(), IndexError> {
        let duplicate = if self.entries.len() <= LINEAR_DUPLICATE_CHECK {
            // Each key looked up once; comparing slices of different lengths is one compare.
            let mut keys = [""; LINEAR_DUPLICATE_CHECK];
            for (slot, key) in keys.iter_mut().zip(self.keys()) {
                *slot = key;
            }
            let mut rest = keys.get(..self.entries.len()).unwrap_or_default();
            let mut duplicate = false;
            while let Some((key, others)) = rest.split_first() {
                duplicate |= others.contains(key);
                rest = others;
            }
            duplicate
        } else {
            // Sorting beats hashing here: keys are short, and SipHash costs more per key than
            // the few comparisons each takes in a sort.
            let mut keys: Vec<&str> = self.keys().collect();
            keys.sort_unstable();
            keys.windows(2).any(|pair| matches!(pair, [a, b] if a == b))
        };
        if duplicate {
            Err(IndexError::DuplicateKey)
        } else {
            Ok(())
        }
    }

    /// The object's JSON text, exactly as received.
    pub fn as_str(&self) -> &str {
        self.raw.get()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is in the object (with any value, `null` included).
    pub fn contains_key(&self, key: &str) -> bool {
        self.keys().any(|k| k == key)
    }

    /// The keys, in the order received.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|entry| self.key_of(entry))
    }

    /// The keys and raw values, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, RawJson<'_>)> + '_ {
        self.entries
            .iter()
            .map(|entry| (self.key_of(entry), self.value_of(entry)))
    }

    /// The raw value of `key`: absent, `null`, or its JSON text.
    pub fn get(&self, key: &str) -> Field<RawJson<'_>> {
        match self.iter().find(|(k, _)| *k == key) {
            None => Field::Absent,
            Some((_, value)) if value.as_str() == "null" => Field::Null,
            Some((_, value)) => Field::Value(value),
        }
    }

    /// The value of `key` parsed into `T`: absent, `null`, or the value.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if the value does not fit `T`; its path names the key.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Field<T>, Error> {
        self.get(key).try_map(|raw| {
            ParseError::parse_str(|| "a field value".to_owned(), key, raw.as_str())
                .map_err(Error::InvalidRecord)
        })
    }

    /// Parses the whole object into `T`, whatever type it is. For Propexo's records, prefer the
    /// checked accessors of the event (they refuse a record of another object type).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if the object does not fit `T`; its path names the field.
    pub fn parse_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.parse_named(|| format!("a {}", std::any::type_name::<T>()))
    }

    pub(crate) fn parse_named<T: DeserializeOwned>(
        &self,
        what: impl Fn() -> String,
    ) -> Result<T, Error> {
        ParseError::parse_str(what, "", self.as_str()).map_err(Error::InvalidRecord)
    }

    /// The object as a `serde_json::Map`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if a value cannot be represented (e.g. nested too deeply).
    pub fn to_map(&self) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        self.parse_named(|| "a JSON object".to_owned())
    }

    fn key_of<'s>(&'s self, entry: &'s Entry) -> &'s str {
        match &entry.key {
            Key::Span(range) => self.raw.get().get(range.clone()).unwrap_or_default(),
            Key::Decoded(key) => key,
        }
    }

    fn value_of<'s>(&'s self, entry: &Entry) -> RawJson<'s> {
        RawJson(self.raw.get().get(entry.value.clone()).unwrap_or("null"))
    }
}

/// Why a JSON value could not be kept as a [`JsonObject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexError {
    NotAnObject,
    DuplicateKey,
    BadKey,
}

impl IndexError {
    /// Every message, so that parse errors can tell them from messages that quote the input.
    pub(crate) const MESSAGES: [&'static str; 3] = [
        "expected a JSON object",
        "a key appears more than once",
        "a key is not a valid string",
    ];

    fn message(self) -> &'static str {
        let [not_an_object, duplicate_key, bad_key] = Self::MESSAGES;
        match self {
            Self::NotAnObject => not_an_object,
            Self::DuplicateKey => duplicate_key,
            Self::BadKey => bad_key,
        }
    }
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Walks a JSON object once, recording where each key and value sits in its text.
///
/// The text is a [`RawValue`], so serde_json has already checked that it is valid JSON: this walk
/// only finds the boundaries, byte by byte, without validating again. A key with escapes is
/// decoded by serde_json. Should the text not be a valid object after all, the walk stops with
/// [`IndexError::BadKey`]; it never reads out of bounds and always moves forward.
struct Indexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
}

impl<'a> Indexer<'a> {
    fn index(text: &'a str) -> Result<Vec<Entry>, IndexError> {
        let indexer = Self {
            text,
            bytes: text.as_bytes(),
        };
        indexer.entries().ok_or(IndexError::BadKey)
    }

    fn entries(&self) -> Option<Vec<Entry>> {
        let mut entries = Vec::with_capacity(8);
        let mut pos = self.skip_whitespace(0);
        if self.bytes.get(pos) != Some(&b'{') {
            return None;
        }
        pos = self.skip_whitespace(pos + 1);
        if self.bytes.get(pos) == Some(&b'}') {
            return Some(entries);
        }
        loop {
            if self.bytes.get(pos) != Some(&b'"') {
                return None;
            }
            let (close, escaped) = self.string_end(pos + 1)?;
            let key = if escaped {
                let quoted = self.text.get(pos..=close)?;
                Key::Decoded(
                    serde_json::from_str::<String>(quoted)
                        .ok()?
                        .into_boxed_str(),
                )
            } else {
                Key::Span(pos + 1..close)
            };
            pos = self.skip_whitespace(close + 1);
            if self.bytes.get(pos) != Some(&b':') {
                return None;
            }
            let start = self.skip_whitespace(pos + 1);
            let end = self.value_end(start)?;
            entries.push(Entry {
                key,
                value: start..end,
            });
            pos = self.skip_whitespace(end);
            match self.bytes.get(pos)? {
                b',' => pos = self.skip_whitespace(pos + 1),
                b'}' => return Some(entries),
                _ => return None,
            }
        }
    }

    fn skip_whitespace(&self, mut pos: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(pos) {
            pos += 1;
        }
        pos
    }

    /// The end (exclusive) of the value starting at `pos`.
    fn value_end(&self, pos: usize) -> Option<usize> {
        match self.bytes.get(pos)? {
            b'"' => self.string_end(pos + 1).map(|(close, _)| close + 1),
            b'{' | b'[' => self.container_end(pos + 1),
            // A number, `true`, `false` or `null`: up to the next delimiter.
            _ => {
                let mut end = pos + 1;
                while let Some(byte) = self.bytes.get(end) {
                    if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    end += 1;
                }
                Some(end)
            }
        }
    }

    /// The end (exclusive) of the object or array whose opening bracket is just before `pos`.
    fn container_end(&self, mut pos: usize) -> Option<usize> {
        let mut depth = 1usize;
        loop {
            match self.bytes.get(pos)? {
                b'"' => pos = self.string_end(pos + 1)?.0,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(pos + 1);
                    }
                }
                _ => {}
            }
            pos += 1;
        }
    }

    /// The position of the quote closing the string whose content starts at `pos`, and whether
    /// the string has escapes. Eight bytes at a time while there is no quote or backslash.
    fn string_end(&self, mut pos: usize) -> Option<(usize, bool)> {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
        const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
        // The high bit of each byte of `word` that is zero (exact up to the first zero byte).
        let zero_bytes = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
        let mut escaped = false;
        loop {
            if let Some(chunk) = self.bytes.get(pos..pos + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                let found = zero_bytes(word ^ QUOTES) | zero_bytes(word ^ BACKSLASHES);
                if found == 0 {
                    pos += 8;
                    continue;
                }
                // The lowest flagged byte is a real quote or backslash.
                pos += (found.trailing_zeros() / 8) as usize;
            } else {
                while !matches!(self.bytes.get(pos)?, b'"' | b'\\') {
                    pos += 1;
                }
            }
            match self.bytes.get(pos)? {
                b'"' => return Some((pos, escaped)),
                // A backslash and the character it escapes; `\uXXXX` continues with hex digits.
                _ => {
                    escaped = true;
                    pos += 2;
                }
            }
        }
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Self::from_raw(raw).map_err(de::Error::custom)
    }
}

/// Two objects are equal when they hold the same keys with equal JSON values, however they
/// were laid out.
impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        if self.as_str() == other.as_str() {
            return true;
        }
        match (self.to_map(), other.to_map()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonObject({})", self.as_str())
    }
}

/// How one field differs between the two sides of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change<T> {
    /// The value before the change.
    pub previous: Field<T>,
    /// The value after the change.
    pub new: Field<T>,
}

impl<T: PartialEq> Change<T> {
    /// Whether the field went from `previous` to `new`.
    pub fn is_from_to(&self, previous: &T, new: &T) -> bool {
        self.previous.value() == Some(previous) && self.new.value() == Some(new)
    }
}

impl<T> Change<T> {
    /// Whether the change cleared the field (its new value is `null`).
    pub fn is_cleared(&self) -> bool {
        self.new.is_null()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn object(text: &str) -> Result<JsonObject, IndexError> {
        let raw: Box<RawValue> = serde_json::from_str(text).expect("valid JSON");
        JsonObject::from_raw(raw)
    }

    /// The index agrees with serde_json: same keys in the same order, same values.
    fn assert_indexed_like_serde_json(text: &str) {
        let object = object(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let expected: Vec<(String, serde_json::Value)> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .unwrap()
                .into_iter()
                .collect();
        let mut indexed: Vec<(String, serde_json::Value)> = object
            .iter()
            .map(|(key, value)| {
                (
                    key.to_owned(),
                    serde_json::from_str(value.as_str()).unwrap(),
                )
            })
            .collect();
        // serde_json's map is sorted; the index keeps the order of the text.
        indexed.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(indexed, expected, "{text}");
        assert!(
            object.entries.windows(2).all(|pair| match pair {
                [first, second] => first.value.end < second.value.start,
                _ => true,
            }),
            "{text}: entries out of order"
        );
        for (_, value) in object.iter() {
            let text = value.as_str();
            assert_eq!(text.trim(), text, "values are indexed without whitespace");
        }
    }

    #[test]
    fn awkward_objects_are_indexed_like_serde_json() {
        for text in [
            "{}",
            " { } ",
            r#"{"a":1}"#,
            "{ \"a\" :\t1 ,\n\"b\"\r\n:\"x\" }",
            r#"{"quote\"d":"}],\"{[","back\\slash":"ends with a backslash\\"}"#,
            r#"{"\u00e9t\u00e9":"été","é":"\ud83d\ude00 😀","":""}"#,
            r#"{"n":-1.5e+10,"t":true,"f":false,"z":null,"i":0}"#,
            r#"{"nested":{"a":[1,{"b":"]}"},[]],"c":{}},"after":"x"}"#,
            r#"{"long":"0123456789abcdef0123456789abcdef\"0123456789","s":"12345678"}"#,
            r#"{"a":[ "x" , { "y" : [ ] } ] , "b" : { "c" : null } }"#,
        ] {
            assert_indexed_like_serde_json(text);
        }
    }

    #[test]
    fn escaped_keys_are_decoded_once() {
        let object = object(r#"{"st\u0061tus":"pending","plain":1}"#).unwrap();
        assert_eq!(object.keys().collect::<Vec<_>>(), ["status", "plain"]);
        assert_eq!(
            object.get("status").value().map(RawJson::as_str),
            Some("\"pending\"")
        );
    }

    #[test]
    fn repeated_keys_are_refused_even_when_spelled_differently() {
        assert!(matches!(
            object(r#"{"a":1,"a":2}"#),
            Err(IndexError::DuplicateKey)
        ));
        assert!(matches!(
            object(r#"{"a":1,"\u0061":2}"#),
            Err(IndexError::DuplicateKey)
        ));
        let many: Vec<String> = (0..40).map(|n| format!("\"k{n}\":{n}")).collect();
        let text = format!("{{{},\"k7\":0}}", many.join(","));
        assert!(matches!(object(&text), Err(IndexError::DuplicateKey)));
    }

    #[test]
    fn a_key_serde_json_cannot_decode_is_refused() {
        // serde_json lets a lone surrogate through in a raw value, but not in a string.
        assert!(matches!(object(r#"{"\ud800":1}"#), Err(IndexError::BadKey)));
        assert!(object(r#"{"x":"\ud800"}"#).is_ok());
    }

    #[test]
    fn only_objects_are_indexed() {
        for text in ["[]", "1", "\"{}\"", "null"] {
            assert!(
                matches!(object(text), Err(IndexError::NotAnObject)),
                "{text}"
            );
        }
    }

    fn json_text() -> impl Strategy<Value = String> {
        // Strings with quotes, backslashes, control characters and multi-byte characters.
        let string = "(\"|\\\\|/|\\{|\\}|\\[|\\]|,|:|\u{0}|\u{1f}|é|😀|[a-z ]){0,20}";
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            string.prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::from),
                prop::collection::btree_map(string, inner, 0..5)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        });
        (
            prop::collection::btree_map(string, value, 0..8),
            any::<bool>(),
        )
            .prop_map(|(map, pretty)| {
                let map: serde_json::Map<_, _> = map.into_iter().collect();
                if pretty {
                    serde_json::to_string_pretty(&map).unwrap()
                } else {
                    serde_json::to_string(&map).unwrap()
                }
            })
    }

    proptest! {
        #[test]
        fn any_object_is_indexed_like_serde_json(text in json_text()) {
            assert_indexed_like_serde_json(&text);
        }
    }
}
