//! `inspect`: what a body is, in the library's terms.

use propexo_webhooks::{
    AnyRecord, DeliveryKey, EventType, Field, JsonObject, ObjectType, RawJson, WebhookEvent,
};
use serde_json::{Map, Value, json};

use crate::cli::InspectArgs;
use crate::input;
use crate::output::{Failure, json_line, outln};

pub(crate) fn run(args: &InspectArgs) -> Result<(), Failure> {
    let body = input::body(&args.body)?;
    let report = inspect(&body);
    if args.json {
        json_line(&report);
    } else {
        print_report(&report);
    }
    if report.get("error").is_some() {
        return Err(Failure::failed(""));
    }
    Ok(())
}

/// Which of Propexo's documented shapes the body has, read from its top-level keys.
pub(crate) fn shape(value: &Value) -> &'static str {
    let Some(object) = value.as_object() else {
        return "not a JSON object";
    };
    if object.get("data").is_some_and(Value::is_object) {
        if object.contains_key("trigger") {
            "envelope"
        } else {
            "envelope without trigger"
        }
    } else if object.contains_key("event") || object.contains_key("trigger") {
        "flat"
    } else {
        "simplified"
    }
}

/// Everything `inspect` says about `body`, as one JSON object.
pub(crate) fn inspect(body: &[u8]) -> Value {
    let key = DeliveryKey::from_body(body).to_string();
    let mut report = Map::new();
    report.insert("delivery_key".into(), json!(key));
    report.insert("bytes".into(), json!(body.len()));
    let shape = serde_json::from_slice::<Value>(body).map_or("not JSON", |value| shape(&value));
    report.insert("shape".into(), json!(shape));
    let event = match WebhookEvent::from_slice(body) {
        Ok(event) => event,
        Err(error) => {
            report.insert("error".into(), json!(error.to_string()));
            return Value::Object(report);
        }
    };
    let trigger = event.event_type();
    report.insert("trigger".into(), json!(trigger.as_str()));
    report.insert(
        "object".into(),
        json!(event.object().map(ObjectType::as_str)),
    );
    report.insert("record_id".into(), json!(event.record_id()));
    report.insert("integration_id".into(), json!(event.integration_id()));
    report.insert(
        "vendor".into(),
        json!(event.vendor().map(|vendor| vendor.as_str())),
    );
    report.insert("job_id".into(), json!(event.job_id()));
    report.insert("root_job_id".into(), json!(event.root_job_id()));
    if let (Some(object), Some(id)) = (event.object(), event.record_id()) {
        report.insert("record_path".into(), json!(object.record_path(id)));
    }

    let mut unknown = Vec::new();
    if let EventType::Unknown(name) = &trigger {
        unknown.push(json!({"field": "trigger", "value": name}));
    }
    if let Some(object) = event.object().filter(|object| !object.is_known()) {
        unknown.push(json!({"field": "object", "value": object.as_str()}));
    }
    if let Some(vendor) = event.vendor().filter(|vendor| vendor.is_unknown()) {
        unknown.push(json!({"field": "vendor", "value": vendor.as_str()}));
    }
    match &event {
        WebhookEvent::DataUpdate(update) => {
            let keys: Vec<&str> = update.diff.changed_fields().collect();
            let changes: Vec<Value> = keys
                .iter()
                .filter_map(|key| {
                    let change = update.diff.change(key)?;
                    Some(json!({
                        "field": key,
                        "previous": field_json(&change.previous),
                        "new": field_json(&change.new),
                    }))
                })
                .collect();
            report.insert("diff".into(), json!(changes));
            if let Some(object) = event.object() {
                record_check(&mut report, object, "diff.new", &update.diff.new);
                record_check(&mut report, object, "diff.previous", &update.diff.previous);
            }
        }
        WebhookEvent::DataNew(new) => {
            let nulls: Vec<&str> = new
                .payload
                .iter()
                .filter(|(_, value)| value.as_str() == "null")
                .map(|(key, _)| key)
                .collect();
            report.insert(
                "payload".into(),
                json!({"keys": new.payload.len(), "null_keys": nulls}),
            );
            if let Some(object) = event.object() {
                record_check(&mut report, object, "payload", &new.payload);
            }
        }
        WebhookEvent::WriteOperationFailure(write) => {
            if let Some(status) = write.write_status.as_ref().filter(|s| s.is_unknown()) {
                unknown.push(json!({"field": "write_status", "value": status.as_str()}));
            }
            report.insert("errors".into(), json!(write.errors));
        }
        WebhookEvent::SyncComplete(sync) | WebhookEvent::FirstSyncComplete(sync) => {
            for model in sync.models_synced.iter().flatten() {
                if !model.is_known() {
                    unknown.push(json!({"field": "models_synced", "value": model.as_str()}));
                }
            }
            report.insert(
                "successful_job_count".into(),
                json!(sync.successful_job_count),
            );
            report.insert("failed_job_count".into(), json!(sync.failed_job_count));
        }
        _ => {}
    }
    report.insert("unknown_values".into(), json!(unknown));
    Value::Object(report)
}

