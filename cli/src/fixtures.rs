//! Built-in bodies: the library's event fixtures (every trigger in every shape Propexo
//! documents, and edge cases), plus a DATA_NEW and a DATA_UPDATE for every object type with a
//! record type, built from the record fixtures.

use propexo_webhooks::ObjectType;
use serde_json::{Map, Value, json};

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// The fixture `send` uses without `--fixture`: a lease DATA_UPDATE in the envelope shape.
pub(crate) const DEFAULT_FIXTURE: &str = "data_update.envelope";

/// One built-in body.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) body: String,
}

/// Every built-in fixture, event fixtures first, then `data_new.<object>` and
/// `data_update.<object>` for each object with a record type.
pub(crate) fn all() -> Vec<Fixture> {
    let mut fixtures: Vec<Fixture> = EVENT_FIXTURES
        .iter()
        .map(|(name, body)| Fixture {
            name: (*name).to_owned(),
            description: describe(name),
            body: (*body).to_owned(),
        })
        .collect();
    for (stem, record) in RECORD_FIXTURES {
        let object = ObjectType::parse(stem);
        if object.record_type_name().is_none() {
            continue;
        }
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(record) else {
            continue;
        };
        fixtures.push(Fixture {
            name: format!("data_new.{object}"),
            description: format!("DATA_NEW of a {object} record, every field set (envelope)"),
            body: data_new(&object, record.clone()),
        });
        fixtures.push(Fixture {
            name: format!("data_update.{object}"),
            description: format!("DATA_UPDATE of a {object} record (envelope)"),
            body: data_update(&object, &record),
        });
    }
    fixtures
}

/// The fixture called `name`.
pub(crate) fn find(name: &str) -> Option<Fixture> {
    all().into_iter().find(|fixture| fixture.name == name)
}

fn describe(name: &str) -> String {
    let (trigger, shape) = name.split_once('.').unwrap_or((name, ""));
    let shape = match shape {
        "envelope" => "envelope shape",
        "flat" => "flat shape",
        "simplified" => "simplified shape (no trigger)",
        "data_only" => "envelope without trigger",
        "" => "",
        other => other,
    };
    let trigger = trigger.to_uppercase();
    if shape.is_empty() {
        format!("edge case: {}", trigger.to_lowercase().replace('_', " "))
    } else {
        format!("{trigger}, {shape}")
    }
}

const INTEGRATION: &str = "cly301lrc000009jvbp6vaz7i";

fn record_id(object: &ObjectType) -> String {
    let compact: String = object
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("clz8{compact}0001")
}

fn job_type(object: &ObjectType) -> String {
    format!("READ_{}", object.as_str().to_uppercase().replace('-', "_"))
}

fn envelope(object: &ObjectType, trigger: &str, data: Map<String, Value>) -> String {
    let mut inner = Map::new();
    inner.insert("event".into(), json!(trigger));
    inner.insert("job_id".into(), json!("clz8job0001"));
    inner.insert("root_job_id".into(), json!("clz8root0001"));
    inner.insert("integration_id".into(), json!(INTEGRATION));
    inner.insert("job_type".into(), json!(job_type(object)));
    inner.insert("vendor".into(), json!("ENTRATA"));
    inner.insert("record_id".into(), json!(record_id(object)));
    inner.insert("object".into(), json!(object.as_str()));
    inner.extend(data);
    inner.insert("context".into(), json!({"property_id": "clz8prop0001"}));
    json!({
        "trigger": trigger,
        "data": inner,
        "meta": {"object": object.as_str(), "integration_id": INTEGRATION},
    })
    .to_string()
}

fn data_new(object: &ObjectType, mut record: Map<String, Value>) -> String {
    if record.contains_key("id") {
        record.insert("id".into(), json!(record_id(object)));
    }
    let mut data = Map::new();
    data.insert("payload".into(), Value::Object(record));
    envelope(object, "DATA_NEW", data)
}

/// A diff of the record's timestamps and of one more field, as Propexo sends on a re-sync.
fn data_update(object: &ObjectType, record: &Map<String, Value>) -> String {
    let mut new = Map::new();
    let mut previous = Map::new();
    if record.contains_key("last_seen") {
        new.insert("last_seen".into(), json!("2024-10-01T06:00:00.000Z"));
        previous.insert("last_seen".into(), json!("2024-09-30T06:00:00.000Z"));
    }
    if record.contains_key("updated_at") {
        new.insert("updated_at".into(), json!("2024-10-01T05:59:00.000Z"));
        previous.insert("updated_at".into(), json!("2024-09-02T10:00:00.000Z"));
    }
    // One more field: a status when there is one, else the first other string field.
    let other = record
        .iter()
        .find(|(key, value)| key.contains("status") && value.is_string())
        .or_else(|| {
            record.iter().find(|(key, value)| {
                value.is_string()
                    && !matches!(
                        key.as_str(),
                        "id" | "created_at" | "updated_at" | "last_seen"
                    )
            })
        });
    if let Some((key, value)) = other {
        new.insert(key.clone(), value.clone());
        previous.insert(key.clone(), Value::Null);
    }
    let mut data = Map::new();
    data.insert("diff".into(), json!({"new": new, "previous": previous}));
    envelope(object, "DATA_UPDATE", data)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use propexo_webhooks::{EventType, WebhookEvent};

    use super::*;

    #[test]
    fn every_trigger_in_every_shape_and_every_record_object_is_there() {
        let fixtures = all();
        let names: BTreeSet<&str> = fixtures.iter().map(|f| f.name.as_str()).collect();
        for trigger in EventType::KNOWN {
            let stem = trigger.as_str().to_lowercase();
            assert!(
                names.contains(format!("{stem}.envelope").as_str()),
                "{stem}"
            );
            assert!(names.contains(format!("{stem}.flat").as_str()), "{stem}");
        }
        assert!(names.contains("data_new.simplified"));
        assert!(names.contains("data_update.simplified"));
        for object in ObjectType::all() {
            if object.record_type_name().is_some() {
                for trigger in ["data_new", "data_update"] {
                    let name = format!("{trigger}.{object}");
                    let fixture = find(&name).unwrap();
                    let event = WebhookEvent::from_slice(fixture.body.as_bytes()).unwrap();
                    assert_eq!(event.object(), Some(object), "{name}");
                    assert!(event.payload_as_any_ok(), "{name}");
                }
            }
        }
        assert!(names.contains(DEFAULT_FIXTURE));
    }

    trait PayloadOk {
        fn payload_as_any_ok(&self) -> bool;
    }

    impl PayloadOk for WebhookEvent {
        fn payload_as_any_ok(&self) -> bool {
            match self {
                WebhookEvent::DataNew(new) => new.object_type().is_some_and(|object| {
                    propexo_webhooks::AnyRecord::parse(object, new.payload.as_str())
                        .is_ok_and(|r| r.is_some())
                }),
                WebhookEvent::DataUpdate(update) => !update.diff.new.is_empty(),
                _ => false,
            }
        }
    }
}
