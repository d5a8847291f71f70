//! Typed records: one struct per Propexo object (lease, resident, unit, ...), generated from
//! Propexo's OpenAPI spec.
//!
//! A record is a *partial* view. A DATA_NEW payload may carry only some of a record's keys,
//! and a DATA_UPDATE diff only the keys that changed, so every field is an `Option`:
//!
//! - `None`: the key is absent (unknown, or unchanged in a diff);
//! - for a field the spec marks nullable, `Some(None)`: the key is present and `null` (the
//!   PMS has no value, or a diff cleared it), and `Some(Some(value))` otherwise. Those
//!   fields are `Option<Option<T>>` so that a diff that sets a value to `null` is not
//!   mistaken for one that leaves it alone.
//!
//! Keys the struct does not know are ignored, so a record Propexo extends still parses.
//! Serializing writes back exactly the keys that were present.
//!
//! Field names and types follow the spec: strings (dates included) are `String`, numbers
//! `f64` (amounts are in cents, as the field names say), integers `i64`. A field with a fixed
//! set of values is an enum with an `Unknown(String)` arm that keeps a value this version
//! does not know, e.g. [`LeaseStatus`] for a lease's `status_normalized`.
//!
//! # Names
//!
//! A record is named after its object in the singular: `leases` → [`Lease`],
//! `residents-to-leases` → [`ResidentToLease`], `properties` → [`Property`];
//! [`ObjectType::record_type_name`] gives the name for an object type. A nested object is
//! named `<Owner><Field>` ([`PropertyOfficeHours`]), unless it is another record seen from
//! this one: a lease's `residents_meta_data` are [`ResidentToLease`]s. An enum is named
//! `<Owner><Field>` without a trailing `_normalized` ([`LeaseStatus`],
//! [`ApplicantToApplicationStatus`]).
//!
//! Objects whose records the spec does not describe (40 of the 112, such as the CRM models
//! and `residents-to-events`) have no record type: [`AnyRecord::parse`] returns `Ok(None)`
//! for them.
//!
//! # Examples
//!
//! ```
//! use propexo_webhooks::records::{Lease, LeaseStatus};
//!
//! let previous: Lease = serde_json::from_str(r#"{"status_normalized":"PENDING"}"#)?;
//! let new: Lease = serde_json::from_str(r#"{"status_normalized":"ACTIVE"}"#)?;
//! assert_eq!(previous.status_normalized, Some(Some(LeaseStatus::Pending)));
//! assert!(new.status_normalized == Some(Some(LeaseStatus::Active)));
//! assert_eq!(new.rent_amount_in_cents, None); // not in this diff
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use crate::ObjectType;
use crate::error::{Error, ParseError};

/// A record type generated from Propexo's spec: one per object type that has a record schema.
///
/// The other event-side APIs use it to parse a payload or a diff into the record type asked
/// for, checking that the event's object is that type's [`OBJECT_TYPE`](Record::OBJECT_TYPE).
///
/// # Examples
///
/// ```
/// use propexo_webhooks::records::Lease;
/// use propexo_webhooks::{ObjectType, Record};
///
/// assert_eq!(Lease::OBJECT_TYPE, ObjectType::Leases);
/// assert_eq!(Lease::OBJECT_TYPE.record_type_name(), Some("Lease"));
/// ```
pub trait Record:
    serde::de::DeserializeOwned
    + serde::Serialize
    + Clone
    + fmt::Debug
    + PartialEq
    + Send
    + Sync
    + 'static
{
    /// The object type whose records this type describes.
    const OBJECT_TYPE: ObjectType;
}

