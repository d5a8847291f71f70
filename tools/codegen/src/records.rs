//! The record models: which schema describes each object type, and the Rust types for it.
//!
//! # Which schema is a model's record
//!
//! For each model of the subscription API, the first of these that exists:
//!
//! 1. the `results` of its single-record read endpoint (`GET /v1/leases/{lease_id}`);
//! 2. the `results` items of a list endpoint for it (`GET /v1/timezones/`, or any list whose
//!    items carry its `x-propexo.derivedFromModel` annotation, like `/v1/listings/pricing`);
//! 3. a named component annotated with it (`components/schemas/Contract`);
//! 4. the union of the properties of every nested schema annotated with it, in document order
//!    (`Lease.residents_meta_data` and `Resident.leases_meta_data` together describe
//!    `residents_to_leases`); the first occurrence of a property wins;
//! 5. the payload schema of the same object in the 2024 webhook file
//!    (`spec/webhooks-openapi-2024-09-03.yml`), for an object the current spec no longer
//!    describes (`locations`).
//!
//! A model with none of these gets no record type.
//!
//! # Names
//!
//! A record is named after its model id in the singular, in PascalCase: the last word of each
//! `_to_`-separated part is made singular (`residents_to_leases` → `ResidentToLease`,
//! `service_request_notes` → `ServiceRequestNote`, `properties` → `Property`; `insurance`,
//! `pricing` stay). A nested object is `<Owner><Field>` (`LeaseResidentsMetaData`); an enum
//! is `<Owner><Field>` without a trailing `_normalized` (`LeaseStatus`), keeping it when that
//! name is taken. A referenced component keeps its name, or is the record it is the schema
//! of (`PetTypes` → `PetType`); an anonymous enum component (`Enum1`) is named after the
//! field that uses it (`IntegrationVendor`).

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use crate::docs::{self, link};
use crate::naming::{field_ident, pascal, singular};
use crate::object_types::ObjectModel;
use crate::spec::{Result, Spec, derived_from_model, entries, properties, ref_name, types};

/// A Rust type of a generated field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ty {
    String,
    F64,
    I64,
    Bool,
    /// `Vec<T>`, or `Vec<Option<T>>` when the items are nullable.
    Vec(Box<Ty>, bool),
    /// `serde_json::Map<String, serde_json::Value>`.
    Map,
    /// `serde_json::Value`.
    Json,
    /// A generated struct or enum.
    Named(String, Kind),
}

impl Ty {
    /// The generated type this is, or holds a list of.
    pub(crate) fn named(&self) -> Option<&str> {
        match self {
            Ty::Named(name, _) => Some(name),
            Ty::Vec(item, _) => item.named(),
            _ => None,
        }
    }

    /// The Rust spelling.
    pub(crate) fn rust(&self) -> String {
        match self {
            Ty::String => "String".to_owned(),
            Ty::F64 => "f64".to_owned(),
            Ty::I64 => "i64".to_owned(),
            Ty::Bool => "bool".to_owned(),
            Ty::Vec(item, false) => format!("Vec<{}>", item.rust()),
            Ty::Vec(item, true) => format!("Vec<Option<{}>>", item.rust()),
            Ty::Map => "serde_json::Map<String, serde_json::Value>".to_owned(),
            Ty::Json => "serde_json::Value".to_owned(),
            Ty::Named(name, _) => name.clone(),
        }
    }
}

/// Whether a generated type is a struct or an enum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Struct,
    Enum,
}

/// One field of a generated struct.
pub(crate) struct Field {
    /// The JSON key.
    pub(crate) key: String,
    /// The Rust identifier (`r#type` for `type`).
    pub(crate) ident: String,
    /// Whether serde needs `rename = key`.
    pub(crate) rename: bool,
    pub(crate) ty: Ty,
    /// `type: [X, "null"]`: the field is `Option<Option<X>>`.
    pub(crate) nullable: bool,
    pub(crate) doc: String,
    /// The spec's `example`, if any (used for fixtures when it has the right type).
    pub(crate) example: Option<Value>,
}

