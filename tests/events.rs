//! Every documented event shape, parsed through the public API.

use propexo_webhooks::{
    Change, DataNew, DataUpdate, Error, EventType, Field, Job, ObjectType, SyncComplete, Vendor,
    WebhookEvent, WriteOperationFailure, WriteStatus,
};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Parses a fixture and checks that serializing and parsing again gives the same event.
fn parse(name: &str) -> WebhookEvent {
    let event =
        WebhookEvent::from_slice(&fixture(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
    let written = serde_json::to_vec(&event).unwrap();
    let again = WebhookEvent::from_slice(&written).unwrap();
    assert_eq!(again, event, "{name} changed through serialize → parse");
    // serde's own entry point gives the same value.
    let via_serde: WebhookEvent = serde_json::from_slice(&fixture(name)).unwrap();
    assert_eq!(via_serde, event, "{name}: serde_json::from_slice differs");
    event
}

fn data_new(event: WebhookEvent) -> DataNew {
    match event {
        WebhookEvent::DataNew(body) => body,
        other => panic!("expected DATA_NEW, got {other:?}"),
    }
}

fn data_update(event: WebhookEvent) -> DataUpdate {
    match event {
        WebhookEvent::DataUpdate(body) => body,
        other => panic!("expected DATA_UPDATE, got {other:?}"),
    }
}

fn raw(text: &str) -> String {
    text.to_owned()
}

// --- DATA_NEW --------------------------------------------------------------------------------

fn assert_lease_data_new(event: &WebhookEvent) {
    assert_eq!(event.event_type(), EventType::DataNew);
    assert_eq!(event.integration_id(), Some("cly301lrc000009jvbp6vaz7i"));
    assert_eq!(event.vendor(), Some(&Vendor::Yardi));
    assert_eq!(event.object(), Some(&ObjectType::Leases));
    assert_eq!(event.record_id(), Some("clz8lease0001"));
    assert_eq!(event.job_id(), Some("clz8job0001"));
    assert_eq!(event.root_job_id(), Some("clz8root0001"));

    let body = data_new(event.clone());
    assert_eq!(body.job_type.as_deref(), Some("READ_LEASES"));
    assert_eq!(body.payload.len(), 12);
    assert_eq!(
        body.field_as::<String>("status_normalized").unwrap(),
        Field::Value(raw("PENDING"))
    );
    assert_eq!(
        body.field_as::<i64>("rent_amount_in_cents").unwrap(),
        Field::Value(185_000)
    );
    assert_eq!(body.field_as::<String>("end_date").unwrap(), Field::Null);
    assert_eq!(
        body.field_as::<String>("move_in_date").unwrap(),
        Field::Absent
    );
    let context = body.context.as_ref().unwrap();
    assert_eq!(
        context.get_as::<String>("property_id").unwrap(),
        Field::Value(raw("clz8prop0001"))
    );
    let meta = body.meta.as_ref().unwrap();
    assert_eq!(meta.object, Some(ObjectType::Leases));
    assert_eq!(
        meta.integration_id.as_deref(),
        Some("cly301lrc000009jvbp6vaz7i")
    );
}

#[test]
fn data_new_envelope() {
    assert_lease_data_new(&parse("data_new.envelope.json"));
}

#[test]
fn data_new_flat() {
    assert_lease_data_new(&parse("data_new.flat.json"));
}

#[test]
fn data_new_simplified_is_inferred_from_the_payload() {
    let event = parse("data_new.simplified.json");
    assert_eq!(event.event_type(), EventType::DataNew);
    assert_eq!(event.object(), Some(&ObjectType::Residents));
    assert_eq!(event.integration_id(), Some("cuid_1234567890"));
    assert_eq!(event.record_id(), Some("cuid_0987654321"));
    assert_eq!(event.vendor(), None);
    assert_eq!(event.job_id(), None);
    let body = data_new(event);
    assert_eq!(
        body.field_as::<String>("first_name").unwrap(),
        Field::Value(raw("Mary"))
    );
    assert!(body.payload.get("email_1").is_null());
    assert_eq!(body.object, None, "the object is only in meta");
}

#[test]
fn nullable_fields_accept_null() {
    let event = parse("nulls.json");
    assert_eq!(event.event_type(), EventType::DataNew);
    assert_eq!(event.integration_id(), Some("INTEGRATION_ID_008"));
    assert_eq!(event.vendor(), None);
    assert_eq!(event.job_id(), None);
    assert_eq!(event.root_job_id(), None);
    assert_eq!(event.meta(), None);
    let body = data_new(event);
    assert_eq!(body.job_type, None);
    assert_eq!(body.context, None);
    assert_eq!(
        body.payload.keys().collect::<Vec<_>>(),
        ["id", "email_1", "phone_1"]
    );
}

// --- DATA_UPDATE -----------------------------------------------------------------------------

fn assert_lease_data_update(event: &WebhookEvent) {
    assert_eq!(event.event_type(), EventType::DataUpdate);
    assert_eq!(event.integration_id(), Some("cly301lrc000009jvbp6vaz7i"));
    assert_eq!(event.vendor(), Some(&Vendor::Entrata));
    assert_eq!(event.object(), Some(&ObjectType::Leases));
    assert_eq!(event.record_id(), Some("clz8lease0001"));
    assert_eq!(event.job_id(), Some("clz8job0002"));
    assert_eq!(event.root_job_id(), Some("clz8root0002"));

    let body = data_update(event.clone());
    assert_eq!(body.job_type.as_deref(), Some("READ_LEASES"));
    let diff = &body.diff;
    assert_eq!(
        diff.changed_fields().collect::<Vec<_>>(),
        ["status_normalized", "status_raw", "last_seen", "unit_id"]
    );
    assert!(diff.changed_from_to("status_normalized", &raw("PENDING"), &raw("ACTIVE")));
    assert!(!diff.changed_from_to("status_normalized", &raw("ACTIVE"), &raw("PENDING")));
    let unit = diff.change_as::<String>("unit_id").unwrap().unwrap();
    assert_eq!(unit.previous, Field::Value(raw("clz8unit0001")));
    assert_eq!(unit.new, Field::Null);
    assert!(unit.is_cleared());
    assert!(diff.change("rent_amount_in_cents").is_none());
    assert_eq!(diff.changes().count(), 4);
    assert_eq!(
        body.context
            .as_ref()
            .unwrap()
            .get_as::<String>("property_id")
            .unwrap(),
        Field::Value(raw("clz8prop0001"))
    );
}

#[test]
fn data_update_envelope() {
    assert_lease_data_update(&parse("data_update.envelope.json"));
}

#[test]
fn data_update_flat() {
    assert_lease_data_update(&parse("data_update.flat.json"));
}

#[test]
fn data_update_data_only_envelope_takes_the_trigger_from_data_event() {
    let event = parse("data_update.data_only.json");
    assert_eq!(event.event_type(), EventType::DataUpdate);
    assert_eq!(event.object(), Some(&ObjectType::Residents));
    assert_eq!(event.record_id(), Some("cly301zs1000109jv26hx7hii"));
    assert_eq!(event.integration_id(), None);
    let diff = data_update(event).diff;
    let first_name = diff.change_as::<String>("first_name").unwrap().unwrap();
    assert!(first_name.is_from_to(&raw("Sarah"), &raw("Mary")));
}

#[test]
fn the_seed_lease_example_reads_as_pending_to_approved() {
    let event = parse("data_update.simplified.json");
    assert_eq!(event.object(), Some(&ObjectType::Leases));
    assert_eq!(event.event_type(), EventType::DataUpdate);
    assert_eq!(event.record_id(), Some("cuid_1234567890"));
    assert_eq!(event.integration_id(), Some("cuid_1234567890"));
    let WebhookEvent::DataUpdate(update) = &event else {
        panic!("not an update: {event:?}");
    };
    let status: Change<String> = update.diff.change_as("status").unwrap().unwrap();
    assert_eq!(status.previous, Field::Value(raw("pending")));
    assert_eq!(status.new, Field::Value(raw("approved")));
    assert!(
        update
            .diff
            .changed_from_to("status", &raw("pending"), &raw("approved"))
    );
}

// --- SYNC_COMPLETE and FIRST_SYNC_COMPLETE ---------------------------------------------------

fn sync(event: &WebhookEvent) -> &SyncComplete {
    match event {
        WebhookEvent::SyncComplete(body) | WebhookEvent::FirstSyncComplete(body) => body,
        other => panic!("expected a sync event, got {other:?}"),
    }
}

#[test]
fn sync_complete_envelope_and_flat() {
    for name in ["sync_complete.envelope.json", "sync_complete.flat.json"] {
        let event = parse(name);
        assert_eq!(event.event_type(), EventType::SyncComplete);
        assert_eq!(event.integration_id(), Some("INTEGRATION_ID_003"));
        assert_eq!(event.vendor(), Some(&Vendor::Yardi));
        assert_eq!(
            (event.object(), event.record_id(), event.job_id()),
            (None, None, None)
        );
        let body = sync(&event);
        assert_eq!(body.successful_job_count, Some(49));
        assert_eq!(body.failed_job_count, Some(0));
        assert_eq!(body.is_sync_finished, Some(true));
        assert_eq!(body.job_schedule_id.as_deref(), Some("JOB_SCHEDULE_ID_001"));
        assert_eq!(body.is_backsync, None);
        assert_eq!(body.models_synced, None);
    }
}

#[test]
fn counts_sent_as_doubles_and_the_optional_sync_fields() {
    let event = parse("sync_complete.doubles_and_extras.json");
    let body = sync(&event);
    assert_eq!(body.successful_job_count, Some(49));
    assert_eq!(body.failed_job_count, Some(2));
    assert_eq!(body.is_sync_finished, Some(false));
    assert_eq!(body.job_schedule_id, None, "null for a manual sync");
    assert_eq!(body.is_backsync, Some(true));
    assert_eq!(
        body.models_synced.as_deref(),
        Some(
            &[
                ObjectType::Leases,
                ObjectType::ResidentsToLeases,
                ObjectType::Unknown(raw("crm_prospects_v2")),
            ][..]
        )
    );
}

#[test]
fn missing_optional_fields_are_none() {
    let event = parse("minimal_sync.json");
    assert_eq!(event.integration_id(), Some("INTEGRATION_ID_009"));
    let mut expected = SyncComplete::default();
    expected.integration_id = Some(raw("INTEGRATION_ID_009"));
    assert_eq!(sync(&event), &expected);
}

#[test]
fn first_sync_complete_envelope_and_flat() {
    for name in [
        "first_sync_complete.envelope.json",
        "first_sync_complete.flat.json",
    ] {
        let event = parse(name);
        assert_eq!(event.event_type(), EventType::FirstSyncComplete);
        assert!(matches!(event, WebhookEvent::FirstSyncComplete(_)));
        assert_eq!(event.integration_id(), Some("cly301lrc000009jvbp6vaz7i"));
        assert_eq!(event.vendor(), Some(&Vendor::Propertyware));
        let body = sync(&event);
        assert_eq!(body.successful_job_count, Some(5));
        assert_eq!(body.failed_job_count, Some(0));
        assert_eq!(body.is_sync_finished, Some(true));
        assert_eq!(body.job_schedule_id, None);
    }
}

// --- JOB_FAILURE and JOB_SUCCESS -------------------------------------------------------------

fn job(event: &WebhookEvent) -> &Job {
    match event {
        WebhookEvent::JobFailure(body) | WebhookEvent::JobSuccess(body) => body,
        other => panic!("expected a job event, got {other:?}"),
    }
}

#[test]
fn job_failure_envelope_and_flat() {
    for name in ["job_failure.envelope.json", "job_failure.flat.json"] {
        let event = parse(name);
        assert_eq!(event.event_type(), EventType::JobFailure);
        assert_eq!(event.integration_id(), Some("INTEGRATION_ID_002"));
        assert_eq!(event.vendor(), Some(&Vendor::ResMan));
        assert_eq!(event.job_id(), Some("JOB_ID_002"));
        assert_eq!(event.root_job_id(), Some("ROOT_JOB_ID_002"));
        assert_eq!(
            job(&event).job_type.as_deref(),
            Some("READ_RESIDENT_TRANSACTIONS")
        );
    }
}

#[test]
fn job_success_envelope_and_flat() {
    for name in ["job_success.envelope.json", "job_success.flat.json"] {
        let event = parse(name);
        assert_eq!(event.event_type(), EventType::JobSuccess);
        assert_eq!(event.integration_id(), Some("INTEGRATION_ID_004"));
        assert_eq!(event.vendor(), Some(&Vendor::Buildium));
        assert_eq!(event.job_id(), Some("JOB_ID_004"));
        assert_eq!(event.root_job_id(), Some("ROOT_JOB_ID_004"));
        assert_eq!(job(&event).job_type.as_deref(), Some("READ_LEASES"));
    }
}

#[test]
fn trigger_wins_over_data_event() {
    let event = parse("trigger_disagrees.json");
    assert_eq!(event.event_type(), EventType::JobSuccess);
    assert_eq!(event.job_id(), Some("JOB_ID_004"));
}

// --- WRITE_OPERATION_FAILURE -----------------------------------------------------------------

fn write_failure(event: &WebhookEvent) -> &WriteOperationFailure {
    match event {
        WebhookEvent::WriteOperationFailure(body) => body,
        other => panic!("expected WRITE_OPERATION_FAILURE, got {other:?}"),
    }
}

#[test]
fn write_operation_failure_envelope_and_flat() {
    for name in [
        "write_operation_failure.envelope.json",
        "write_operation_failure.flat.json",
    ] {
        let event = parse(name);
        assert_eq!(event.event_type(), EventType::WriteOperationFailure);
        assert_eq!(event.integration_id(), Some("INTEGRATION_ID_002"));
        assert_eq!(event.vendor(), Some(&Vendor::ResMan));
        assert_eq!(event.root_job_id(), Some("ROOT_OPERATION_ID_002"));
        assert_eq!(event.job_id(), None);
        let body = write_failure(&event);
        assert_eq!(body.write_status, Some(WriteStatus::PartialSuccess));
        assert_eq!(
            body.errors,
            ["Failed to write resident transaction: Duplicate transaction ID"]
        );
    }
}

// --- shapes agree ----------------------------------------------------------------------------

#[test]
fn envelope_and_flat_forms_parse_to_the_same_value() {
    for trigger in [
        "data_new",
        "data_update",
        "sync_complete",
        "first_sync_complete",
        "job_failure",
        "job_success",
        "write_operation_failure",
    ] {
        assert_eq!(
            parse(&format!("{trigger}.envelope.json")),
            parse(&format!("{trigger}.flat.json")),
            "{trigger}"
        );
    }
}

#[test]
fn envelope_without_trigger_parses_like_the_envelope() {
    let with_trigger = fixture("job_failure.envelope.json");
    let text = String::from_utf8(with_trigger.clone()).unwrap();
    let without = text.replacen(r#""trigger":"JOB_FAILURE","#, "", 1);
    assert_ne!(text, without);
    assert_eq!(
        WebhookEvent::from_slice(without.as_bytes()).unwrap(),
        WebhookEvent::from_slice(&with_trigger).unwrap()
    );
}

#[test]
fn serializing_writes_the_envelope() {
    let event = parse("job_failure.flat.json");
    let written: serde_json::Value = serde_json::to_value(&event).unwrap();
    assert_eq!(written["trigger"], "JOB_FAILURE");
    assert_eq!(written["data"]["event"], "JOB_FAILURE");
    assert_eq!(written["data"]["job_id"], "JOB_ID_002");
    assert!(written.get("meta").is_none());
}

// --- what Propexo adds later still parses ----------------------------------------------------

#[test]
fn unknown_trigger_keeps_its_name_and_raw_json() {
    let body = fixture("unknown_trigger.json");
    let event = parse("unknown_trigger.json");
    assert_eq!(event.event_type(), EventType::Unknown(raw("DATA_DELETE")));
    let WebhookEvent::Unknown(unknown) = &event else {
        panic!("expected Unknown, got {event:?}");
    };
    assert_eq!(unknown.trigger, "DATA_DELETE");
    assert_eq!(unknown.raw.get().as_bytes(), body.trim_ascii_end());
    // Identifiers still reach the common accessors where they are strings...
    assert_eq!(event.integration_id(), Some("INTEGRATION_ID_005"));
    assert_eq!(event.vendor(), Some(&Vendor::Yardi));
    assert_eq!(event.object(), Some(&ObjectType::Leases));
    assert_eq!(event.record_id(), Some("clz8lease0009"));
    // ...and are left out where they are not.
    assert_eq!(event.job_id(), None);
    // Serializing gives back the body as received.
    assert_eq!(serde_json::to_vec(&event).unwrap(), body.trim_ascii_end());
}

#[test]
fn unknown_vendor_and_enum_values_land_in_unknown() {
    let event = parse("unknown_values.json");
    assert_eq!(event.vendor(), Some(&Vendor::Unknown(raw("APPFOLIO_REST"))));
    let body = write_failure(&event);
    assert_eq!(
        body.write_status,
        Some(WriteStatus::Unknown(raw("TIMED_OUT")))
    );
    assert!(body.errors.is_empty());
}

#[test]
fn unknown_object_lands_in_unknown() {
    let event = parse("unknown_object.json");
    let object = event.object().unwrap();
    assert_eq!(object, &ObjectType::Unknown(raw("tour-bookings")));
    assert_eq!(object.as_str(), "tour-bookings");
    assert_eq!(event.vendor(), Some(&Vendor::EliseAi));
    let update = data_update(event);
    assert!(
        update
            .diff
            .changed_from_to("status_normalized", &raw("BOOKED"), &raw("RESCHEDULED"))
    );
    assert_eq!(update.context, None);
}

#[test]
fn extra_fields_are_ignored() {
    let event = parse("extra_fields.json");
    assert_eq!(event, parse("job_failure.envelope.json"));
}

#[test]
fn adding_new_values_to_any_fixture_still_parses() {
    let text = String::from_utf8(fixture("data_update.envelope.json")).unwrap();
    let changed = text
        .replace("ENTRATA", "NEW_PMS")
        .replace(r#""object": "leases""#, r#""object": "new-things""#)
        .replace("ACTIVE", "ON_HOLD")
        .replace(
            r#""event": "DATA_UPDATE""#,
            r#""event": "DATA_UPDATE", "new_field": {"a": [1]}"#,
        );
    let event = WebhookEvent::from_slice(changed.as_bytes()).unwrap();
    assert_eq!(event.vendor(), Some(&Vendor::Unknown(raw("NEW_PMS"))));
    assert_eq!(
        event.object(),
        Some(&ObjectType::Unknown(raw("new-things")))
    );
    let update = data_update(event);
    assert!(
        update
            .diff
            .changed_from_to("status_normalized", &raw("PENDING"), &raw("ON_HOLD"))
    );
}

// --- what does not parse, and how it says so -------------------------------------------------

fn invalid(body: &str) -> propexo_webhooks::ParseError {
    match WebhookEvent::from_slice(body.as_bytes()) {
        Err(Error::InvalidEvent(err)) => err,
        other => panic!("expected InvalidEvent for {body}, got {other:?}"),
    }
}

#[test]
fn a_wrong_field_type_names_the_trigger_and_path_and_quotes_nothing() {
    let err = invalid(
        r#"{"trigger":"SYNC_COMPLETE","data":{"event":"SYNC_COMPLETE","successful_job_count":"forty-nine-secret"}}"#,
    );
    assert_eq!(err.what(), "a SYNC_COMPLETE event");
    assert_eq!(err.path(), "data.successful_job_count");
    assert!(!err.to_string().contains("forty-nine"), "{err}");

    let err = invalid(r#"{"event":"WRITE_OPERATION_FAILURE","errors":[1]}"#);
    assert_eq!(err.path(), "errors[0]");
    assert!(err.to_string().contains("WRITE_OPERATION_FAILURE"), "{err}");
}

#[test]
fn a_data_update_needs_a_diff_object() {
    let err = invalid(r#"{"trigger":"DATA_UPDATE","data":{"event":"DATA_UPDATE"}}"#);
    assert_eq!((err.path(), err.reason()), ("data", "missing field `diff`"));
    let err = invalid(r#"{"event":"DATA_UPDATE","diff":{"new":"x","previous":{}}}"#);
    assert_eq!(err.path(), "diff.new");
    let err = invalid(r#"{"event":"DATA_NEW","payload":[1,2]}"#);
    assert_eq!(err.path(), "payload");
}

#[test]
fn fractional_or_negative_counts_are_refused() {
    for count in ["49.5", "-1", "true"] {
        let err = invalid(&format!(
            r#"{{"event":"SYNC_COMPLETE","failed_job_count":{count}}}"#
        ));
        assert_eq!(err.path(), "failed_job_count", "{count}");
    }
}

#[test]
fn a_diff_side_that_is_null_or_absent_is_empty() {
    let event = WebhookEvent::from_slice(
        br#"{"event":"DATA_UPDATE","diff":{"new":{"a":1},"previous":null}}"#,
    )
    .unwrap();
    let diff = data_update(event).diff;
    assert!(diff.previous.is_empty());
    assert_eq!(
        diff.change_as::<i32>("a").unwrap().unwrap().previous,
        Field::Absent
    );
}

#[test]
fn a_repeated_key_in_a_record_is_refused_as_ambiguous() {
    let err = invalid(r#"{"event":"DATA_NEW","payload":{"status":"A","status":"B"}}"#);
    assert_eq!(err.path(), "payload");
    assert!(err.reason().contains("more than once"), "{err}");
}

#[test]
fn non_objects_and_non_json_are_invalid_events() {
    for body in [
        "",
        "null",
        "[]",
        "[{\"event\":\"JOB_FAILURE\"}]",
        "\"JOB_FAILURE\"",
        "42",
        "{",
        "{\"event\":",
    ] {
        invalid(body);
    }
    assert!(matches!(
        WebhookEvent::from_slice(b"{\"event\":\"JOB_FAILURE\",\"vendor\":\"\xff\"}"),
        Err(Error::InvalidEvent(_))
    ));
    let err = invalid(r#"{"trigger":"JOB_FAILURE","data":"JOB_ID_002"}"#);
    assert_eq!(err.path(), "data");
}

#[test]
fn a_body_that_names_no_trigger_is_missing_its_trigger() {
    for body in [
        "{}",
        r#"{"meta":{"object":"leases"},"record_id":"x"}"#,
        r#"{"data":{"object":"leases"}}"#,
    ] {
        assert!(
            matches!(
                WebhookEvent::from_slice(body.as_bytes()),
                Err(Error::MissingTrigger)
            ),
            "{body}"
        );
    }
}

#[test]
fn a_non_string_trigger_is_invalid() {
    assert_eq!(invalid(r#"{"trigger":7,"data":{}}"#).path(), "trigger");
}

// --- names -----------------------------------------------------------------------------------

#[test]
fn event_types_round_trip_their_wire_names() {
    for event_type in EventType::KNOWN {
        let name = event_type.as_str();
        assert_eq!(&name.parse::<EventType>().unwrap(), event_type);
        assert_eq!(event_type.to_string(), name);
        assert_eq!(
            serde_json::to_string(event_type).unwrap(),
            format!("\"{name}\"")
        );
    }
    assert_eq!(EventType::KNOWN.len(), 7);
    let unknown: EventType = serde_json::from_str("\"DATA_DELETE\"").unwrap();
    assert_eq!(unknown, EventType::Unknown(raw("DATA_DELETE")));
    assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"DATA_DELETE\"");
}

#[test]
fn vendors_round_trip_their_wire_names() {
    for vendor in Vendor::KNOWN {
        assert_eq!(&Vendor::parse(vendor.as_str()), vendor);
        let json = serde_json::to_string(vendor).unwrap();
        assert_eq!(&serde_json::from_str::<Vendor>(&json).unwrap(), vendor);
    }
    let documented = "APPFOLIO BUILDIUM ELISEAI ENTRATA FUNNEL KNOCK MRI PROPERTYWARE PROPERTYWARE_REST \
                      REALPAGE REALPAGE_RPX RENTCAFE RENTMANAGER RENTVINE RESMAN YARDI YARDI_REST \
                      INTERNAL SAMPLE1 SAMPLE2 SAMPLE3";
    for name in documented.split_whitespace() {
        assert!(!Vendor::parse(name).is_unknown(), "{name}");
    }
    assert_eq!(
        Vendor::parse("yardi"),
        Vendor::Unknown(raw("yardi")),
        "wire names are exact"
    );
}

// --- never a panic ---------------------------------------------------------------------------

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-zA-Z_\\-]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just(raw("diff")),
                    Just(raw("payload")),
                    Just(raw("new")),
                    Just(raw("previous")),
                    Just(raw("data")),
                    Just(raw("meta")),
                    Just(raw("object")),
                    Just(raw("vendor")),
                    Just(raw("errors")),
                    Just(raw("successful_job_count")),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn trigger_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(EventType::KNOWN.to_vec()).prop_map(|t| t.as_str().to_owned()),
        "[A-Z_]{0,20}",
    ]
}

proptest! {
    #[test]
    fn any_object_with_a_trigger_parses_or_errors_without_panicking(
        trigger in trigger_name(),
        key in prop::sample::select(vec!["trigger", "event"]),
        envelope in any::<bool>(),
        fields in prop::collection::btree_map("[a-z_]{1,20}", json_value(), 0..8),
        data in json_value(),
    ) {
        let mut object: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
        object.insert(key.to_owned(), serde_json::Value::from(trigger.clone()));
        if envelope {
            object.insert("data".to_owned(), data);
        }
        let body = serde_json::to_vec(&object).unwrap();
        match WebhookEvent::from_slice(&body) {
            Ok(event) => {
                let again = WebhookEvent::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
                prop_assert_eq!(again, event);
            }
            Err(Error::InvalidEvent(err)) => {
                prop_assert!(!EventType::parse(&trigger).is_unknown() || err.path() != "");
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = WebhookEvent::from_slice(&body);
    }
}

// --- typed records through the event -----------------------------------------------------------

#[test]
fn a_lease_going_from_pending_to_active_reads_in_one_line() {
    use propexo_webhooks::records::{Lease, LeaseStatus};

    let update = data_update(parse("data_update.envelope.json"));
    // With the typed lease diff:
    let (previous, new) = (
        update.diff.previous_as::<Lease>().unwrap(),
        update.diff.new_as::<Lease>().unwrap(),
    );
    assert!(
        previous.status_normalized == Some(Some(LeaseStatus::Pending))
            && new.status_normalized == Some(Some(LeaseStatus::Active))
    );
    // Or by field, with the status enum:
    assert!(update.diff.changed_from_to(
        "status_normalized",
        &LeaseStatus::Pending,
        &LeaseStatus::Active
    ));
    assert_eq!(new.unit_id, Some(None), "cleared");
    assert_eq!(new.rent_amount_in_cents, None, "not in the diff");
}

#[test]
fn typed_accessors_refuse_a_record_of_another_object() {
    use propexo_webhooks::records::{Lease, Resident};

    let update = data_update(parse("data_update.data_only.json"));
    assert!(matches!(
        update.diff.new_as::<Lease>(),
        Err(Error::ObjectMismatch {
            expected: ObjectType::Leases,
            found: Some(ObjectType::Residents)
        })
    ));
    let resident: Resident = update.diff.new_as().unwrap();
    assert_eq!(resident.first_name, Some(Some(raw("Mary"))));

    let event = parse("data_new.envelope.json");
    let lease: Lease = event.payload_as().unwrap().unwrap();
    assert_eq!(lease.rent_amount_in_cents, Some(Some(185_000.0)));
    assert!(matches!(
        event.payload_as::<Resident>(),
        Err(Error::ObjectMismatch { .. })
    ));
    assert!(
        parse("job_failure.flat.json")
            .payload_as::<Lease>()
            .unwrap()
            .is_none()
    );

    let unknown = data_update(parse("unknown_object.json"));
    let error = unknown.diff.new_as::<Lease>().unwrap_err();
    assert!(error.to_string().contains("tour-bookings"), "{error}");

    let simplified = data_new(parse("data_new.simplified.json"));
    let resident: Resident = simplified.payload_as().unwrap();
    assert_eq!(resident.email_1, Some(None), "the object came from meta");
}

#[test]
fn a_mistyped_record_field_is_reported_by_its_path() {
    use propexo_webhooks::records::Lease;

    let text = String::from_utf8(fixture("data_new.flat.json")).unwrap();
    let event = WebhookEvent::from_slice(text.replace("185000", r#""a lot""#).as_bytes()).unwrap();
    let Err(Error::InvalidRecord(error)) = event.payload_as::<Lease>() else {
        panic!("expected InvalidRecord");
    };
    assert_eq!(error.path(), "payload.rent_amount_in_cents");
    assert!(!error.to_string().contains("a lot"));
}
