//! Read access to the OpenAPI document: lookups, `$ref` resolution, and clear errors.

use serde_norway::{Mapping, Value};

/// A failure of the generator, with a message for the developer who runs it.
pub(crate) type Result<T> = std::result::Result<T, String>;

/// The parsed OpenAPI document.
pub(crate) struct Spec {
    root: Value,
}

impl Spec {
    /// Parses the YAML text of an OpenAPI document.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let root: Value =
            serde_norway::from_str(text).map_err(|err| format!("the spec is not YAML: {err}"))?;
        Ok(Self { root })
    }

    /// The value at a `/`-separated path of mapping keys from the root (JSON-pointer style
    /// without escapes; keys holding `/` cannot be reached this way).
    pub(crate) fn at(&self, path: &str) -> Option<&Value> {
        path.split('/')
            .filter(|key| !key.is_empty())
            .try_fold(&self.root, |value, key| value.get(key))
    }

    /// `components/schemas`.
    pub(crate) fn schemas(&self) -> Result<&Mapping> {
        self.at("components/schemas")
            .and_then(Value::as_mapping)
            .ok_or_else(|| "the spec has no components/schemas".to_owned())
    }

    /// `paths`.
    pub(crate) fn paths(&self) -> Result<&Mapping> {
        self.at("paths")
            .and_then(Value::as_mapping)
            .ok_or_else(|| "the spec has no paths".to_owned())
    }

    /// The schema a `$ref` points to, following chains of references.
    pub(crate) fn resolve<'a>(&'a self, mut schema: &'a Value) -> Result<&'a Value> {
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return Ok(schema);
            };
            let name = ref_name(reference)?;
            schema = self
                .schemas()?
                .get(name)
                .ok_or_else(|| format!("dangling reference {reference}"))?;
        }
        Err("a chain of more than 32 references".to_owned())
    }
}

/// The component name of a `#/components/schemas/<name>` reference.
pub(crate) fn ref_name(reference: &str) -> Result<&str> {
    reference
        .strip_prefix("#/components/schemas/")
        .ok_or_else(|| format!("unsupported reference {reference}"))
}

/// The keys and values of a mapping whose keys are strings, in document order.
pub(crate) fn entries(mapping: &Mapping) -> impl Iterator<Item = (&str, &Value)> {
    mapping
        .iter()
        .filter_map(|(key, value)| Some((key.as_str()?, value)))
}

/// `schema.properties`, in document order (empty when there is none).
pub(crate) fn properties(schema: &Value) -> Vec<(&str, &Value)> {
    schema
        .get("properties")
        .and_then(Value::as_mapping)
        .map(|mapping| entries(mapping).collect())
        .unwrap_or_default()
}

/// The `type` of a schema as a list (`type: string` and `type: [string, "null"]` alike).
pub(crate) fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Sequence(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The model a schema is derived from, as Propexo's `x-propexo.derivedFromModel` annotation
/// says (only for whole records, not for a single derived field).
pub(crate) fn derived_from_model(schema: &Value) -> Option<&str> {
    let annotation = schema.get("x-propexo")?;
    if annotation.get("derivedFromField").is_some() {
        return None;
    }
    annotation.get("derivedFromModel")?.as_str()
}