pub(crate) struct StructDef {
    pub(crate) name: String,
    pub(crate) doc: String,
    pub(crate) fields: Vec<Field>,
}

pub(crate) struct EnumDef {
    pub(crate) name: String,
    pub(crate) doc: String,
    pub(crate) values: Vec<String>,
}

pub(crate) enum TypeDef {
    Struct(StructDef),
    Enum(EnumDef),
}

impl TypeDef {
    pub(crate) fn name(&self) -> &str {
        match self {
            TypeDef::Struct(def) => &def.name,
            TypeDef::Enum(def) => &def.name,
        }
    }
}

/// The record of one object type, with the types of its fields.
pub(crate) struct RecordDef {
    /// Model id, snake_case: `residents_to_leases` (also the module and fixture name).
    pub(crate) model: String,
    /// Payload form: `residents-to-leases`.
    pub(crate) kebab: String,
    /// The `ObjectType` variant: `ResidentsToLeases`.
    pub(crate) variant: String,
    /// The struct: `ResidentToLease`.
    pub(crate) name: String,
    /// Where the schema came from, for a comment in the generated file.
    pub(crate) source: String,
    /// Whether the schema comes from the 2024 webhook file.
    pub(crate) from_2024: bool,
    /// The record struct first, then the nested structs and enums of its fields.
    pub(crate) types: Vec<TypeDef>,
}

/// Every record, plus the types several records share.
pub(crate) struct Records {
    pub(crate) records: Vec<RecordDef>,
    pub(crate) shared: Vec<TypeDef>,
    /// Models that have no record, and why.
    pub(crate) without: Vec<(String, &'static str)>,
}

/// The properties of an object schema, in document order.
type Props<'a> = Vec<(&'a str, &'a Value)>;

/// The schema chosen for one model.
struct Chosen<'a> {
    props: Props<'a>,
    /// The named component it is, if any (`Lease`).
    component: Option<String>,
    source: String,
    from_2024: bool,
}

