//! The generated records through the public API: every model parses its fixture (a record
//! with every field populated) without losing a field, parses `{}` to nothing, keeps
//! unknown enum values, and reports a mistyped field by its path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use propexo_webhooks::records::{
    Lease, LeaseStatus, Property, PropertyOfficeHoursDayOfWeek, ResidentToLease,
    ResidentToLeaseResidentType,
};
use propexo_webhooks::{AnyRecord, Error, ObjectType, Record};
use serde_json::{Value, json};

fn fixtures() -> Vec<(ObjectType, PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((ObjectType::parse(&stem), path, text));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn with_records() -> Vec<&'static ObjectType> {
    ObjectType::all()
        .iter()
        .filter(|object| object.record_type_name().is_some())
        .collect()
}

#[test]
fn every_record_model_has_a_fixture_and_every_fixture_a_model() {
    let from_fixtures: BTreeSet<String> = fixtures()
        .iter()
        .map(|(object, _, _)| object.as_str().to_owned())
        .collect();
    let from_types: BTreeSet<String> = with_records()
        .iter()
        .map(|object| object.as_str().to_owned())
        .collect();
    assert_eq!(from_fixtures, from_types);
    assert_eq!(from_types.len(), 72);
}

#[test]
fn every_fixture_parses_with_every_field_kept() {
    for (object, path, text) in fixtures() {
        let record = AnyRecord::parse(&object, &text)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .unwrap_or_else(|| panic!("{}: no record type", path.display()));
        assert_eq!(record.object_type(), object);

        // Serializing writes back each key that was read: a dropped or mistyped field shows.
        let expected: Value = serde_json::from_str(&text).unwrap();
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written, expected, "{}", path.display());
        let keys = expected.as_object().unwrap().len();
        assert!(keys > 0, "{}", path.display());

        // The round trip is stable.
        let again = AnyRecord::parse(&object, &written.to_string())
            .unwrap()
            .unwrap();
        assert_eq!(again, record, "{}", path.display());
    }
}

#[test]
fn an_empty_object_is_a_record_with_every_field_absent() {
    for object in with_records() {
        let record = AnyRecord::parse(object, "{}").unwrap().unwrap();
        assert_eq!(serde_json::to_string(&record).unwrap(), "{}", "{object}");
        assert_eq!(record.object_type(), *object);
    }
}

#[test]
fn unknown_keys_are_ignored() {
    let record = AnyRecord::parse(
        &ObjectType::Leases,
        r#"{"id":"lease_1","added_by_propexo_later":{"x":[1,2]}}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        json!({"id": "lease_1"})
    );
}

#[test]
fn objects_without_a_record_type_parse_to_none() {
    for object in [
        ObjectType::ResidentsToEvents,
        ObjectType::CrmAgents,
        ObjectType::Unknown("parking-spaces".to_owned()),
    ] {
        assert_eq!(object.record_type_name(), None);
        assert!(
            AnyRecord::parse(&object, "{}").unwrap().is_none(),
            "{object}"
        );
        // Even when the body is not a record at all: nothing is parsed.
        assert!(
            AnyRecord::parse(&object, "[").unwrap().is_none(),
            "{object}"
        );
    }
}

#[test]
fn record_types_know_their_object_type() {
    assert_eq!(Lease::OBJECT_TYPE, ObjectType::Leases);
    assert_eq!(ResidentToLease::OBJECT_TYPE, ObjectType::ResidentsToLeases);
    assert_eq!(Property::OBJECT_TYPE.record_type_name(), Some("Property"));
    assert_eq!(ObjectType::Leases.record_type_name(), Some("Lease"));
    assert_eq!(
        ObjectType::ServiceRequestNotes.record_type_name(),
        Some("ServiceRequestNote")
    );
    assert_eq!(ObjectType::Locations.record_type_name(), Some("Location"));

    fn assert_record<T: Record>() {}
    assert_record::<Lease>();
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<AnyRecord>();
    // Boxed variants: a large record does not make every AnyRecord large.
    assert!(std::mem::size_of::<AnyRecord>() <= 2 * std::mem::size_of::<usize>());
}

