//! One pass over the envelope Propexo's API reference shows, `{"trigger": ..., "data": ...}`:
//! when the trigger comes before the data, the data is parsed into its typed body where it
//! stands, instead of being skipped once to find the trigger and read again.
//!
//! Anything else (another shape, an unknown trigger, any error) returns `None`, and the general
//! parser in `mod.rs` handles it: it gives the same value for what this accepts, and the
//! precise error for what it does not.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::WriteOperationFailure;
use super::{DataNew, DataUpdate, EventType, Job, Meta, SyncComplete, WebhookEvent};

/// The event, if `text` is an envelope whose known trigger precedes its `data` object.
pub(super) fn envelope(text: &str) -> Option<WebhookEvent> {
    let mut de = serde_json::Deserializer::from_str(text);
    let envelope = de.deserialize_map(EnvelopeVisitor).ok()?;
    de.end().ok()?;
    let Envelope { body, meta } = envelope;
    Some(match body {
        Typed::DataNew(mut body) => {
            body.meta = meta.flatten();
            WebhookEvent::DataNew(body)
        }
        Typed::DataUpdate(mut body) => {
            body.meta = meta.flatten();
            body.diff.object = body.object_type().cloned();
            WebhookEvent::DataUpdate(body)
        }
        Typed::SyncComplete(body) => WebhookEvent::SyncComplete(body),
        Typed::FirstSyncComplete(body) => WebhookEvent::FirstSyncComplete(body),
        Typed::JobFailure(body) => WebhookEvent::JobFailure(body),
        Typed::JobSuccess(body) => WebhookEvent::JobSuccess(body),
        Typed::WriteOperationFailure(body) => WebhookEvent::WriteOperationFailure(body),
    })
}

struct Envelope {
    body: Typed,
    meta: Option<Option<Meta>>,
}

enum Typed {
    DataNew(DataNew),
    DataUpdate(DataUpdate),
    SyncComplete(SyncComplete),
    FirstSyncComplete(SyncComplete),
    JobFailure(Job),
    JobSuccess(Job),
    WriteOperationFailure(WriteOperationFailure),
}

/// The top-level keys the general parser looks at; a repeated one is an error there, so it
/// makes this pass give up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Trigger,
    Event,
    Data,
    Meta,
    Diff,
    Payload,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "trigger" => Key::Trigger,
                    "event" => Key::Event,
                    "data" => Key::Data,
                    "meta" => Key::Meta,
                    "diff" => Key::Diff,
                    "payload" => Key::Payload,
                    _ => Key::Other,
                })
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let give_up = || de::Error::custom("not the envelope this pass reads");
        let mut seen = Vec::with_capacity(4);
        let mut trigger = None;
        let mut body = None;
        let mut meta = None;
        while let Some(key) = map.next_key::<Key>()? {
            if key != Key::Other {
                if seen.contains(&key) {
                    return Err(give_up());
                }
                seen.push(key);
            }
            match key {
                Key::Trigger => {
                    let name = map.next_value::<Cow<'de, str>>()?;
                    trigger = Some(EventType::parse(&name));
                }
                Key::Event => {
                    map.next_value::<Option<Cow<'de, str>>>()?;
                }
                Key::Data => match &trigger {
                    Some(trigger) if !trigger.is_unknown() => {
                        body = Some(map.next_value_seed(BodySeed(trigger))?);
                    }
                    _ => return Err(give_up()),
                },
                Key::Meta => meta = Some(map.next_value::<Option<Meta>>()?),
                Key::Diff | Key::Payload | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let body = body.ok_or_else(give_up)?;
        Ok(Envelope { body, meta })
    }
}

/// Reads the `data` object as the body of a known trigger.
struct BodySeed<'a>(&'a EventType);

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = Typed;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Typed, D::Error> {
        // The general parser wants `data` to be an object; a derived struct would also read
        // an array, field by field.
        let deserializer = ObjectOnly(deserializer);
        Ok(match self.0 {
            EventType::DataNew => Typed::DataNew(DataNew::deserialize(deserializer)?),
            EventType::DataUpdate => Typed::DataUpdate(DataUpdate::deserialize(deserializer)?),
            EventType::SyncComplete => {
                Typed::SyncComplete(SyncComplete::deserialize(deserializer)?)
            }
            EventType::FirstSyncComplete => {
                Typed::FirstSyncComplete(SyncComplete::deserialize(deserializer)?)
            }
            EventType::JobFailure => Typed::JobFailure(Job::deserialize(deserializer)?),
            EventType::JobSuccess => Typed::JobSuccess(Job::deserialize(deserializer)?),
            EventType::WriteOperationFailure => {
                Typed::WriteOperationFailure(WriteOperationFailure::deserialize(deserializer)?)
            }
            EventType::Unknown(_) => {
                return Err(de::Error::custom("not the envelope this pass reads"));
            }
        })
    }
}

/// Reads a struct from a JSON object only, never from an array.
struct ObjectOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fixtures() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
        let mut texts: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .collect();
        texts.sort();
        texts
    }

    #[test]
    fn takes_the_documented_envelopes() {
        let taken = fixtures()
            .iter()
            .filter(|text| envelope(text).is_some())
            .count();
        // The envelope fixtures of the seven triggers, plus the extra-fields and the
        // trigger-disagrees ones.
        assert!(taken >= 9, "{taken}");
    }

    #[test]
    fn agrees_with_the_general_parser_on_every_fixture() {
        for text in fixtures() {
            if let Some(event) = envelope(&text) {
                assert_eq!(
                    Ok(event),
                    WebhookEvent::parse_general(&text).map_err(|_| ()),
                    "{text}"
                );
            }
        }
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            (0u32..100).prop_map(serde_json::Value::from),
            prop::sample::select(vec!["leases", "YARDI", "x", "DATA_NEW", "PENDING"])
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "new",
                        "previous",
                        "payload",
                        "diff",
                        "object",
                        "vendor",
                        "record_id",
                        "errors",
                        "failed_job_count",
                        "context",
                        "integration_id",
                        "event",
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..5,
                )
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Envelope-like text: top-level keys in any order, some repeated, any values.
    fn envelope_text() -> impl Strategy<Value = String> {
        let trigger = prop::sample::select(
            EventType::KNOWN
                .iter()
                .map(|t| t.as_str().to_owned())
                .chain(["NEW_TRIGGER".to_owned()])
                .collect::<Vec<_>>(),
        );
        let key = prop::sample::select(vec![
            "trigger", "data", "meta", "event", "diff", "payload", "other",
        ]);
        (
            trigger,
            value(),
            prop::collection::vec((key, value()), 0..5),
            any::<bool>(),
        )
            .prop_map(|(trigger, data, extra, trigger_first)| {
                let mut parts = Vec::new();
                let trigger = format!(r#""trigger":"{trigger}""#);
                let data = format!(r#""data":{data}"#);
                if trigger_first {
                    parts.extend([trigger, data]);
                } else {
                    parts.extend([data, trigger]);
                }
                for (key, value) in extra {
                    parts.push(format!(r#""{key}":{value}"#));
                }
                format!("{{{}}}", parts.join(","))
            })
    }

    proptest! {
        #[test]
        fn agrees_with_the_general_parser(text in envelope_text()) {
            if let Some(event) = envelope(&text) {
                let general = WebhookEvent::parse_general(&text);
                prop_assert!(general.is_ok(), "the general parser refused {text}: {general:?}");
                prop_assert_eq!(Some(event), general.ok());
            }
        }
    }
}
