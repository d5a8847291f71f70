//! The object types: the subscription API's model list and each model's single-record read
//! endpoint.
//!
//! Which endpoint reads which model is taken from the spec, in this order:
//!
//! 1. the `x-propexo.derivedFromModel` annotation on the endpoint's `results` schema (this is how
//!    `/v1/vendors/{vendor_id}` reads `service_request_vendors`, `/v1/units/details/{id}` reads
//!    `unit_details` and `/v1/service-request-history/{id}` reads `service_request_notes`);
//! 2. otherwise the path itself, when it is `/v1/<kebab-case model>/{param}`.
//!
//! An endpoint that matches neither stops the generator: a new spec needs a decision, which
//! goes into [`UNMAPPED_READ_PATHS`] below.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::naming::{human, pascal};
use crate::spec::{Result, Spec, derived_from_model, entries, types};

/// Where the subscription API lists the models a webhook can subscribe to.
const MODEL_ENUM: &str = "components/schemas/_v1_webhooks__post_input/properties/model/enum";

/// Single-record `GET` endpoints that read no subscribable model (the generator skips them).
/// Empty for the current spec: every such endpoint maps to a model by rule 1 or 2.
const UNMAPPED_READ_PATHS: &[&str] = &[];

/// Path prefixes that are not record reads (account administration, webhook configuration).
const NOT_RECORD_PATHS: &[&str] = &["/v1/admin/", "/v1/webhooks/"];

/// One object type.
pub(crate) struct ObjectModel {
    /// The subscription model id, snake_case: `residents_to_leases`.
    pub(crate) snake: String,
    /// The payload form, kebab-case: `residents-to-leases`.
    pub(crate) kebab: String,
    /// The Rust variant: `ResidentsToLeases`.
    pub(crate) variant: String,
    /// Prose name: `Residents to leases`.
    pub(crate) human: String,
    /// The single-record read endpoint, if Propexo has one.
    pub(crate) read_path: Option<ReadPath>,
}

/// A single-record read endpoint such as `/v1/leases/{lease_id}`.
pub(crate) struct ReadPath {
    /// The path as the spec writes it: `/v1/leases/{lease_id}`.
    pub(crate) template: String,
    /// The path before the id: `/v1/leases/`.
    pub(crate) prefix: String,
}

/// Reads the model list and the read endpoints.
pub(crate) fn object_models(spec: &Spec) -> Result<Vec<ObjectModel>> {
    let ids: Vec<&str> = spec
        .at(MODEL_ENUM)
        .and_then(Value::as_sequence)
        .ok_or_else(|| format!("the spec has no {MODEL_ENUM}"))?
        .iter()
        .map(|id| {
            id.as_str()
                .ok_or_else(|| "a model id is not a string".to_owned())
        })
        .collect::<Result<_>>()?;
    let mut read_paths = read_paths(spec, &ids)?;
    let mut seen = BTreeMap::new();
    ids.iter()
        .map(|&id| {
            let valid = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(format!("model id {id:?} is not snake_case"));
            }
            let variant = pascal(id);
            if variant == "Unknown" {
                return Err("a model id would become the Unknown variant".to_owned());
            }
            if let Some(other) = seen.insert(variant.clone(), id) {
                return Err(format!("models {other} and {id} both become {variant}"));
            }
            Ok(ObjectModel {
                snake: id.to_owned(),
                kebab: id.replace('_', "-"),
                variant,
                human: human(id),
                read_path: read_paths.remove(id),
            })
        })
        .collect()
}

/// The single-record read endpoint of each model that has one.
fn read_paths(spec: &Spec, ids: &[&str]) -> Result<BTreeMap<String, ReadPath>> {
    let mut found: BTreeMap<String, ReadPath> = BTreeMap::new();
    for (path, item) in entries(spec.paths()?) {
        if NOT_RECORD_PATHS
            .iter()
            .any(|prefix| path.starts_with(prefix))
            || UNMAPPED_READ_PATHS.contains(&path)
        {
            continue;
        }
        let Some(get) = item.get("get") else { continue };
        let Some((prefix, _param)) = split_single_record_path(path) else {
            continue;
        };
        let Some(results) = get_results(spec, get)? else {
            continue;
        };
        if !types(results).contains(&"object") {
            continue; // a list, e.g. `/v1/vendors/properties/{property_id}`
        }
        let by_path = prefix
            .strip_prefix("/v1/")
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|segment| !segment.contains('/'))
            .map(|segment| segment.replace('-', "_"));
        let model = match derived_from_model(results) {
            Some(model) => model.to_owned(),
            None => by_path
                .filter(|model| ids.contains(&model.as_str()))
                .ok_or_else(|| {
                    format!(
                        "GET {path} reads one record but names no model: add it to \
                         UNMAPPED_READ_PATHS or teach the generator which model it reads"
                    )
                })?,
        };
        if !ids.contains(&model.as_str()) {
            return Err(format!("GET {path} reads {model}, which is not a model id"));
        }
        let read = ReadPath {
            template: path.to_owned(),
            prefix: prefix.to_owned(),
        };
        if let Some(other) = found.insert(model.clone(), read) {
            return Err(format!(
                "model {model} is read by both {} and {path}",
                other.template
            ));
        }
    }
    Ok(found)
}