/// Defines `AnyRecord` and implements [`Record`] for the records listed in the generated
/// table (`generated.rs`).
macro_rules! define_any_record {
    ($($record:ident => $object:ident,)*) => {
        $(
            impl $crate::records::Record for $record {
                const OBJECT_TYPE: $crate::ObjectType = $crate::ObjectType::$object;
            }
        )*

        /// A record of any object type: what [`AnyRecord::parse`] makes of a record whose
        /// object type is known only at run time.
        ///
        /// Each variant boxes its record, so the enum stays small whatever the record. It
        /// serializes as the record it holds.
        ///
        /// # Examples
        ///
        /// ```
        /// use propexo_webhooks::records::LeaseStatus;
        /// use propexo_webhooks::{AnyRecord, ObjectType};
        ///
        /// let object = ObjectType::parse("leases");
        /// match AnyRecord::parse(&object, r#"{"id":"lease_1","status_normalized":"ACTIVE"}"#)? {
        ///     Some(AnyRecord::Lease(lease)) => {
        ///         assert_eq!(lease.status_normalized, Some(Some(LeaseStatus::Active)));
        ///     }
        ///     other => panic!("expected a lease, got {other:?}"),
        /// }
        /// // Objects without a record type parse to `None`.
        /// assert!(AnyRecord::parse(&ObjectType::parse("parking-spaces"), "{}")?.is_none());
        /// # Ok::<(), propexo_webhooks::Error>(())
        /// ```
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum AnyRecord {
            $(
                #[doc = concat!("A [`", stringify!($record), "`] record.")]
                $record(Box<$record>),
            )*
        }

        impl AnyRecord {
            /// Parses the JSON object `json` (a DATA_NEW payload, one side of a DATA_UPDATE
            /// diff, or a record read from Propexo's API) as the record type of `object`.
            ///
            /// Returns `Ok(None)` when `object` has no record type (an object the spec
            /// describes no record for, or one this version does not know).
            ///
            /// # Errors
            ///
            /// [`Error::InvalidRecord`](crate::Error::InvalidRecord) when `json` is not a JSON object or a field does not
            /// have the spec's type; its [`ParseError::path`](crate::ParseError::path) names the field, and it quotes
            /// nothing from `json`.
            pub fn parse(
                object: &$crate::ObjectType,
                json: &str,
            ) -> Result<Option<AnyRecord>, $crate::Error> {
                Ok(Some(match object {
                    $($crate::ObjectType::$object => {
                        Self::$record(Box::new($crate::records::parse_record("", json)?))
                    })*
                    _ => return Ok(None),
                }))
            }

            /// The object type of the record held.
            pub fn object_type(&self) -> $crate::ObjectType {
                match self {
                    $(Self::$record(_) => $crate::ObjectType::$object,)*
                }
            }
        }

        impl serde::Serialize for AnyRecord {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Self::$record(record) => record.serialize(serializer),)*
                }
            }
        }
    };
}

/// A record type that Propexo's REST API reads one at a time, at
/// [`ObjectType::record_path`] of its [`OBJECT_TYPE`](Record::OBJECT_TYPE) (e.g.
/// `GET /v1/leases/{id}` for [`Lease`]).
///
/// Implemented, by the generator, for exactly the records whose object has a single-record
/// endpoint in Propexo's spec; the API client's typed reads ask for it, so reading a record
/// Propexo cannot read by id (such as [`ResidentToLease`]) does not compile.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::records::{Fetchable, Lease};
/// use propexo_webhooks::Record;
///
/// fn read_path<R: Fetchable>(id: &str) -> Option<String> {
///     R::OBJECT_TYPE.record_path(id)
/// }
/// assert_eq!(read_path::<Lease>("l1").as_deref(), Some("/v1/leases/l1"));
/// ```
pub trait Fetchable: Record {}

/// Implements [`Fetchable`] for the records listed in the generated table (`generated.rs`).
macro_rules! define_fetchable {
    ($($record:ident,)*) => {
        $(impl $crate::records::Fetchable for $record {})*
    };
}

mod generated;

pub use generated::*;

/// An applicant's normalized status (`APPROVED`, `DENIED`, `CANCELED`, `OTHER`, `PENDING`).
///
/// Propexo's spec keeps this status on the link between an applicant and an application
/// (object `applicants-to-applications`, record [`ApplicantToApplication`]), so this is that
/// record's status enum under the name Propexo's documentation uses.
pub type ApplicantStatus = ApplicantToApplicationStatus;

/// Parses `json` as the record `T`, reporting a failure at its JSON path below `base` (e.g.
/// `data.payload`, or empty for a document that is the record itself).
///
/// The document must be a JSON object: serde's derived structs would also read an array,
/// field by field in order, which no Propexo record is.
pub(crate) fn parse_record<T: Record>(base: &str, json: &str) -> Result<T, Error> {
    let what = || {
        let name = T::OBJECT_TYPE.record_type_name().unwrap_or("Propexo");
        format!("a {name} record")
    };
    let start = json.trim_start_matches([' ', '\t', '\n', '\r']);
    if !start.is_empty() && !start.starts_with('{') {
        return Err(Error::InvalidRecord(ParseError::with_reason(
            what(),
            base,
            "expected a JSON object",
        )));
    }
    ParseError::parse_str::<T>(what, base, json).map_err(Error::InvalidRecord)
}
