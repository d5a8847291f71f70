//! How spec names become Rust names and prose.

/// `residents_to_leases` (or `residents-to-leases`) → `ResidentsToLeases`.
pub(crate) fn pascal(name: &str) -> String {
    name.split(['_', '-', ' ', '.'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// Words written in capitals in prose.
const ACRONYMS: &[&str] = &["ap", "crm", "id", "url"];

/// `residents_to_leases` → `Residents to leases`; `crm_agents` → `CRM agents`.
pub(crate) fn human(model: &str) -> String {
    let words: Vec<String> = model
        .split('_')
        .enumerate()
        .map(|(i, word)| {
            if ACRONYMS.contains(&word) {
                word.to_uppercase()
            } else if i == 0 {
                pascal(word)
            } else {
                word.to_owned()
            }
        })
        .collect();
    words.join(" ")
}

/// The singular of an English plural as Propexo's model ids use them: `amenities` →
/// `amenity`, `statuses` → `status`, `leases` → `lease`; words that are not plurals
/// (`insurance`, `pricing`, `data`, `amenity`) are kept.
pub(crate) fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = word.strip_suffix("uses") {
        format!("{stem}us")
    } else if word.ends_with("ss") || word.ends_with("us") {
        word.to_owned()
    } else if let Some(stem) = word.strip_suffix('s') {
        stem.to_owned()
    } else {
        word.to_owned()
    }
}

/// The plural of an English noun, for prose: `property` → `properties`, `lease` → `leases`.
pub(crate) fn plural(word: &str) -> String {
    let consonant_y = word.len() > 1
        && word.ends_with('y')
        && !word[..word.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
    if consonant_y {
        format!("{}ies", &word[..word.len() - 1])
    } else if word.ends_with(['s', 'x']) || word.ends_with("ch") || word.ends_with("sh") {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

/// Rust's keywords (strict and reserved, all editions), which a field name cannot use bare.
pub(crate) const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The Rust identifier for a JSON key, and whether serde needs a `rename` to find the key.
pub(crate) fn field_ident(key: &str) -> (String, bool) {
    let snake_ident = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if snake_ident {
        return match key {
            "self" | "Self" | "super" | "crate" | "_" => (format!("{key}_"), true),
            _ if KEYWORDS.contains(&key) => (format!("r#{key}"), false),
            _ => (key.to_owned(), false),
        };
    }
    // camelCase or anything else: snake_case it, keep the key with `rename`.
    let mut ident = String::new();
    for (i, ch) in key.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 && !ident.ends_with('_') {
                ident.push('_');
            }
            ident.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            ident.push(ch);
        } else if !ident.ends_with('_') {
            ident.push('_');
        }
    }
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert_str(0, "field_");
    }
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    (ident, true)
}

/// The Rust variant for an enum's wire value: `ACTIVE` → `Active`, `WD_IN_UNIT` → `WdInUnit`,
/// `AVAILABILITY_24_HOURS` → `Availability24Hours`.
pub(crate) fn variant(value: &str) -> String {
    let mut out = String::new();
    for word in value.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    if out == "Unknown" {
        out.push_str("Value");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pascal("residents_to_leases"), "ResidentsToLeases");
        assert_eq!(pascal("service-request-vendors"), "ServiceRequestVendors");
        assert_eq!(human("crm_agents"), "CRM agents");
        assert_eq!(human("residents_to_leases"), "Residents to leases");
        for (plural, one) in [
            ("amenities", "amenity"),
            ("statuses", "status"),
            ("leases", "lease"),
            ("insurance", "insurance"),
            ("pricing", "pricing"),
            ("timezones", "timezone"),
            ("address", "address"),
        ] {
            assert_eq!(singular(plural), one);
        }
    }

    #[test]
    fn rust_names() {
        assert_eq!(field_ident("type"), ("r#type".to_owned(), false));
        assert_eq!(field_ident("phone_1"), ("phone_1".to_owned(), false));
        assert_eq!(field_ident("hasMore"), ("has_more".to_owned(), true));
        assert_eq!(field_ident("1st"), ("field_1st".to_owned(), true));
        assert_eq!(field_ident("self"), ("self_".to_owned(), true));
        assert_eq!(variant("WD_IN_UNIT"), "WdInUnit");
        assert_eq!(variant("AVAILABILITY_24_HOURS"), "Availability24Hours");
        assert_eq!(variant("UNKNOWN"), "UnknownValue");
        assert_eq!(variant("24_HOURS"), "V24Hours");
        assert_eq!(plural("property"), "properties");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("lease"), "leases");
        assert_eq!(plural("address"), "addresses");
    }
}