/// A field of a diff side: `absent` and `null` told apart.
fn field_json(field: &Field<RawJson<'_>>) -> Value {
    match field {
        Field::Absent => json!({"absent": true}),
        Field::Null => Value::Null,
        Field::Value(raw) => raw.to_value().unwrap_or(Value::Null),
    }
}

/// Whether the record fields parse as the object's record type.
fn record_check(
    report: &mut Map<String, Value>,
    object: &ObjectType,
    what: &str,
    fields: &JsonObject,
) {
    if let Err(error) = AnyRecord::parse(object, fields.as_str())
        && let Value::Array(problems) = report.entry("record_errors").or_insert_with(|| json!([]))
    {
        problems.push(json!(format!("{what}: {error}")));
    }
}

fn print_report(report: &Value) {
    let text = |key: &str| match report.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    };
    outln!("shape         {}", text("shape"));
    if let Some(error) = report.get("error").and_then(Value::as_str) {
        outln!("error         {error}");
        outln!("delivery key  {}", text("delivery_key"));
        return;
    }
    for (label, key) in [
        ("trigger", "trigger"),
        ("object", "object"),
        ("record id", "record_id"),
        ("integration", "integration_id"),
        ("vendor", "vendor"),
        ("job id", "job_id"),
        ("root job id", "root_job_id"),
        ("record path", "record_path"),
        ("delivery key", "delivery_key"),
    ] {
        outln!("{label:<13} {}", text(key));
    }
    if let Some(Value::Array(changes)) = report.get("diff") {
        outln!("diff          {} changed field(s)", changes.len());
        for change in changes {
            let side = |side: &str| match change.get(side) {
                Some(Value::Object(map)) if map.contains_key("absent") => "(absent)".to_owned(),
                Some(value) => value.to_string(),
                None => "(absent)".to_owned(),
            };
            outln!(
                "  {:<30} {} -> {}",
                change.get("field").and_then(Value::as_str).unwrap_or("?"),
                side("previous"),
                side("new")
            );
        }
    }
    if let Some(payload) = report.get("payload") {
        outln!(
            "payload       {} key(s), null: {}",
            payload["keys"],
            payload["null_keys"]
        );
    }
    if let Some(Value::Array(errors)) = report.get("errors") {
        for error in errors {
            outln!("write error   {error}");
        }
    }
    match report.get("unknown_values") {
        Some(Value::Array(unknown)) if !unknown.is_empty() => {
            for value in unknown {
                outln!(
                    "unknown       {} = {}",
                    value["field"].as_str().unwrap_or("?"),
                    value["value"]
                );
            }
        }
        _ => outln!("unknown       none"),
    }
    if let Some(Value::Array(errors)) = report.get("record_errors") {
        for error in errors {
            outln!("record error  {}", error.as_str().unwrap_or("?"));
        }
    }
}
