//! Writes the record models as Rust source (formatted afterwards by rustfmt).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::records::{EnumDef, Field, RecordDef, Records, StructDef, TypeDef};

/// `src/records/generated.rs`: the modules, the re-exports, the `AnyRecord` table and the
/// records Propexo's REST API reads one at a time (`readable`: models with a read endpoint).
pub(crate) fn index(records: &Records, readable: &BTreeSet<String>) -> String {
    let mut out = String::from(crate::HEADER);
    out.push_str(
        "\n//! The record types generated from Propexo's spec: one module per record, plus the\n\
         //! types several records share.\n\n",
    );
    for record in &records.records {
        let _ = writeln!(out, "mod {};", record.model);
    }
    out.push_str("mod shared;\n\n");
    for record in &records.records {
        let names: Vec<&str> = record.types.iter().map(TypeDef::name).collect();
        let _ = writeln!(out, "pub use {}::{{{}}};", record.model, names.join(", "));
    }
    let shared: Vec<&str> = records.shared.iter().map(TypeDef::name).collect();
    let _ = writeln!(out, "pub use shared::{{{}}};\n", shared.join(", "));
    out.push_str("define_any_record! {\n");
    for record in &records.records {
        let _ = writeln!(out, "    {} => {},", record.name, record.variant);
    }
    out.push_str("}\n\ndefine_fetchable! {\n");
    for record in records
        .records
        .iter()
        .filter(|r| readable.contains(&r.model))
    {
        let _ = writeln!(out, "    {},", record.name);
    }
    out.push_str("}\n");
    out
}

/// `src/records/generated/<model>.rs`.
pub(crate) fn record_file(record: &RecordDef) -> String {
    let mut out = String::from(crate::HEADER);
    let _ = writeln!(out, "// Schema: {}.", record.source);
    let _ = writeln!(
        out,
        "\n//! The {} record (object `{}`) and the types of its fields.\n",
        link_local(&record.name),
        record.kebab
    );
    out.push_str(&types_file(&record.types));
    out
}

/// `src/records/generated/shared.rs`.
pub(crate) fn shared_file(records: &Records) -> String {
    let mut out = String::from(crate::HEADER);
    out.push_str("\n//! Types that several records use.\n\n");
    out.push_str(&types_file(&records.shared));
    out
}

fn link_local(name: &str) -> String {
    format!("[`{name}`]")
}

/// The imports and the definitions of `types`.
fn types_file(types: &[TypeDef]) -> String {
    let defined: BTreeSet<&str> = types.iter().map(TypeDef::name).collect();
    let mut from_siblings = BTreeSet::new();
    let mut nullable = false;
    let mut structs = false;
    for def in types {
        if let TypeDef::Struct(def) = def {
            structs = true;
            for field in &def.fields {
                nullable |= field.nullable;
                if let Some(name) = field.ty.named() {
                    if !defined.contains(name) {
                        from_siblings.insert(name.to_owned());
                    }
                }
            }
        }
    }
    let mut out = String::new();
    if structs {
        out.push_str("use serde::{Deserialize, Serialize};\n\n");
    }
    if nullable {
        out.push_str("use crate::Field;\n");
    }
    if !from_siblings.is_empty() {
        let names: Vec<String> = from_siblings.into_iter().collect();
        let _ = writeln!(out, "use super::{{{}}};", names.join(", "));
    }
    for def in types {
        out.push('\n');
        match def {
            TypeDef::Struct(def) => render_struct(&mut out, def),
            TypeDef::Enum(def) => render_enum(&mut out, def),
        }
    }
    out
}

/// A struct with a nullable field is read through a private wire struct (see
/// `src/records/mod.rs` and `crate::Field`), so that serde shares one deserializer per field type
/// instead of generating one per field.
fn render_struct(out: &mut String, def: &StructDef) {
    let wire = def.fields.iter().any(|f| f.nullable);
    let _ = writeln!(out, "/// {}", def.doc);
    out.push_str("#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]\n");
    if wire {
        let _ = writeln!(out, "#[serde(from = \"{}Wire\")]", def.name);
    }
    out.push_str("#[non_exhaustive]\n");
    let _ = writeln!(out, "pub struct {} {{", def.name);
    for field in &def.fields {
        render_field(out, field);
    }
    out.push_str("}\n");
    if !wire {
        return;
    }

    let _ = writeln!(
        out,
        "\n/// [`{0}`] as read: nullable fields tell absent from `null`.\n\
         #[derive(Default, Deserialize)]\n#[serde(default)]\nstruct {0}Wire {{",
        def.name
    );
    for field in &def.fields {
        if field.rename {
            let _ = writeln!(out, "    #[serde(rename = {:?})]", field.key);
        }
        let ty = field.ty.rust();
        let ty = if field.nullable {
            format!("Field<{ty}>")
        } else {
            format!("Option<{ty}>")
        };
        let _ = writeln!(out, "    {}: {ty},", field.ident);
    }
    let _ = writeln!(
        out,
        "}}\n\nimpl From<{0}Wire> for {0} {{\n    fn from(wire: {0}Wire) -> Self {{\n        Self {{",
        def.name
    );
    for field in &def.fields {
        if field.nullable {
            let _ = writeln!(out, "            {0}: wire.{0}.into_option(),", field.ident);
        } else {
            let _ = writeln!(out, "            {0}: wire.{0},", field.ident);
        }
    }
    out.push_str("        }\n    }\n}\n");
}

fn render_field(out: &mut String, field: &Field) {
    let _ = writeln!(out, "    /// {}", field.doc);
    if field.rename {
        let _ = writeln!(out, "    #[serde(rename = {:?})]", field.key);
    }
    out.push_str("    #[serde(default, skip_serializing_if = \"Option::is_none\")]\n");
    let ty = field.ty.rust();
    let ty = if field.nullable {
        format!("Option<Option<{ty}>>")
    } else {
        format!("Option<{ty}>")
    };
    let _ = writeln!(out, "    pub {}: {ty},", field.ident);
}

fn render_enum(out: &mut String, def: &EnumDef) {
    out.push_str("crate::wire_enum::wire_enum! {\n");
    let _ = writeln!(out, "    /// {}", def.doc);
    let _ = writeln!(out, "    pub enum {} {{", def.name);
    for value in &def.values {
        let _ = writeln!(
            out,
            "        /// Sent as `{value}`.\n        {} => {value:?},",
            crate::naming::variant(value)
        );
    }
    out.push_str("    }\n}\n");
}
