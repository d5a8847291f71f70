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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pascal("residents_to_leases"), "ResidentsToLeases");
        assert_eq!(pascal("service-request-vendors"), "ServiceRequestVendors");
        assert_eq!(human("crm_agents"), "CRM agents");
        assert_eq!(human("residents_to_leases"), "Residents to leases");
    }
}