/// Builds every record from the current spec, with the 2024 webhook file as the fallback.
pub(crate) fn build(spec: &Spec, webhooks_2024: &Spec, models: &[ObjectModel]) -> Result<Records> {
    let mut chosen: Vec<(&ObjectModel, Chosen<'_>)> = Vec::new();
    let mut without = Vec::new();
    let tiers = Tiers::collect(spec, webhooks_2024, models)?;
    for model in models {
        match tiers.choose(spec, model)? {
            Some(schema) => chosen.push((model, schema)),
            None => without.push((
                model.snake.clone(),
                "no schema in the current spec nor in the 2024 webhook file",
            )),
        }
    }

    let mut builder = Builder {
        spec,
        record_components: BTreeMap::new(),
        shared_components: BTreeMap::new(),
        shared: Vec::new(),
        names: BTreeSet::new(),
        record_props: BTreeMap::new(),
        users: BTreeMap::new(),
    };
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (model, schema) in &chosen {
        let name = record_name(&model.snake);
        if let Some(other) = names.insert(name.clone(), model.snake.clone()) {
            return Err(format!(
                "models {other} and {} both become {name}",
                model.snake
            ));
        }
        builder.claim(&name)?;
        builder
            .record_props
            .insert(model.snake.clone(), (name.clone(), schema.props.clone()));
        if let Some(component) = &schema.component {
            builder
                .record_components
                .insert(component.clone(), name.clone());
        }
    }

    let mut records = Vec::new();
    for (model, schema) in &chosen {
        let name = record_name(&model.snake);
        let noun = record_noun(&name);
        let mut doc = format!("A {noun} record (object `{}`).", model.kebab);
        if let Some(read) = &model.read_path {
            doc.push_str(&format!(" Read in full at `GET {}`.", read.template));
        }
        let mut types = Vec::new();
        let record = builder.build_struct(&name, doc, &noun, &schema.props, &mut types, 0)?;
        types.insert(0, TypeDef::Struct(record));
        records.push(RecordDef {
            model: model.snake.clone(),
            kebab: model.kebab.clone(),
            variant: model.variant.clone(),
            name,
            source: schema.source.clone(),
            from_2024: schema.from_2024,
            types,
        });
    }
    // Now that every user is known, say where each shared type is used.
    for def in &mut builder.shared {
        let users: Vec<&str> = builder
            .users
            .get(def.name())
            .map(|users| users.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let used_by = match users.len() {
            0 => String::new(),
            1..=3 => format!(" Used by {}.", users.join(", ")),
            n => format!(" Used by {n} fields across the records."),
        };
        match def {
            TypeDef::Struct(def) => def.doc.push_str(&used_by),
            TypeDef::Enum(def) => def.doc.push_str(&used_by),
        }
    }
    Ok(Records {
        records,
        shared: builder.shared,
        without,
    })
}

/// `residents_to_leases` → `ResidentToLease`; see the module docs.
pub(crate) fn record_name(model: &str) -> String {
    model
        .split("_to_")
        .map(|part| {
            let mut words: Vec<&str> = part.split('_').collect();
            let last = words.pop().map(singular).unwrap_or_default();
            let mut name = pascal(&words.join("_"));
            name.push_str(&pascal(&last));
            name
        })
        .collect::<Vec<_>>()
        .join("To")
}

/// `ResidentToLease` → `resident-to-lease link`; `ServiceRequest` → `service request`.
fn record_noun(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for ch in name.chars() {
        if ch.is_ascii_uppercase() || words.is_empty() {
            words.push(String::new());
        }
        if let Some(word) = words.last_mut() {
            word.push(ch.to_ascii_lowercase());
        }
    }
    let text = docs::words(&words.join("_"));
    if words.iter().any(|w| w == "to") {
        format!("{} link", text.replace(' ', "-"))
    } else {
        text
    }
}

/// Candidate schemas of every model, by tier (see the module docs).
struct Tiers<'a> {
    lists: BTreeMap<String, (String, &'a Value)>,
    components: BTreeMap<String, String>,
    nested: BTreeMap<String, Vec<(String, &'a Value)>>,
    payloads_2024: BTreeMap<String, &'a Value>,
}

impl<'a> Tiers<'a> {
    fn collect(spec: &'a Spec, webhooks_2024: &'a Spec, models: &[ObjectModel]) -> Result<Self> {
        let is_model = |id: &str| models.iter().any(|m| m.snake == id);
        let mut lists = BTreeMap::new();
        for (path, item) in entries(spec.paths()?) {
            let Some(get) = item.get("get") else { continue };
            let Some(raw) = raw_results(spec, get)? else {
                continue;
            };
            let results = spec.resolve(raw)?;
            if !types(results).contains(&"array") {
                continue;
            }
            let Some(items) = results.get("items") else {
                continue;
            };
            let items = spec.resolve(items)?;
            let by_path = path
                .strip_prefix("/v1/")
                .map(|rest| rest.trim_end_matches('/'))
                .filter(|segment| !segment.contains(['/', '{']))
                .map(|segment| segment.replace('-', "_"));
            let model = derived_from_model(items)
                .map(str::to_owned)
                .or(by_path)
                .filter(|model| is_model(model));
            if let Some(model) = model {
                lists
                    .entry(model)
                    .or_insert_with(|| (format!("`GET {path}` → `results` items"), items));
            }
        }

        let mut components = BTreeMap::new();
        let mut nested: BTreeMap<String, Vec<(String, &'a Value)>> = BTreeMap::new();
        for (name, schema) in entries(spec.schemas()?) {
            let record_like = !name.starts_with('_') || name.ends_with("_get_output");
            if !record_like {
                continue;
            }
            if !name.starts_with('_') {
                if let Some(model) = derived_from_model(schema).filter(|m| is_model(m)) {
                    components
                        .entry(model.to_owned())
                        .or_insert_with(|| name.to_owned());
                }
            }
            walk_nested(schema, name, 0, &mut |model, at, schema| {
                if is_model(model) {
                    nested
                        .entry(model.to_owned())
                        .or_default()
                        .push((at.to_owned(), schema));
                }
            });
        }

        let mut payloads_2024 = BTreeMap::new();
        for variant in payload_variants_2024(webhooks_2024)? {
            if let Some(title) = variant.get("title").and_then(Value::as_str) {
                let model = title.replace('-', "_");
                if is_model(&model) {
                    payloads_2024.insert(model, variant);
                }
            }
        }
        Ok(Self {
            lists,
            components,
            nested,
            payloads_2024,
        })
    }

    fn choose(&self, spec: &'a Spec, model: &ObjectModel) -> Result<Option<Chosen<'a>>> {
        if let Some(read) = &model.read_path {
            let get = spec
                .paths()?
                .get(read.template.as_str())
                .and_then(|item| item.get("get"))
                .ok_or_else(|| format!("no GET {}", read.template))?;
            if let Some(raw) = raw_results(spec, get)? {
                let component = raw
                    .get("$ref")
                    .and_then(Value::as_str)
                    .map(ref_name)
                    .transpose()?
                    .map(str::to_owned);
                return Ok(Some(Chosen {
                    props: properties(spec.resolve(raw)?),
                    source: format!(
                        "`GET {}` → `results`{}",
                        read.template,
                        component
                            .as_ref()
                            .map(|c| format!(" (component `{c}`)"))
                            .unwrap_or_default()
                    ),
                    component,
                    from_2024: false,
                }));
            }
        }
        if let Some((source, items)) = self.lists.get(&model.snake) {
            return Ok(Some(Chosen {
                props: properties(items),
                component: None,
                source: source.clone(),
                from_2024: false,
            }));
        }
        if let Some(component) = self.components.get(&model.snake) {
            let schema = spec
                .schemas()?
                .get(component.as_str())
                .ok_or_else(|| format!("no component {component}"))?;
            return Ok(Some(Chosen {
                props: properties(schema),
                component: Some(component.clone()),
                source: format!("component `{component}`"),
                from_2024: false,
            }));
        }
        if let Some(views) = self.nested.get(&model.snake) {
            let mut props: Vec<(&'a str, &'a Value)> = Vec::new();
            for (_, schema) in views {
                for (key, value) in properties(schema) {
                    if !props.iter().any(|(k, _)| *k == key) {
                        props.push((key, value));
                    }
                }
            }
            let places: Vec<&str> = views.iter().map(|(at, _)| at.as_str()).collect();
            return Ok(Some(Chosen {
                props,
                component: None,
                source: format!("the union of the nested schemas {}", places.join(", ")),
                from_2024: false,
            }));
        }
        if let Some(payload) = self.payloads_2024.get(&model.snake) {
            return Ok(Some(Chosen {
                props: properties(payload),
                component: None,
                source: format!(
                    "the DATA_NEW payload `{}` of spec/webhooks-openapi-2024-09-03.yml (the current spec has none)",
                    model.kebab
                ),
                from_2024: true,
            }));
        }
        Ok(None)
    }
}

/// Calls `found(model, location, schema)` for every object schema annotated with
/// `derivedFromModel` below the top level of `schema` (and below an output's `results`).
fn walk_nested<'a>(
    schema: &'a Value,
    at: &str,
    depth: usize,
    found: &mut dyn FnMut(&str, &str, &'a Value),
) {
    let Some(mapping) = schema.as_mapping() else {
        return;
    };
    let is_output_results = at.ends_with("_get_output.results") || at.ends_with(".results[]");
    if depth > 0 && !is_output_results {
        if let Some(model) = derived_from_model(schema) {
            if types(schema).contains(&"object") {
                found(model, at, schema);
            }
        }
    }
    for (key, value) in entries(mapping) {
        match key {
            "properties" => {
                if let Some(props) = value.as_mapping() {
                    for (name, prop) in entries(props) {
                        walk_nested(prop, &format!("{at}.{name}"), depth + 1, found);
                    }
                }
            }
            "items" => walk_nested(value, &format!("{at}[]"), depth + 1, found),
            "anyOf" | "oneOf" | "allOf" => {
                for alt in value.as_sequence().into_iter().flatten() {
                    walk_nested(alt, at, depth + 1, found);
                }
            }
            _ => {}
        }
    }
}

/// The raw (unresolved) `results` schema of a GET's JSON 200 response.
fn raw_results<'a>(spec: &'a Spec, get: &'a Value) -> Result<Option<&'a Value>> {
    let Some(schema) = get
        .get("responses")
        .and_then(|r| r.get("200"))
        .and_then(|r| r.get("content"))
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
    else {
        return Ok(None);
    };
    Ok(spec
        .resolve(schema)?
        .get("properties")
        .and_then(|p| p.get("results")))
}

/// The per-object `payload` schemas of the DATA_NEW variant in the 2024 webhook file.
fn payload_variants_2024(webhooks: &Spec) -> Result<Vec<&Value>> {
    let missing = || "the 2024 webhook file has no DATA_NEW payload schemas".to_owned();
    let variants = webhooks
        .at("webhooks")
        .and_then(|w| w.get("/"))
        .and_then(|p| p.get("post"))
        .and_then(|p| p.get("requestBody"))
        .and_then(|b| b.get("content"))
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
        .and_then(|s| s.get("anyOf"))
        .and_then(Value::as_sequence)
        .ok_or_else(missing)?;
    let data_new = variants
        .iter()
        .find(|v| v.get("title").and_then(Value::as_str) == Some("DATA_NEW"))
        .ok_or_else(missing)?;
    Ok(data_new
        .get("properties")
        .and_then(|p| p.get("data"))
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get("payload"))
        .and_then(|p| p.get("anyOf"))
        .and_then(Value::as_sequence)
        .ok_or_else(missing)?
        .iter()
        .collect())
}

struct Builder<'a> {
    spec: &'a Spec,
    /// Component name → record struct name, for components that are a record's schema.
    record_components: BTreeMap<String, String>,
    /// Component name → generated shared type name.
    shared_components: BTreeMap<String, String>,
    shared: Vec<TypeDef>,
    /// Every type name handed out, to refuse duplicates.
    names: BTreeSet<String>,
    /// Model id → (record name, the properties of its schema).
    record_props: BTreeMap<String, (String, Props<'a>)>,
    /// Shared type name → the fields that use it, as doc links.
    users: BTreeMap<String, BTreeSet<String>>,
}

impl Builder<'_> {
    fn claim(&mut self, name: &str) -> Result<()> {
        if name == "Record" || name == "AnyRecord" || !self.names.insert(name.to_owned()) {
            return Err(format!("two generated types would be named {name}"));
        }
        Ok(())
    }

    /// Builds the struct `name` from `props`, pushing the types of its fields onto `out`.
    fn build_struct(
        &mut self,
        name: &str,
        doc: String,
        noun: &str,
        props: &[(&str, &Value)],
        out: &mut Vec<TypeDef>,
        depth: usize,
    ) -> Result<StructDef> {
        if depth > 8 {
            return Err(format!("{name}: nested more than 8 levels deep"));
        }
        let siblings: Vec<&str> = props.iter().map(|(key, _)| *key).collect();
        let mut fields = Vec::new();
        let mut idents = BTreeSet::new();
        for (key, schema) in props {
            let (ident, rename) = field_ident(key);
            if !idents.insert(ident.clone()) {
                return Err(format!("{name}: two fields would be named {ident}"));
            }
            let (ty, nullable) = self.field_type(name, key, schema, out, depth)?;
            if let Some(shared) = ty.named().filter(|n| self.is_shared(n)) {
                self.users
                    .entry(shared.to_owned())
                    .or_default()
                    .insert(format!("{}'s `{key}`", link(name)));
            }
            let deprecated = docs::deprecation(schema, key, &siblings);
            fields.push(Field {
                key: (*key).to_owned(),
                ident,
                rename,
                doc: docs::field_doc(noun, key, &ty, deprecated.as_deref()),
                ty,
                nullable,
                example: schema.get("example").cloned(),
            });
        }
        Ok(StructDef {
            name: name.to_owned(),
            doc,
            fields,
        })
    }

    fn is_shared(&self, name: &str) -> bool {
        self.shared.iter().any(|def| def.name() == name)
    }

    /// The type of the field `key` of the struct `owner`, and whether it is nullable.
    fn field_type(
        &mut self,
        owner: &str,
        key: &str,
        schema: &Value,
        out: &mut Vec<TypeDef>,
        depth: usize,
    ) -> Result<(Ty, bool)> {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return Ok((self.component_type(ref_name(reference)?, key)?, false));
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(alternatives) = schema.get(keyword).and_then(Value::as_sequence) {
                return self.alternatives_type(owner, key, alternatives, out, depth);
            }
        }
        let all = types(schema);
        let nullable = all.contains(&"null");
        let non_null: Vec<&str> = all.into_iter().filter(|t| *t != "null").collect();
        let ty = match non_null.as_slice() {
            [] if schema.get("properties").is_some() => {
                self.nested_struct(owner, key, schema, out, depth)?
            }
            [] if schema.get("enum").is_some() => self.inline_enum(owner, key, schema, out)?,
            [] => Ty::Json,
            ["string"] if schema.get("enum").is_some() => {
                self.inline_enum(owner, key, schema, out)?
            }
            ["string"] => Ty::String,
            ["number"] => Ty::F64,
            ["integer"] => Ty::I64,
            ["boolean"] => Ty::Bool,
            ["array"] => {
                let (item, item_nullable) = match schema.get("items") {
                    Some(items) => self.field_type(owner, key, items, out, depth)?,
                    None => (Ty::Json, false),
                };
                Ty::Vec(Box::new(item), item_nullable)
            }
            ["object"] if !properties(schema).is_empty() => {
                self.nested_struct(owner, key, schema, out, depth)?
            }
            ["object"] => Ty::Map,
            _ => Ty::Json,
        };
        Ok((ty, nullable))
    }

    /// anyOf / oneOf: "enum or string (or null)" is the enum; one alternative (or null) is
    /// that alternative; anything else is a JSON value.
    fn alternatives_type(
        &mut self,
        owner: &str,
        key: &str,
        alternatives: &[Value],
        out: &mut Vec<TypeDef>,
        depth: usize,
    ) -> Result<(Ty, bool)> {
        let is_null = |alt: &Value| types(alt) == ["null"];
        let nullable = alternatives.iter().any(is_null);
        let rest: Vec<&Value> = alternatives.iter().filter(|alt| !is_null(alt)).collect();
        let strings = rest.iter().all(|alt| types(alt) == ["string"]);
        let enums: Vec<&Value> = rest
            .iter()
            .copied()
            .filter(|alt| alt.get("enum").is_some())
            .collect();
        if strings && !enums.is_empty() {
            let mut values = Vec::new();
            for alt in enums {
                for value in enum_values(alt)? {
                    if !values.contains(&value) {
                        values.push(value);
                    }
                }
            }
            return Ok((self.enum_named(owner, key, values, out)?, nullable));
        }
        match rest.as_slice() {
            [one] => {
                let (ty, inner_nullable) = self.field_type(owner, key, one, out, depth)?;
                Ok((ty, nullable || inner_nullable))
            }
            _ => Ok((Ty::Json, nullable)),
        }
    }

    fn nested_struct(
        &mut self,
        owner: &str,
        key: &str,
        schema: &Value,
        out: &mut Vec<TypeDef>,
        depth: usize,
    ) -> Result<Ty> {
        if let Some(record) = self.reusable_record(schema) {
            return Ok(Ty::Named(record, Kind::Struct));
        }
        let name = format!("{owner}{}", pascal(key));
        self.claim(&name)?;
        let mut doc = format!("An entry of {}'s `{key}`.", link(owner));
        if let Some(model) = derived_from_model(schema) {
            let record = record_name(model);
            if self.names.contains(&record) {
                doc.push_str(&format!(
                    " Propexo derives it from the `{model}` model, whose record is {}.",
                    link(&record)
                ));
            } else {
                doc.push_str(&format!(" Propexo derives it from the `{model}` model."));
            }
        }
        let def = self.build_struct(&name, doc, "entry", &properties(schema), out, depth + 1)?;
        out.push(TypeDef::Struct(def));
        Ok(Ty::Named(name, Kind::Struct))
    }

    /// The record a nested object can be parsed as: the one of the model it is derived from,
    /// when that record reads every one of its properties (same schema, or the nullable
    /// version of it). Lease's
    /// `residents_meta_data` entries are then [`ResidentToLease`]s, one type for the link
    /// whichever side it is seen from.
    fn reusable_record(&self, schema: &Value) -> Option<String> {
        let (record, props) = self.record_props.get(derived_from_model(schema)?)?;
        let fits = properties(schema).iter().all(|(key, nested)| {
            props
                .iter()
                .any(|(k, own)| k == key && accepts(own, nested))
        });
        fits.then(|| record.clone())
    }

    fn inline_enum(
        &mut self,
        owner: &str,
        key: &str,
        schema: &Value,
        out: &mut Vec<TypeDef>,
    ) -> Result<Ty> {
        let values = enum_values(schema)?;
        self.enum_named(owner, key, values, out)
    }

    fn enum_named(
        &mut self,
        owner: &str,
        key: &str,
        values: Vec<String>,
        out: &mut Vec<TypeDef>,
    ) -> Result<Ty> {
        let short = format!(
            "{owner}{}",
            pascal(key.strip_suffix("_normalized").unwrap_or(key))
        );
        let name = if self.names.contains(&short) {
            format!("{owner}{}", pascal(key))
        } else {
            short
        };
        self.claim(&name)?;
        out.push(TypeDef::Enum(EnumDef {
            doc: format!("The values of {}'s `{key}`.", link(owner)),
            name: name.clone(),
            values,
        }));
        Ok(Ty::Named(name, Kind::Enum))
    }

    /// The type of a `$ref` to `component`, used by the field `key`.
    fn component_type(&mut self, component: &str, key: &str) -> Result<Ty> {
        if let Some(record) = self.record_components.get(component) {
            return Ok(Ty::Named(record.clone(), Kind::Struct));
        }
        let schema = self
            .spec
            .schemas()?
            .get(component)
            .ok_or_else(|| format!("no component {component}"))?;
        let is_enum = schema.get("enum").is_some();
        if let Some(name) = self.shared_components.get(component) {
            let kind = if is_enum { Kind::Enum } else { Kind::Struct };
            return Ok(Ty::Named(name.clone(), kind));
        }
        // Components named `Enum<N>` are anonymous: name them after the field.
        let anonymous = component
            .strip_prefix("Enum")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let name = if anonymous {
            pascal(key.strip_suffix("_normalized").unwrap_or(key))
        } else {
            pascal(component)
        };
        self.claim(&name)?;
        self.shared_components
            .insert(component.to_owned(), name.clone());
        if is_enum {
            self.shared.push(TypeDef::Enum(EnumDef {
                doc: format!("The values of `{key}`."),
                name: name.clone(),
                values: enum_values(schema)?,
            }));
            Ok(Ty::Named(name, Kind::Enum))
        } else if types(schema).contains(&"object") && !properties(schema).is_empty() {
            let mut nested = Vec::new();
            let words = docs::words(&snake(component));
            let article = if words.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "An"
            } else {
                "A"
            };
            let doc = format!("{article} {words} entry.");
            let def =
                self.build_struct(&name, doc, "entry", &properties(schema), &mut nested, 1)?;
            self.shared.push(TypeDef::Struct(def));
            self.shared.extend(nested);
            Ok(Ty::Named(name, Kind::Struct))
        } else {
            Err(format!(
                "component {component} is neither an enum nor an object with properties"
            ))
        }
    }
}

/// Whether a record's property `own` reads every value of `nested`: the same shape, or the
/// nullable version of it (`type: [string, "null"]` for `type: string`).
fn accepts(own: &Value, nested: &Value) -> bool {
    if same_shape(own, nested) {
        return true;
    }
    let (own_types, nested_types) = (types(own), types(nested));
    let widened = own_types.contains(&"null")
        && !nested_types.contains(&"null")
        && own_types.len() == nested_types.len() + 1
        && nested_types.iter().all(|t| own_types.contains(t));
    match (widened, nested) {
        (true, Value::Mapping(mapping)) => {
            let mut mapping = mapping.clone();
            if let Some(own_type) = own.get("type") {
                mapping.insert(Value::String("type".to_owned()), own_type.clone());
            }
            same_shape(own, &Value::Mapping(mapping))
        }
        _ => false,
    }
}

/// Whether two schemas describe the same values (descriptions, examples and annotations
/// aside).
fn same_shape(a: &Value, b: &Value) -> bool {
    const IGNORED: &[&str] = &[
        "description",
        "example",
        "examples",
        "deprecated",
        "title",
        "required",
        "x-propexo",
        "x-fern-availability",
    ];
    match (a, b) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            let kept = |m: &serde_norway::Mapping| -> Vec<(String, Value)> {
                entries(m)
                    .filter(|(k, _)| !IGNORED.contains(k))
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect()
            };
            let (a, b) = (kept(a), kept(b));
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.iter().any(|(k, v)| k == key && same_shape(value, v)))
        }
        (Value::Sequence(a), Value::Sequence(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_shape(a, b))
        }
        _ => a == b,
    }
}

