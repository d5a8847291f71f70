//! The kind of record an event is about: `leases`, `residents-to-leases`, ...

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// Defines [`ObjectType`] with the variants listed in the generated table (`generated.rs`),
/// so the list comes from Propexo's spec and the documentation stays here.
macro_rules! define_object_type {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// The kind of record a Propexo event is about (an "object" in payloads, a "model" in
        /// the webhook subscription API).
        ///
        /// Payloads spell it in kebab-case (`residents-to-leases`), the subscription API in
        /// snake_case (`residents_to_leases`); [`ObjectType::parse`] accepts both, and
        /// [`as_str`](ObjectType::as_str) and
        /// [`subscription_model`](ObjectType::subscription_model) give each back. The known
        /// variants are generated from the model list of Propexo's OpenAPI file; an object
        /// Propexo adds later parses as [`ObjectType::Unknown`], keeping the name as received.
        ///
        /// It serializes as its kebab-case name, and deserializes from either spelling.
        ///
        /// # Examples
        ///
        /// ```
        /// use propexo_webhooks::ObjectType;
        ///
        /// let object = ObjectType::parse("residents-to-leases");
        /// assert_eq!(object, ObjectType::ResidentsToLeases);
        /// assert_eq!(ObjectType::parse("residents_to_leases"), object);
        /// assert_eq!(object.as_str(), "residents-to-leases");
        /// assert_eq!(object.subscription_model(), "residents_to_leases");
        /// assert_eq!(
        ///     ObjectType::Leases.record_path("cly301zs1").as_deref(),
        ///     Some("/v1/leases/cly301zs1")
        /// );
        ///
        /// // A model this version of the crate does not know yet.
        /// let new = ObjectType::parse("parking-spaces");
        /// assert_eq!(new, ObjectType::Unknown("parking-spaces".to_owned()));
        /// assert!(!new.is_known());
        /// assert_eq!(new.subscription_model(), "parking_spaces");
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ObjectType {
            $($(#[$doc])* $variant,)*
            /// An object this version of the crate does not know, spelled as received.
            Unknown(String),
        }
    };
}

mod generated;

pub use generated::ObjectType;

impl ObjectType {
    /// Every known object type (no [`Unknown`](ObjectType::Unknown)), in the order of
    /// Propexo's model list.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert!(ObjectType::all().contains(&ObjectType::Leases));
    /// assert!(ObjectType::all().iter().all(ObjectType::is_known));
    /// ```
    pub fn all() -> &'static [ObjectType] {
        Self::KNOWN
    }

    /// Parses an object type from its kebab-case (payload) or snake_case (subscription) name.
    ///
    /// Never fails: a name that is not a known object type becomes
    /// [`Unknown`](ObjectType::Unknown), holding the name as given. Known names do not
    /// allocate. The match is exact (case-sensitive, no trimming), as Propexo sends them.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert_eq!(ObjectType::parse("service-requests"), ObjectType::ServiceRequests);
    /// assert_eq!(ObjectType::parse("service_requests"), ObjectType::ServiceRequests);
    /// assert_eq!(
    ///     ObjectType::parse("Service-Requests"),
    ///     ObjectType::Unknown("Service-Requests".to_owned())
    /// );
    /// ```
    pub fn parse(name: &str) -> ObjectType {
        Self::from_known(name).unwrap_or_else(|| Self::Unknown(name.to_owned()))
    }

    /// The name as payloads spell it, in kebab-case (`residents-to-leases`); for
    /// [`Unknown`](ObjectType::Unknown), the name as received.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert_eq!(ObjectType::ResidentCharges.as_str(), "resident-charges");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(name) => name,
            known => known.known_kebab().unwrap_or_default(),
        }
    }

    /// The name as the webhook subscription API spells it (its `model`), in snake_case
    /// (`residents_to_leases`); for [`Unknown`](ObjectType::Unknown), the name as received
    /// with every `-` replaced by `_`.
    ///
    /// Borrowed, except for an unknown name that holds a `-`.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert_eq!(ObjectType::ResidentCharges.subscription_model(), "resident_charges");
    /// ```
    pub fn subscription_model(&self) -> Cow<'_, str> {
        match self {
            Self::Unknown(name) if name.contains('-') => Cow::Owned(name.replace('-', "_")),
            Self::Unknown(name) => Cow::Borrowed(name),
            known => Cow::Borrowed(known.known_snake().unwrap_or_default()),
        }
    }

    /// Whether this is one of the object types generated from Propexo's spec (not
    /// [`Unknown`](ObjectType::Unknown)).
    pub const fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown(_))
    }

    /// The name of the Rust type of this object type's records (in
    /// [`records`](crate::records)), e.g. `"Lease"` for [`Leases`](ObjectType::Leases).
    ///
    /// `None` when Propexo's spec describes no record for this object type, and for
    /// [`Unknown`](ObjectType::Unknown); [`AnyRecord::parse`](crate::AnyRecord::parse) then
    /// returns `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert_eq!(ObjectType::Leases.record_type_name(), Some("Lease"));
    /// assert_eq!(ObjectType::ResidentsToLeases.record_type_name(), Some("ResidentToLease"));
    /// assert_eq!(ObjectType::CrmAgents.record_type_name(), None);
    /// ```
    pub fn record_type_name(&self) -> Option<&'static str> {
        self.known_record_type_name()
    }

    /// The path of Propexo's REST endpoint that reads the record `id` of this object type,
    /// e.g. `/v1/leases/{id}`.
    ///
    /// Propexo recommends fetching the record there when a webhook arrives, because a DATA_NEW
    /// payload may hold only part of it. The path is relative to the API's base URL.
    ///
    /// The id comes from the network, so it is percent-encoded: every byte but ASCII letters,
    /// digits, `-`, `.`, `_` and `~` is written as `%XX`, so an id holding `/`, `?`, `#`, `%`
    /// or whitespace cannot reach another endpoint. Propexo's ids (cuids) need no encoding.
    ///
    /// Returns `None` when Propexo has no single-record read endpoint for this object type,
    /// for [`Unknown`](ObjectType::Unknown), and when `id` is empty, `.` or `..` (which would
    /// name the list endpoint or a parent path).
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::ObjectType;
    ///
    /// assert_eq!(
    ///     ObjectType::Leases.record_path("cly301zs1").as_deref(),
    ///     Some("/v1/leases/cly301zs1")
    /// );
    /// // Some objects are read under another resource's path.
    /// assert_eq!(
    ///     ObjectType::ServiceRequestVendors.record_path("v1").as_deref(),
    ///     Some("/v1/vendors/v1")
    /// );
    /// // Ids are percent-encoded.
    /// assert_eq!(
    ///     ObjectType::Leases.record_path("a/b?c").as_deref(),
    ///     Some("/v1/leases/a%2Fb%3Fc")
    /// );
    /// // No single-record endpoint for this object.
    /// assert_eq!(ObjectType::ResidentsToLeases.record_path("x"), None);
    /// ```
    pub fn record_path(&self, id: &str) -> Option<String> {
        let prefix = self.record_path_prefix()?;
        if matches!(id, "" | "." | "..") {
            return None;
        }
        let mut path = String::with_capacity(prefix.len() + id.len());
        path.push_str(prefix);
        for byte in id.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                path.push(char::from(byte));
            } else {
                // Writing to a `String` cannot fail.
                let _ = write!(path, "%{byte:02X}");
            }
        }
        Some(path)
    }
}

