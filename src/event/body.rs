//! The typed body of each trigger.

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json::{Change, Field, JsonObject, RawJson};
use super::kinds::{Vendor, WriteStatus};
use crate::records::parse_record;
use crate::{Error, ObjectType, Record};

/// The `meta` object that Propexo puts beside the data of DATA_NEW and DATA_UPDATE events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Meta {
    /// The record's object type, e.g. `leases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectType>,
    /// Propexo's id of the integration the record belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
}

/// A new record (`DATA_NEW`).
///
/// The payload can be partial: absent keys are unknown, not empty. Propexo recommends treating
/// the event as a notification and fetching the full record (see
/// [`ObjectType::record_path`]); one record can produce a partial DATA_NEW followed by several
/// DATA_UPDATEs as it is filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DataNew {
    /// Propexo's id of the job that found the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Propexo's id of the job that started the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_job_id: Option<String>,
    /// Propexo's id of the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The kind of job, e.g. `READ_LEASES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// The property management system the record comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Propexo's id of the new record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The record's object type, e.g. `leases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectType>,
    /// The new record, possibly partial.
    pub payload: JsonObject,
    /// Free-form context, e.g. `property_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    /// The `meta` object sent beside the data, if any.
    #[serde(skip)]
    pub meta: Option<Meta>,
}

/// A changed record (`DATA_UPDATE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DataUpdate {
    /// Propexo's id of the job that saw the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Propexo's id of the job that started the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_job_id: Option<String>,
    /// Propexo's id of the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The kind of job, e.g. `READ_LEASES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// The property management system the record comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Propexo's id of the changed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// The record's object type, e.g. `leases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectType>,
    /// What changed: the changed keys only, before and after.
    pub diff: Diff,
    /// Free-form context, e.g. `property_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    /// The `meta` object sent beside the data, if any.
    #[serde(skip)]
    pub meta: Option<Meta>,
}

/// The `diff` of a DATA_UPDATE: the changed keys, with their previous and new values.
///
/// Only changed keys appear (a `last_seen` change counts). A key absent from a side is unknown
/// there; a key that is `null` was empty. [`Diff::change`] keeps the two apart.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{Diff, Field};
///
/// let diff: Diff = serde_json::from_str(
///     r#"{"previous":{"status":"pending","notes":"x"},"new":{"status":"approved","notes":null}}"#,
/// )?;
/// let status = diff.change_as::<String>("status")?.unwrap();
/// assert!(status.is_from_to(&"pending".into(), &"approved".into()));
/// assert!(diff.change("notes").unwrap().is_cleared());
/// assert!(diff.change("rent").is_none());
/// assert_eq!(diff.changed_fields().collect::<Vec<_>>(), ["status", "notes"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Diff {
    /// The changed keys after the change (`{}` if Propexo sent none).
    pub new: JsonObject,
    /// The changed keys before the change (`{}` if Propexo sent none).
    pub previous: JsonObject,
    /// The object type of the event this diff came with, for checked record access.
    #[serde(skip)]
    pub(crate) object: Option<ObjectType>,
}

impl<'de> Deserialize<'de> for Diff {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A side that is absent or `null` is an empty object.
        #[derive(Deserialize)]
        #[serde(rename = "Diff")]
        struct Sides {
            #[serde(default)]
            new: Option<JsonObject>,
            #[serde(default)]
            previous: Option<JsonObject>,
        }

        let sides = Sides::deserialize(deserializer)?;
        let side = |side: Option<JsonObject>| match side {
            Some(object) => Ok(object),
            None => JsonObject::empty().map_err(de::Error::custom),
        };
        Ok(Self {
            new: side(sides.new)?,
            previous: side(sides.previous)?,
            object: None,
        })
    }
}

impl Diff {
    /// How `field` changed, or `None` if it is in neither side.
    pub fn change(&self, field: &str) -> Option<Change<RawJson<'_>>> {
        let change = Change {
            previous: self.previous.get(field),
            new: self.new.get(field),
        };
        (!(change.previous.is_absent() && change.new.is_absent())).then_some(change)
    }

    /// How `field` changed, with both sides parsed into `T`; `None` if it is in neither side.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if a side does not fit `T`.
    pub fn change_as<T: DeserializeOwned>(&self, field: &str) -> Result<Option<Change<T>>, Error> {
        let previous = self.previous.get_as(field)?;
        let new = self.new.get_as(field)?;
        Ok((!(previous.is_absent() && new.is_absent())).then_some(Change { previous, new }))
    }

    /// Whether `field` went from `previous` to `new`. A side that is absent, `null`, or does not
    /// parse as `T` is not equal to anything, so this never fails.
    pub fn changed_from_to<T: DeserializeOwned + PartialEq>(
        &self,
        field: &str,
        previous: &T,
        new: &T,
    ) -> bool {
        self.change_as::<T>(field)
            .ok()
            .flatten()
            .is_some_and(|change| change.is_from_to(previous, new))
    }

    /// The changed keys: those of the new side in order, then those only in the previous side.
    pub fn changed_fields(&self) -> impl Iterator<Item = &str> + '_ {
        self.new.keys().chain(
            self.previous
                .keys()
                .filter(|key| !self.new.contains_key(key)),
        )
    }

    /// The new side as the record type `R`: the changed fields set, every other field `None`.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectMismatch`] if the event is not about `R`'s object type;
    /// [`Error::InvalidRecord`] if a field does not have the spec's type.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::WebhookEvent;
    /// use propexo_webhooks::records::{Lease, LeaseStatus};
    ///
    /// let event: WebhookEvent = r#"{"event":"DATA_UPDATE","object":"leases","diff":{"previous":{"status_normalized":"PENDING"},"new":{"status_normalized":"ACTIVE"}}}"#.parse()?;
    /// let WebhookEvent::DataUpdate(update) = &event else { unreachable!() };
    /// let (previous, new) = (update.diff.previous_as::<Lease>()?, update.diff.new_as::<Lease>()?);
    /// assert!(previous.status_normalized == Some(Some(LeaseStatus::Pending))
    ///     && new.status_normalized == Some(Some(LeaseStatus::Active)));
    /// # Ok::<(), propexo_webhooks::Error>(())
    /// ```
    pub fn new_as<R: Record>(&self) -> Result<R, Error> {
        check_object::<R>(self.object.as_ref())?;
        parse_record("diff.new", self.new.as_str())
    }

    /// The previous side as the record type `R`. See [`Diff::new_as`].
    ///
    /// # Errors
    ///
    /// As [`Diff::new_as`].
    pub fn previous_as<R: Record>(&self) -> Result<R, Error> {
        check_object::<R>(self.object.as_ref())?;
        parse_record("diff.previous", self.previous.as_str())
    }

    /// Every change, in the order of [`Diff::changed_fields`].
    pub fn changes(&self) -> impl Iterator<Item = (&str, Change<RawJson<'_>>)> + '_ {
        self.changed_fields().map(|field| {
            (
                field,
                Change {
                    previous: self.previous.get(field),
                    new: self.new.get(field),
                },
            )
        })
    }
}

