//! Fixture records with every field populated, one per record model.
//!
//! A value is the spec's `example` when it has the field's type, otherwise: strings
//! `"<field>-example"`, an enum's first value, `12.5` for numbers (written as a float, as
//! `f64` serializes), `3` for integers, `true`, one-element arrays, `{"<field>-key":
//! "<field>-value"}` for free-form objects, and nested objects populated the same way.

use std::collections::BTreeMap;

use serde_norway::{Mapping, Number, Value};

use crate::records::{RecordDef, Records, StructDef, Ty, TypeDef};
use crate::spec::Result;

/// The JSON text of the fixture of `record`.
pub(crate) fn fixture(records: &Records, record: &RecordDef) -> Result<String> {
    let mut types: BTreeMap<&str, &TypeDef> = BTreeMap::new();
    for def in records
        .records
        .iter()
        .flat_map(|r| r.types.iter())
        .chain(records.shared.iter())
    {
        types.insert(def.name(), def);
    }
    let value = sample_struct(&types, &record.name, 0)?;
    let mut text = serde_json::to_string_pretty(&value)
        .map_err(|err| format!("cannot write the {} fixture: {err}", record.name))?;
    text.push('\n');
    Ok(text)
}

fn sample_struct(types: &BTreeMap<&str, &TypeDef>, name: &str, depth: usize) -> Result<Value> {
    let Some(TypeDef::Struct(def)) = types.get(name) else {
        return Err(format!("no struct {name}"));
    };
    if depth > 8 {
        return Err(format!("{name} nests too deeply for a fixture"));
    }
    let mut map = Mapping::new();
    for field in &def.fields {
        let value = example(&field.ty, field.example.as_ref())
            .map_or_else(|| sample(types, def, &field.key, &field.ty, depth), Ok)?;
        map.insert(Value::String(field.key.clone()), value);
    }
    Ok(Value::Mapping(map))
}

/// The spec's example, when it fits the type.
fn example(ty: &Ty, example: Option<&Value>) -> Option<Value> {
    let example = example?;
    match (ty, example) {
        (Ty::String, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => Some(example.clone()),
        (Ty::I64, Value::Number(n)) if n.is_i64() => Some(example.clone()),
        (Ty::F64, Value::Number(n)) => n.as_f64().map(|f| Value::Number(Number::from(f))),
        _ => None,
    }
}

fn sample(
    types: &BTreeMap<&str, &TypeDef>,
    owner: &StructDef,
    key: &str,
    ty: &Ty,
    depth: usize,
) -> Result<Value> {
    Ok(match ty {
        Ty::String => Value::String(format!("{key}-example")),
        Ty::F64 => Value::Number(Number::from(12.5)),
        Ty::I64 => Value::Number(Number::from(3)),
        Ty::Bool => Value::Bool(true),
        Ty::Vec(item, _) => Value::Sequence(vec![sample(types, owner, key, item, depth)?]),
        Ty::Map => {
            let mut map = Mapping::new();
            map.insert(
                Value::String(format!("{key}-key")),
                Value::String(format!("{key}-value")),
            );
            Value::Mapping(map)
        }
        Ty::Json => Value::String(format!("{key}-example")),
        Ty::Named(name, _) => match types.get(name.as_str()) {
            Some(TypeDef::Enum(def)) => def
                .values
                .first()
                .map(|v| Value::String(v.clone()))
                .ok_or_else(|| format!("{name} has no values"))?,
            Some(TypeDef::Struct(_)) => sample_struct(types, name, depth + 1)?,
            None => return Err(format!("{}.{key}: no type {name}", owner.name)),
        },
    })
}
