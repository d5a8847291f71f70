//! Doc comments for generated fields, written from the field's name and Rust type.
//!
//! The spec's own descriptions are not copied: a field's doc says what the Rust value is
//! (its meaning as far as the name tells it, and its unit or format), in this crate's words.
//! Deprecation is taken from the spec (`deprecated`, `x-fern-availability` or a description
//! that says so), with the replacement fields it names.

use serde_norway::Value;

use crate::naming::plural;
use crate::records::Ty;

/// Words written in capitals in prose.
const ACRONYMS: &[(&str, &str)] = &[
    ("ap", "AP"),
    ("api", "API"),
    ("crm", "CRM"),
    ("gl", "GL"),
    ("id", "id"),
    ("ids", "ids"),
    ("ils", "ILS"),
    ("ndt", "NDT"),
    ("owa", "OWA"),
    ("pms", "PMS"),
    ("sms", "SMS"),
    ("twa", "TWA"),
    ("url", "URL"),
    ("urls", "URLs"),
    ("utc", "UTC"),
    ("wd", "washer/dryer"),
];

/// `rent_amount_market` → `rent amount market`, with acronyms capitalized.
pub(crate) fn words(key: &str) -> String {
    key.split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            ACRONYMS
                .iter()
                .find(|(lower, _)| *lower == word)
                .map_or_else(|| word.to_owned(), |(_, written)| (*written).to_owned())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `rent amount` → `Rent amount`.
pub(crate) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A doc link to a type re-exported from `crate::records`.
pub(crate) fn link(name: &str) -> String {
    format!("[`{name}`](crate::records::{name})")
}

/// The doc line of a field `key` of type `ty` in a struct describing `noun` (`lease`,
/// `entry`).
pub(crate) fn field_doc(noun: &str, key: &str, ty: &Ty, deprecated: Option<&[String]>) -> String {
    let mut doc = describe(noun, key, ty);
    if let Some(replacements) = deprecated {
        let uses: Vec<String> = replacements.iter().map(|r| format!("`{r}`")).collect();
        if uses.is_empty() {
            doc.push_str(" Deprecated by Propexo.");
        } else {
            doc.push_str(&format!(
                " Deprecated by Propexo; use {}.",
                uses.join(" or ")
            ));
        }
    }
    doc
}

fn describe(noun: &str, key: &str, ty: &Ty) -> String {
    let see = match ty.named() {
        Some(name) => format!(" See {}.", link(name)),
        None => String::new(),
    };
    match key {
        "id" => return format!("Propexo's id of the {noun}."),
        "x_id" => return format!("The PMS's own id of the {noun}."),
        "created_at" => return format!("When Propexo first stored the {noun} (date-time string)."),
        "updated_at" => return format!("When Propexo last changed the {noun} (date-time string)."),
        "last_seen" => {
            return format!("When Propexo last saw the {noun} in the PMS (date-time string).");
        }
        "x_created_at" => return format!("When the PMS created the {noun} (date-time string)."),
        "x_updated_at" => {
            return format!("When the PMS last changed the {noun} (date-time string).");
        }
        "integration_id" => {
            return format!(
                "Propexo's id of the integration (PMS connection) the {noun} came through."
            );
        }
        "integration_vendor" => {
            return format!("The property management system the {noun} comes from.{see}");
        }
        "custom_data" => {
            return "PMS-specific extra data, passed through as a free-form JSON object."
                .to_owned();
        }
        _ => {}
    }
    let is_list = matches!(ty, Ty::Vec(..));
    if let Some(thing) = key.strip_prefix("x_").and_then(|k| k.strip_suffix("_id")) {
        return format!("The PMS's id of the {}.", words(thing));
    }
    if let Some(thing) = key.strip_prefix("x_").and_then(|k| k.strip_suffix("_ids")) {
        return format!("The PMS's ids of the {}.", plural_words(thing));
    }
    if let Some(thing) = key.strip_suffix("_id") {
        return format!("Propexo's id of the {}.", words(thing));
    }
    if let Some(thing) = key.strip_suffix("_ids") {
        return format!("Propexo's ids of the {}.", plural_words(thing));
    }
    if let Some(thing) = key.strip_suffix("_in_cents") {
        let what = sentence(&words(thing));
        return if is_list {
            format!("{what}, each in cents.")
        } else {
            format!("{what}, in cents.")
        };
    }
    for (suffix, unit) in [
        ("_in_months", "in months"),
        ("_in_days", "in days"),
        ("_in_years", "in years"),
        ("_in_minutes", "in minutes"),
        ("_in_hours", "in hours"),
        ("_in_seconds", "in seconds"),
    ] {
        if let Some(thing) = key.strip_suffix(suffix) {
            return format!("{}, {unit}.", sentence(&words(thing)));
        }
    }
    if let Some(thing) = key.strip_suffix("_raw") {
        return format!("{} as the PMS writes it.", sentence(&words(thing)));
    }
    if let Some(thing) = key.strip_suffix("_normalized") {
        let what = sentence(&words(thing));
        return match ty.named() {
            Some(_) => format!("{what}, normalized by Propexo to a fixed set of values.{see}"),
            None => format!("{what}, normalized by Propexo."),
        };
    }
    if let Some(thing) = key.strip_prefix("x_") {
        return format!("The PMS's {}.{see}", words(thing));
    }
    if let Some(state) = key.strip_prefix("is_") {
        return format!("Whether the {noun} is {}.", words(state));
    }
    if let Some(thing) = key.strip_prefix("has_") {
        return format!("Whether the {noun} has {}.", words(thing));
    }
    let what = sentence(&words(key));
    let format = if key.contains("square_feet") || key.contains("square_ft") {
        Some("in square feet")
    } else if key.ends_with("_date") || key.starts_with("date_") || key == "date" {
        Some("date string")
    } else if key.ends_with("_at") || key.ends_with("datetime") {
        Some("date-time string")
    } else if key.ends_with("_time") {
        Some("time string")
    } else if key.ends_with("_urls") {
        Some("URLs")
    } else if key.ends_with("_url") || key == "website" || key == "url" {
        Some("URL")
    } else if key.starts_with("email") || key.ends_with("_email") {
        Some("email address")
    } else if (key.starts_with("phone") || key.contains("_phone")) && !key.ends_with("_type") {
        Some("phone number")
    } else {
        None
    };
    if let Some(format) = format {
        return match ty {
            Ty::Named(..) => format!("{what} ({format}).{see}"),
            _ => format!("{what} ({format})."),
        };
    }
    match ty {
        Ty::String => format!("{what}."),
        Ty::F64 => format!("{what} (a number)."),
        Ty::I64 => format!("{what} (a whole number)."),
        Ty::Bool => format!("{what}: true or false."),
        Ty::Map => format!("{what}, as a free-form JSON object."),
        Ty::Json => format!("{what}, as any JSON value."),
        Ty::Named(name, _) => format!("{what}: a {}.", link(name)),
        Ty::Vec(item, _) => match item.as_ref() {
            Ty::String => format!("{what} (a list of strings)."),
            Ty::F64 => format!("{what} (a list of numbers)."),
            Ty::I64 => format!("{what} (a list of whole numbers)."),
            Ty::Named(name, _) => format!("{what}: a list of {}.", link(name)),
            _ => format!("{what} (a list)."),
        },
    }
}

/// `associated_lead` → `associated leads`.
fn plural_words(key: &str) -> String {
    let text = words(key);
    match text.rsplit_once(' ') {
        Some((head, last)) => format!("{head} {}", plural(last)),
        None => plural(&text),
    }
}

/// Whether the spec marks a property deprecated, and if so which sibling fields its
/// description names as the replacement.
pub(crate) fn deprecation(schema: &Value, key: &str, siblings: &[&str]) -> Option<Vec<String>> {
    let description = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let lower = description.to_ascii_lowercase();
    let flagged = schema.get("deprecated").and_then(Value::as_bool) == Some(true)
        || schema.get("x-fern-availability").and_then(Value::as_str) == Some("deprecated")
        || lower.contains("deprecated");
    if !flagged {
        return None;
    }
    let after = lower
        .find("deprecated")
        .map_or(description, |at| &description[at..]);
    let mut replacements: Vec<String> = Vec::new();
    for token in after.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if token != key && siblings.contains(&token) && !replacements.iter().any(|r| r == token) {
            replacements.push(token.to_owned());
        }
    }
    Some(replacements)
}