#[test]
fn a_lease_going_from_pending_to_active_reads_in_one_line() {
    let previous: Lease = serde_json::from_str(r#"{"status_normalized":"PENDING"}"#).unwrap();
    let new: Lease = serde_json::from_str(r#"{"status_normalized":"ACTIVE"}"#).unwrap();
    assert_eq!(previous.status_normalized, Some(Some(LeaseStatus::Pending)));
    assert!(new.status_normalized == Some(Some(LeaseStatus::Active)));
    // Every other field is absent, not empty.
    assert_eq!(new, {
        let mut lease = Lease::default();
        lease.status_normalized = Some(Some(LeaseStatus::Active));
        lease
    });
}

#[test]
fn absent_null_and_present_stay_apart() {
    let absent: Lease = serde_json::from_str("{}").unwrap();
    let null: Lease = serde_json::from_str(r#"{"status_normalized":null}"#).unwrap();
    let present: Lease = serde_json::from_str(r#"{"status_normalized":"EVICTED"}"#).unwrap();
    assert_eq!(absent.status_normalized, None);
    assert_eq!(null.status_normalized, Some(None));
    assert_eq!(present.status_normalized, Some(Some(LeaseStatus::Evicted)));
    assert_eq!(
        serde_json::to_string(&null).unwrap(),
        r#"{"status_normalized":null}"#
    );
    assert_eq!(serde_json::to_string(&absent).unwrap(), "{}");
}

#[test]
fn an_unknown_enum_value_lands_in_unknown_and_round_trips() {
    // Keys in the order of the struct's fields, so the serialization compares as text.
    let json = r#"{"residents_meta_data":[{"resident_type_normalized":"CO_SIGNER"}],"status_normalized":"ON_HOLD"}"#;
    let lease: Lease = serde_json::from_str(json).unwrap();
    let status = lease.status_normalized.clone().flatten().unwrap();
    assert_eq!(status, LeaseStatus::Unknown("ON_HOLD".to_owned()));
    assert_eq!(status.as_str(), "ON_HOLD");
    assert_eq!(status.to_string(), "ON_HOLD");
    let link = &lease.residents_meta_data.as_ref().unwrap()[0];
    assert_eq!(
        link.resident_type_normalized,
        Some(Some(ResidentToLeaseResidentType::Unknown(
            "CO_SIGNER".to_owned()
        )))
    );
    assert_eq!(serde_json::to_string(&lease).unwrap(), json);

    // Known values keep their spelling too, from owned strings as well as borrowed ones.
    let day: PropertyOfficeHoursDayOfWeek = serde_json::from_reader(&br#""MONDAY""#[..]).unwrap();
    assert_eq!(day, PropertyOfficeHoursDayOfWeek::Monday);
    assert_eq!(serde_json::to_string(&day).unwrap(), r#""MONDAY""#);
    let day: PropertyOfficeHoursDayOfWeek = serde_json::from_value(json!("HOLIDAY")).unwrap();
    assert_eq!(
        day,
        PropertyOfficeHoursDayOfWeek::Unknown("HOLIDAY".to_owned())
    );
}

#[test]
fn a_mistyped_field_is_an_invalid_record_naming_the_field() {
    let err = AnyRecord::parse(
        &ObjectType::Leases,
        r#"{"rent_amount_in_cents":"secret-text"}"#,
    )
    .unwrap_err();
    let Error::InvalidRecord(parse) = &err else {
        panic!("expected InvalidRecord, got {err:?}");
    };
    assert_eq!(parse.path(), "rent_amount_in_cents");
    assert_eq!(parse.what(), "a Lease record");
    assert!(!err.to_string().contains("secret-text"), "{err}");

    let err = AnyRecord::parse(
        &ObjectType::Leases,
        r#"{"residents_meta_data":[{"move_in_date":7}]}"#,
    )
    .unwrap_err();
    let Error::InvalidRecord(parse) = &err else {
        panic!("expected InvalidRecord, got {err:?}");
    };
    assert_eq!(parse.path(), "residents_meta_data[0].move_in_date");

    // A record must be a JSON object.
    for body in ["[]", "\"lease\"", "{", ""] {
        let err = AnyRecord::parse(&ObjectType::Leases, body).unwrap_err();
        assert!(matches!(err, Error::InvalidRecord(_)), "{body}: {err:?}");
    }
}

#[test]
fn a_record_seen_from_another_record_uses_that_records_type() {
    // A lease's residents and a resident's leases are both `ResidentToLease` links.
    let lease: Lease =
        serde_json::from_str(r#"{"residents_meta_data":[{"resident_id":"r1"}]}"#).unwrap();
    let link: &ResidentToLease = &lease.residents_meta_data.as_ref().unwrap()[0];
    assert_eq!(link.resident_id.as_deref(), Some("r1"));
}