impl FromStr for ObjectType {
    type Err = Infallible;

    /// Same as [`ObjectType::parse`]: never fails.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(name))
    }
}

impl fmt::Display for ObjectType {
    /// Writes the kebab-case name, as [`ObjectType::as_str`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ObjectType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ObjectType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = ObjectType;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object type name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ObjectType, E> {
                Ok(ObjectType::parse(name))
            }

            fn visit_string<E: serde::de::Error>(self, name: String) -> Result<ObjectType, E> {
                Ok(ObjectType::from_known(&name).unwrap_or(ObjectType::Unknown(name)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_types_are_send_sync_and_static() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<ObjectType>();
    }

    #[test]
    fn record_paths_encode_every_byte_that_could_escape_the_segment() {
        let path = ObjectType::Leases.record_path("a b/c?d#e%f\u{e9}").unwrap();
        assert_eq!(path, "/v1/leases/a%20b%2Fc%3Fd%23e%25f%C3%A9");
        assert_eq!(
            ObjectType::Leases.record_path("A-z_0.9~").unwrap(),
            "/v1/leases/A-z_0.9~"
        );
        assert_eq!(
            ObjectType::Leases.record_path("..."),
            Some("/v1/leases/...".to_owned())
        );
        for refused in ["", ".", ".."] {
            assert_eq!(ObjectType::Leases.record_path(refused), None);
        }
    }
}