/// `IncomeSource` → `income_source`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The string values of an `enum`, without `null`.
fn enum_values(schema: &Value) -> Result<Vec<String>> {
    let values = schema
        .get("enum")
        .and_then(Value::as_sequence)
        .ok_or_else(|| "an enum without values".to_owned())?;
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::Null => {}
            Value::String(text) => out.push(text.clone()),
            other => return Err(format!("a non-string enum value {other:?}")),
        }
    }
    let mut variants = BTreeSet::new();
    for value in &out {
        if !variants.insert(crate::naming::variant(value)) {
            return Err(format!("two enum values become the same variant: {value}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names() {
        for (model, name) in [
            ("leases", "Lease"),
            ("residents_to_leases", "ResidentToLease"),
            ("units_to_amenity", "UnitToAmenity"),
            ("service_request_notes", "ServiceRequestNote"),
            ("properties", "Property"),
            ("resident_insurance", "ResidentInsurance"),
            ("application_statuses", "ApplicationStatus"),
            ("service_requests_to_vendors", "ServiceRequestToVendor"),
        ] {
            assert_eq!(record_name(model), name);
        }
        assert_eq!(record_noun("ResidentToLease"), "resident-to-lease link");
        assert_eq!(record_noun("ServiceRequest"), "service request");
    }
}