/// `/v1/units/details/{unit_detail_id}` → (`/v1/units/details/`, `unit_detail_id`); `None`
/// unless the path ends with its only parameter and has no trailing slash.
fn split_single_record_path(path: &str) -> Option<(&str, &str)> {
    let open = path.find('{')?;
    let (prefix, rest) = path.split_at(open);
    let param = rest.strip_prefix('{')?.strip_suffix('}')?;
    let literal = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'/')
    };
    (prefix.starts_with("/v1/") && literal(prefix) && !param.contains(['{', '}', '/']))
        .then_some((prefix, param))
}

/// The `results` schema of a `GET` operation's JSON 200 response.
fn get_results<'a>(spec: &'a Spec, get: &'a Value) -> Result<Option<&'a Value>> {
    let Some(schema) = get
        .get("responses")
        .and_then(|r| r.get("200"))
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
    else {
        return Ok(None);
    };
    let output = spec.resolve(schema)?;
    match output.get("properties").and_then(|p| p.get("results")) {
        Some(results) => spec.resolve(results).map(Some),
        None => Ok(None),
    }
}

/// Writes `src/object_type/generated.rs`.
pub(crate) fn render(models: &[ObjectModel], records: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    out.push_str(crate::HEADER);
    out.push_str(
        "\n//! The object types of Propexo's subscription API, their spellings, read endpoints and\n\
         //! record types.\n\n\
         \
         define_object_type! {\n",
    );
    for model in models {
        let mut doc = format!(
            "{} (`{}`, model `{}`)",
            model.human, model.kebab, model.snake
        );
        if let Some(record) = records.get(&model.snake) {
            doc.push_str(&format!(
                "; its records are [`{record}`](crate::records::{record})"
            ));
        }
        if let Some(read) = &model.read_path {
            doc.push_str(&format!(", read one at `GET {}`", read.template));
        }
        out.push_str(&format!("    /// {doc}.\n    {},\n", model.variant));
    }
    out.push_str("}\n\nimpl ObjectType {\n");

    out.push_str(
        "/// Every known object type, in the order of the spec's model list.\n\
         pub(super) const KNOWN: &'static [ObjectType] = &[\n",
    );
    for model in models {
        out.push_str(&format!("ObjectType::{},\n", model.variant));
    }
    out.push_str("];\n\n");

    let arms = |f: &dyn Fn(&ObjectModel) -> Option<String>| -> String {
        let mut arms = String::new();
        for model in models {
            if let Some(value) = f(model) {
                arms.push_str(&format!("Self::{} => {value},\n", model.variant));
            }
        }
        arms
    };

    out.push_str(&format!(
        "/// The kebab-case (payload) form of a known object type.\n\
         pub(super) const fn known_kebab(&self) -> Option<&'static str> {{\n\
         Some(match self {{\n{}Self::Unknown(_) => return None,\n}})\n}}\n\n",
        arms(&|m| Some(format!("{:?}", m.kebab)))
    ));
    out.push_str(&format!(
        "/// The snake_case (subscription model) form of a known object type.\n\
         pub(super) const fn known_snake(&self) -> Option<&'static str> {{\n\
         Some(match self {{\n{}Self::Unknown(_) => return None,\n}})\n}}\n\n",
        arms(&|m| Some(format!("{:?}", m.snake)))
    ));

    let mut parse_arms = String::new();
    for model in models {
        let pattern = if model.kebab == model.snake {
            format!("{:?}", model.kebab)
        } else {
            format!("{:?} | {:?}", model.kebab, model.snake)
        };
        parse_arms.push_str(&format!("{pattern} => Self::{},\n", model.variant));
    }
    out.push_str(&format!(
        "/// The known object type spelled `name`, in kebab-case or snake_case.\n\
         pub(super) fn from_known(name: &str) -> Option<Self> {{\n\
         Some(match name {{\n{parse_arms}_ => return None,\n}})\n}}\n\n"
    ));

    out.push_str(&format!(
        "/// The path of the single-record read endpoint, up to the id.\n\
         pub(super) const fn record_path_prefix(&self) -> Option<&'static str> {{\n\
         match self {{\n{}_ => None,\n}}\n}}\n",
        arms(&|m| m
            .read_path
            .as_ref()
            .map(|r| format!("Some({:?})", r.prefix)))
    ));

    if !records.is_empty() {
        out.push_str(&format!(
            "\n/// The name of the record type of this object type.\n\
             pub(super) const fn known_record_type_name(&self) -> Option<&'static str> {{\n\
             match self {{\n{}_ => None,\n}}\n}}\n",
            arms(&|m| records.get(&m.snake).map(|name| format!("Some({name:?})")))
        ));
    }
    out.push_str("}\n");
    out
}