/// Checks that an event about `found` may be read as the record type `R`.
fn check_object<R: Record>(found: Option<&ObjectType>) -> Result<(), Error> {
    if found == Some(&R::OBJECT_TYPE) {
        Ok(())
    } else {
        Err(Error::ObjectMismatch {
            expected: R::OBJECT_TYPE,
            found: found.cloned(),
        })
    }
}

impl DataUpdate {
    /// The object type of the changed record, from the data or from `meta`.
    pub fn object_type(&self) -> Option<&ObjectType> {
        self.object
            .as_ref()
            .or_else(|| self.meta.as_ref().and_then(|meta| meta.object.as_ref()))
    }
}

impl DataNew {
    /// The object type of the new record, from the data or from `meta`.
    pub fn object_type(&self) -> Option<&ObjectType> {
        self.object
            .as_ref()
            .or_else(|| self.meta.as_ref().and_then(|meta| meta.object.as_ref()))
    }

    /// The payload as the record type `R` (possibly partial: absent keys are `None`).
    ///
    /// # Errors
    ///
    /// [`Error::ObjectMismatch`] if the event is not about `R`'s object type;
    /// [`Error::InvalidRecord`] if a field does not have the spec's type.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::{Error, WebhookEvent};
    /// use propexo_webhooks::records::{Lease, Resident};
    ///
    /// let event: WebhookEvent = r#"{"event":"DATA_NEW","object":"leases","payload":{"id":"lease_1","rent_amount_in_cents":185000}}"#.parse()?;
    /// let WebhookEvent::DataNew(new) = &event else { unreachable!() };
    /// let lease: Lease = new.payload_as()?;
    /// assert_eq!(lease.rent_amount_in_cents, Some(Some(185000.0)));
    /// assert!(matches!(new.payload_as::<Resident>(), Err(Error::ObjectMismatch { .. })));
    /// # Ok::<(), propexo_webhooks::Error>(())
    /// ```
    pub fn payload_as<R: Record>(&self) -> Result<R, Error> {
        check_object::<R>(self.object_type())?;
        parse_record("payload", self.payload.as_str())
    }

    /// The value of `field` in the payload, parsed into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] if the value does not fit `T`.
    pub fn field_as<T: DeserializeOwned>(&self, field: &str) -> Result<Field<T>, Error> {
        self.payload.get_as(field)
    }
}

/// A finished sync (`SYNC_COMPLETE` and `FIRST_SYNC_COMPLETE`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncComplete {
    /// Propexo's id of the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The property management system synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Number of jobs of the sync that succeeded.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub successful_job_count: Option<u64>,
    /// Number of jobs of the sync that failed.
    #[serde(
        default,
        deserialize_with = "count",
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_job_count: Option<u64>,
    /// Whether the sync is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_sync_finished: Option<bool>,
    /// Propexo's id of the sync schedule; `None` for a manual sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_schedule_id: Option<String>,
    /// Whether this was a backsync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_backsync: Option<bool>,
    /// The models synced, when Propexo lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_synced: Option<Vec<ObjectType>>,
}

/// An integration job that ended (`JOB_FAILURE` and `JOB_SUCCESS`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Propexo's id of the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Propexo's id of the job that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_job_id: Option<String>,
    /// Propexo's id of the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The kind of job, e.g. `READ_RESIDENT_TRANSACTIONS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// The property management system the job talked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
}

/// A write to the property management system that failed fully or partly
/// (`WRITE_OPERATION_FAILURE`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriteOperationFailure {
    /// Propexo's id of the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The property management system written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Vendor>,
    /// Propexo's id of the write operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_job_id: Option<String>,
    /// Whether part of the write was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_status: Option<WriteStatus>,
    /// What went wrong, as Propexo reports it.
    #[serde(
        default,
        deserialize_with = "list_or_null",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub errors: Vec<String>,
}

/// Reads a count documented as a number: `49` and `49.0` are both 49; `null` is none.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct CountVisitor;

    impl<'de> Visitor<'de> for CountVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            u64::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            // Whole numbers up to 2^53 are exact in an f64.
            const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
            if value.fract() == 0.0 && (0.0..=MAX_EXACT).contains(&value) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(Some(value as u64))
            } else {
                Err(E::invalid_value(de::Unexpected::Float(value), &self))
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(CountVisitor)
        }
    }

    deserializer.deserialize_option(CountVisitor)
}

/// Reads a list where `null` means empty.
fn list_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}
