//! `WebhookEvent` from arbitrary bytes, as a receiver parses a verified body.
//!
//! Beyond "no panic":
//!
//! - `WebhookEvent::from_slice` and `serde_json::from_slice::<WebhookEvent>` agree: both fail,
//!   or both give the same event;
//! - an event serializes, and the result parses back to an equal event;
//! - every accessor answers consistently with the variant;
//! - the lazily indexed objects (DATA_NEW payload, DATA_UPDATE diff sides, context) agree with
//!   a full parse into `serde_json::Map`: same keys, same values, `get`/`iter`/`len` coherent,
//!   and `Diff::change`, `change_as`, `changed_fields` and `changes` describe the same changes.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use propexo_webhooks::{Change, Diff, EventType, Field, JsonObject, RawJson, WebhookEvent};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let parsed = WebhookEvent::from_slice(data);
    let via_serde = serde_json::from_slice::<WebhookEvent>(data);
    match (&parsed, &via_serde) {
        (Ok(event), Ok(other)) => assert_eq!(event, other, "from_slice and serde_json disagree"),
        (Err(_), Err(_)) => {}
        (parsed, via_serde) => {
            panic!("from_slice gave {parsed:?} but serde_json::from_slice gave {via_serde:?}")
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            text.parse::<WebhookEvent>().ok(),
            parsed.as_ref().ok().cloned(),
            "FromStr and from_slice disagree"
        );
    }
    let Ok(event) = parsed else {
        return;
    };

    check_accessors(&event);
    match &event {
        WebhookEvent::DataNew(new) => {
            check_object(&new.payload);
            if let Some(context) = &new.context {
                check_object(context);
            }
            for (key, _) in new.payload.iter() {
                let field = new.field_as::<Value>(key);
                assert!(field.is_err() || field.is_ok_and(|field| !field.is_absent()));
            }
        }
        WebhookEvent::DataUpdate(update) => {
            check_object(&update.diff.new);
            check_object(&update.diff.previous);
            if let Some(context) = &update.context {
                check_object(context);
            }
            check_diff(&update.diff);
        }
        _ => {}
    }

    let written = serde_json::to_vec(&event).expect("an event always serializes");
    let again = WebhookEvent::from_slice(&written).unwrap_or_else(|err| {
        panic!(
            "the serialized event does not parse: {err}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(event, again, "serialize → parse changed the event");
});

fn check_accessors(event: &WebhookEvent) {
    let event_type = event.event_type();
    assert_eq!(EventType::parse(event_type.as_str()), event_type);
    let is_data = matches!(
        event,
        WebhookEvent::DataNew(_) | WebhookEvent::DataUpdate(_)
    );
    let is_unknown = matches!(event, WebhookEvent::Unknown(_));
    assert_eq!(event_type.is_unknown(), is_unknown);
    if !is_data {
        assert!(event.meta().is_none());
        if !is_unknown {
            assert!(event.object().is_none());
            assert!(event.record_id().is_none());
        }
    }
    if let (Some(object), Some(record_id)) = (event.object(), event.record_id())
        && let Some(path) = object.record_path(record_id)
    {
        assert!(path.starts_with("/v1/"), "{path}");
    }
    let _ = (
        event.integration_id(),
        event.vendor().map(|vendor| vendor.as_str()),
        event.job_id(),
        event.root_job_id(),
        format!("{event:?}"),
    );
}

/// A `JsonObject` agrees with a full parse of its text.
fn check_object(object: &JsonObject) {
    let keys: Vec<&str> = object.keys().collect();
    assert_eq!(keys.len(), object.len());
    assert_eq!(object.is_empty(), keys.is_empty());
    let unique: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(unique.len(), keys.len(), "a JsonObject holds a key twice");

    let iterated: Vec<(&str, RawJson<'_>)> = object.iter().collect();
    assert_eq!(iterated.len(), keys.len());
    for ((key, value), listed) in iterated.iter().zip(&keys) {
        assert_eq!(key, listed);
        assert!(object.contains_key(key));
        match object.get(key) {
            Field::Absent => panic!("get({key:?}) is absent but the key is listed"),
            Field::Null => assert_eq!(value.as_str(), "null"),
            Field::Value(got) => {
                assert_eq!(got, *value);
                assert_ne!(got.as_str(), "null");
            }
        }
    }

    // The same object parsed whole, as serde_json sees it (it fails only when nested too
    // deeply for serde_json's recursion limit).
    let Ok(map) = object.to_map() else {
        return;
    };
    assert_eq!(
        map.len(),
        keys.len(),
        "to_map and keys disagree on the number of keys"
    );
    for (key, value) in &iterated {
        let whole = map
            .get(*key)
            .unwrap_or_else(|| panic!("key {key:?} is not in to_map()"));
        match value.to_value() {
            Ok(parsed) => assert_eq!(&parsed, whole, "get({key:?}) and to_map disagree"),
            Err(err) => panic!("the value of {key:?} parses in to_map but not alone: {err}"),
        }
        let typed = object.get_as::<Value>(key).expect("the value parsed above");
        match typed {
            Field::Null => assert!(whole.is_null()),
            Field::Value(typed) => assert_eq!(&typed, whole),
            Field::Absent => panic!("get_as({key:?}) is absent"),
        }
    }
    let reparsed: JsonObject =
        serde_json::from_str(object.as_str()).expect("a JsonObject's text is a JsonObject");
    assert_eq!(&reparsed, object);
}

/// Every view of a diff describes the same changes.
fn check_diff(diff: &Diff) {
    let fields: Vec<&str> = diff.changed_fields().collect();
    let unique: HashSet<&str> = fields.iter().copied().collect();
    assert_eq!(unique.len(), fields.len(), "changed_fields repeats a field");
    let expected: HashSet<&str> = diff.new.keys().chain(diff.previous.keys()).collect();
    assert_eq!(
        unique, expected,
        "changed_fields is not the union of both sides"
    );

    let changes: Vec<(&str, Change<RawJson<'_>>)> = diff.changes().collect();
    assert_eq!(changes.len(), fields.len());
    for ((field, change), listed) in changes.iter().zip(&fields) {
        assert_eq!(field, listed);
        assert!(!(change.previous.is_absent() && change.new.is_absent()));
        assert_eq!(diff.change(field).as_ref(), Some(change));
        assert_eq!(change.previous, diff.previous.get(field));
        assert_eq!(change.new, diff.new.get(field));
        match diff.change_as::<Value>(field) {
            Ok(Some(typed)) => {
                assert_eq!(typed.previous.is_absent(), change.previous.is_absent());
                assert_eq!(typed.new.is_absent(), change.new.is_absent());
                assert_eq!(typed.previous.is_null(), change.previous.is_null());
                assert_eq!(typed.new.is_null(), change.new.is_null());
                let _ = typed.is_cleared();
                if let (Some(previous), Some(new)) = (typed.previous.value(), typed.new.value()) {
                    assert!(typed.is_from_to(previous, new));
                    assert!(
                        diff.changed_from_to(field, previous, new),
                        "changed_from_to disagrees with change_as"
                    );
                }
            }
            Ok(None) => panic!("change_as({field:?}) is None for a changed field"),
            // Only a value nested deeper than serde_json's recursion limit fails.
            Err(_) => {}
        }
    }

    // A field in neither side has no change.
    let absent = (0..)
        .map(|n| format!("absent-{n}"))
        .find(|candidate| !unique.contains(candidate.as_str()))
        .expect("some name is not a field");
    assert!(diff.change(&absent).is_none());
    assert!(matches!(diff.change_as::<Value>(&absent), Ok(None)));
}
