//! `ObjectType` through the public API: spellings, serde, read paths, and coverage of the
//! object names Propexo has used in webhook payloads.

use std::collections::HashSet;

use propexo_webhooks::ObjectType;

/// The `object` enum of the 2024 webhook schema, the last that described payloads.
const OBJECTS_2024: [&str; 25] = [
    "amenities",
    "applicants",
    "applicants-to-applications",
    "applicants-to-events",
    "applications",
    "construction-jobs",
    "employees",
    "events",
    "invoices",
    "leads",
    "leads-to-events",
    "leases",
    "listings",
    "locations",
    "properties",
    "resident-charges",
    "resident-payments",
    "residents",
    "residents-to-events",
    "residents-to-leases",
    "screenings",
    "service-request-vendors",
    "service-requests",
    "timezones",
    "units",
];

#[test]
fn there_is_one_known_variant_per_model_of_the_subscription_api() {
    assert_eq!(ObjectType::all().len(), 112);
    let distinct: HashSet<&ObjectType> = ObjectType::all().iter().collect();
    assert_eq!(distinct.len(), 112);
    assert!(ObjectType::all().iter().all(ObjectType::is_known));
}

#[test]
fn every_object_of_the_2024_webhook_schema_is_known() {
    for name in OBJECTS_2024 {
        let object = ObjectType::parse(name);
        assert!(object.is_known(), "{name}");
        assert_eq!(object.as_str(), name);
    }
}

#[test]
fn every_known_value_round_trips_in_both_spellings() {
    for object in ObjectType::all() {
        let kebab = object.as_str();
        let snake = object.subscription_model();
        assert!(!kebab.contains('_'), "{kebab}");
        assert!(!snake.contains('-'), "{snake}");
        assert_eq!(kebab.replace('-', "_"), snake);

        assert_eq!(&ObjectType::parse(kebab), object);
        assert_eq!(ObjectType::parse(kebab).as_str(), kebab);
        assert_eq!(&ObjectType::parse(&snake), object);
        assert_eq!(ObjectType::parse(&snake).subscription_model(), snake);
        assert_eq!(&kebab.parse::<ObjectType>().unwrap(), object);
        assert_eq!(object.to_string(), kebab);
    }
}

#[test]
fn both_spellings_give_the_same_variant() {
    assert_eq!(
        ObjectType::parse("residents-to-leases"),
        ObjectType::ResidentsToLeases
    );
    assert_eq!(
        ObjectType::parse("residents_to_leases"),
        ObjectType::ResidentsToLeases
    );
    assert_eq!(
        ObjectType::ResidentsToLeases.subscription_model(),
        "residents_to_leases"
    );
    assert_eq!(
        ObjectType::ResidentsToLeases.as_str(),
        "residents-to-leases"
    );
}

#[test]
fn an_unknown_value_is_kept_as_received() {
    for name in ["parking-spaces", "parking_spaces", "Leases", " leases", ""] {
        let object = ObjectType::parse(name);
        assert_eq!(object, ObjectType::Unknown(name.to_owned()));
        assert!(!object.is_known());
        assert_eq!(object.as_str(), name);
        assert_eq!(object.to_string(), name);
        assert_eq!(object.subscription_model(), name.replace('-', "_"));
        assert_eq!(object.record_path("abc"), None);

        let json = serde_json::to_string(&object).unwrap();
        assert_eq!(json, serde_json::to_string(name).unwrap());
        assert_eq!(serde_json::from_str::<ObjectType>(&json).unwrap(), object);
    }
}

#[test]
fn serde_uses_the_kebab_name_and_reads_either_spelling() {
    let json = serde_json::to_string(&ObjectType::all()).unwrap();
    let back: Vec<ObjectType> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ObjectType::all());

    assert_eq!(
        serde_json::to_string(&ObjectType::ResidentsToLeases).unwrap(),
        r#""residents-to-leases""#
    );
    assert_eq!(
        serde_json::from_str::<ObjectType>(r#""residents_to_leases""#).unwrap(),
        ObjectType::ResidentsToLeases
    );
    // An escaped string cannot be borrowed from the input.
    assert_eq!(
        serde_json::from_str::<ObjectType>(r#""leas\u0065s""#).unwrap(),
        ObjectType::Leases
    );
    assert!(serde_json::from_str::<ObjectType>("42").is_err());
}

#[test]
fn serde_works_from_owned_strings() {
    // `from_reader` and `from_value` hand out owned strings, never borrowed ones.
    let object: ObjectType = serde_json::from_reader(&br#""leases""#[..]).unwrap();
    assert_eq!(object, ObjectType::Leases);
    let object: ObjectType = serde_json::from_reader(&br#""parking-spaces""#[..]).unwrap();
    assert_eq!(object, ObjectType::Unknown("parking-spaces".to_owned()));
    let object: ObjectType = serde_json::from_value(serde_json::json!("unit_details")).unwrap();
    assert_eq!(object, ObjectType::UnitDetails);
}

#[test]
fn record_paths_follow_the_spec() {
    let leases = ObjectType::Leases.record_path("abc");
    assert_eq!(leases.as_deref(), Some("/v1/leases/abc"));
    let residents = ObjectType::Residents.record_path("abc");
    assert_eq!(residents.as_deref(), Some("/v1/residents/abc"));
    // Read under another resource's path, as the spec's annotations say.
    let cases = [
        (ObjectType::UnitDetails, "/v1/units/details/abc"),
        (ObjectType::ServiceRequestVendors, "/v1/vendors/abc"),
        (
            ObjectType::ServiceRequestNotes,
            "/v1/service-request-history/abc",
        ),
        (ObjectType::EntrataUnitTypes, "/v1/unit-types/abc"),
        (
            ObjectType::RentvineApplicationTemplates,
            "/v1/application-templates/abc",
        ),
    ];
    for (object, path) in cases {
        assert_eq!(object.record_path("abc").as_deref(), Some(path), "{object}");
    }
    // No single-record read endpoint.
    for object in [
        ObjectType::ResidentsToLeases,
        ObjectType::Timezones,
        ObjectType::CrmAgents,
    ] {
        assert_eq!(object.record_path("abc"), None, "{object}");
    }
    let with_path = ObjectType::all()
        .iter()
        .filter(|object| object.record_path("abc").is_some())
        .count();
    assert_eq!(with_path, 51);
}

#[test]
fn hostile_ids_stay_in_their_path_segment() {
    let path = ObjectType::Leases
        .record_path("../admin/users?x=1#y z")
        .unwrap();
    assert_eq!(path, "/v1/leases/..%2Fadmin%2Fusers%3Fx%3D1%23y%20z");
    assert_eq!(ObjectType::Leases.record_path(".."), None);
    assert_eq!(ObjectType::Leases.record_path(""), None);
}

#[test]
fn parsing_a_known_name_allocates_nothing() {
    let names: Vec<String> = ObjectType::all()
        .iter()
        .flat_map(|object| {
            [
                object.as_str().to_owned(),
                object.subscription_model().into_owned(),
            ]
        })
        .collect();
    let counted = allocation_counter::measure(|| {
        for name in &names {
            let object = ObjectType::parse(name);
            assert!(object.is_known());
            std::hint::black_box(object.subscription_model());
        }
    })
    .count_total;
    assert_eq!(counted, 0);
}
