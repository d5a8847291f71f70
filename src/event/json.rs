//! JSON objects kept as received: payloads, diff sides, context.
//!
//! A record inside an event is kept as its JSON text plus an index of its keys, built once while
//! parsing. Nothing is turned into `serde_json::Value` or a typed record until a handler asks.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
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

/// Above this many keys, duplicates are found with a hash set rather than by comparison.
const LINEAR_DUPLICATE_CHECK: usize = 16;

impl JsonObject {
    /// Indexes a JSON value that must be an object with unique keys.
    pub(crate) fn from_raw(raw: Box<RawValue>) -> Result<Self, IndexError> {
        if !raw.get().starts_with('{') {
            return Err(IndexError::NotAnObject);
        }
        let entries = Indexer::index(raw.get()).map_err(|_| IndexError::BadKey)?;
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
            self.keys()
                .enumerate()
                .any(|(i, key)| self.keys().skip(i + 1).any(|other| other == key))
        } else {
            let mut seen = HashSet::with_capacity(self.entries.len());
            !self.keys().all(|key| seen.insert(key))
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

/// Walks an object once, recording where each key and value sits in the text.
struct Indexer<'a> {
    text: &'a str,
}

impl<'a> Indexer<'a> {
    fn index(text: &'a str) -> Result<Vec<Entry>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(Indexer { text })
    }

    fn offset_of(&self, part: &str) -> Range<usize> {
        let start = (part.as_ptr() as usize).wrapping_sub(self.text.as_ptr() as usize);
        start..start.saturating_add(part.len())
    }
}

impl<'de> Visitor<'de> for Indexer<'de> {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Entry>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(key) = map.next_key::<KeyText<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let key = match key.0 {
                Cow::Borrowed(key) => Key::Span(self.offset_of(key)),
                Cow::Owned(key) => Key::Decoded(key.into_boxed_str()),
            };
            entries.push(Entry {
                key,
                value: self.offset_of(value.get()),
            });
        }
        Ok(entries)
    }
}

/// A key borrowed from the input when it has no escapes, decoded otherwise.
struct KeyText<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyText<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(KeyText(Cow::Borrowed(key)))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(KeyText(Cow::Owned(key.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
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
