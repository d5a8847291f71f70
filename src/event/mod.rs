//! What happened: the typed Propexo event, parsed from any of its documented shapes.

mod body;
mod fast;
mod json;
mod kinds;

use std::borrow::Cow;
use std::str::FromStr;

use serde::de::IgnoredAny;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub use body::{DataNew, DataUpdate, Diff, Job, Meta, SyncComplete, WriteOperationFailure};
pub(crate) use json::IndexError;
pub use json::{Change, Field, JsonObject, RawJson};
pub use kinds::{EventType, Vendor, WriteStatus};

use crate::error::ParseError;
use crate::{Error, ObjectType};

/// A Propexo webhook event, one variant per trigger.
///
/// Parse it from the raw body *after* verifying the signature, with [`WebhookEvent::from_slice`]
/// (or `serde_json::from_slice`). Every shape Propexo documents parses to the same value:
///
/// 1. the envelope `{"trigger": "DATA_UPDATE", "data": {"event": "DATA_UPDATE", ...}, "meta": {...}}`;
/// 2. the envelope without `trigger` (the type comes from `data.event`);
/// 3. the flat form, with the data fields at the top level, `event` naming the trigger and
///    `meta` beside them;
/// 4. the simplified form `{"meta": {...}, "record_id": ..., "diff": {...}}` with no trigger at
///    all: a `diff` means DATA_UPDATE, a `payload` means DATA_NEW.
///
/// When `trigger` and `data.event` disagree, `trigger` wins. Unknown fields are ignored. A
/// trigger this version does not know becomes [`WebhookEvent::Unknown`], keeping the raw JSON.
/// A known trigger whose fields do not have the documented types is an error
/// ([`Error::InvalidEvent`]) that names the trigger and the JSON path, never a silent default.
///
/// Serializing writes the envelope form (shape 1), which parses back to the same value.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{EventType, ObjectType, WebhookEvent};
///
/// let body = br#"{"meta":{"object":"leases","integration_id":"cuid_1234567890"},"record_id":"cuid_1234567890","diff":{"previous":{"status":"pending"},"new":{"status":"approved"}}}"#;
/// let event = WebhookEvent::from_slice(body)?;
/// assert_eq!(event.event_type(), EventType::DataUpdate);
/// assert_eq!(event.object(), Some(&ObjectType::Leases));
/// if let WebhookEvent::DataUpdate(update) = &event {
///     assert!(update.diff.changed_from_to("status", &"pending".to_owned(), &"approved".to_owned()));
/// }
/// # Ok::<(), propexo_webhooks::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `DATA_NEW`: a new record.
    DataNew(DataNew),
    /// `DATA_UPDATE`: a changed record.
    DataUpdate(DataUpdate),
    /// `SYNC_COMPLETE`: a periodic or on-demand sync finished.
    SyncComplete(SyncComplete),
    /// `FIRST_SYNC_COMPLETE`: the initial sync finished.
    FirstSyncComplete(SyncComplete),
    /// `JOB_FAILURE`: a job failed after its retries.
    JobFailure(Job),
    /// `JOB_SUCCESS`: a job succeeded.
    JobSuccess(Job),
    /// `WRITE_OPERATION_FAILURE`: a write to the property management system failed.
    WriteOperationFailure(WriteOperationFailure),
    /// A trigger this version of the crate does not know.
    Unknown(UnknownEvent),
}

/// An event whose trigger this version of the crate does not know, kept whole.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnknownEvent {
    /// The trigger name, as received.
    pub trigger: String,
    /// The whole body, as received.
    pub raw: Box<RawValue>,
    /// The identifiers found where known triggers keep them, when they are strings.
    pub common: CommonFields,
}

impl PartialEq for UnknownEvent {
    fn eq(&self, other: &Self) -> bool {
        self.trigger == other.trigger
            && self.common == other.common
            && (self.raw.get() == other.raw.get()
                || serde_json::from_str::<serde_json::Value>(self.raw.get()).ok()
                    == serde_json::from_str::<serde_json::Value>(other.raw.get()).ok())
    }
}

/// Identifiers read from an event of an unknown trigger, wherever they are strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CommonFields {
    /// `integration_id` (or `meta.integration_id`).
    pub integration_id: Option<String>,
    /// `vendor`.
    pub vendor: Option<Vendor>,
    /// `object` (or `meta.object`).
    pub object: Option<ObjectType>,
    /// `record_id`.
    pub record_id: Option<String>,
    /// `job_id`.
    pub job_id: Option<String>,
    /// `root_job_id`.
    pub root_job_id: Option<String>,
}

impl WebhookEvent {
    /// Parses a raw request body.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] if the body is not UTF-8 JSON, not an object, or a known
    /// trigger with fields of the wrong type; [`Error::MissingTrigger`] if nothing in it says
    /// which trigger it is.
    pub fn from_slice(body: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(body).map_err(|_| {
            Error::InvalidEvent(ParseError::with_reason(
                "a webhook body",
                "",
                "the body is not valid UTF-8",
            ))
        })?;
        Self::parse_str(text)
    }

    fn parse_str(text: &str) -> Result<Self, Error> {
        fast::envelope(text).map_or_else(|| Self::parse_general(text), Ok)
    }

    /// Reads every documented shape: finds the trigger first, then reads its typed body.
    fn parse_general(text: &str) -> Result<Self, Error> {
        if !text.trim_start().starts_with('{') {
            return Err(Error::InvalidEvent(ParseError::with_reason(
                "a webhook body",
                "",
                "expected a JSON object",
            )));
        }
        let top: Probe<'_> = ParseError::parse_str(|| "a webhook body".to_owned(), "", text)
            .map_err(Error::InvalidEvent)?;

        // In the envelope the fields are under `data`; otherwise at the top level.
        let data = top.data.filter(|data| data.get().starts_with('{'));
        let (fields, base) = match data {
            Some(data) => (data.get(), "data"),
            None => (text, ""),
        };
        let trigger = match (top.trigger, data) {
            (Some(trigger), _) => trigger,
            (None, None) => match top.event {
                Some(event) => event,
                None => infer_trigger(top.diff.is_some(), top.payload.is_some())?,
            },
            (None, Some(data)) => {
                let data: Probe<'_> =
                    ParseError::parse_str(|| "a webhook body".to_owned(), base, data.get())
                        .map_err(Error::InvalidEvent)?;
                match data.event.or(top.event) {
                    Some(event) => event,
                    None => infer_trigger(data.diff.is_some(), data.payload.is_some())?,
                }
            }
        };

        let event_type = EventType::parse(&trigger);
        if !event_type.is_unknown() && top.data.is_some() && data.is_none() {
            return Err(Error::InvalidEvent(ParseError::with_reason(
                format!("a {trigger} event"),
                "data",
                "expected a JSON object",
            )));
        }
        let body = || Body {
            trigger: &trigger,
            base,
            fields,
        };
        Ok(match event_type {
            EventType::DataNew => {
                let mut body: DataNew = body().parse()?;
                body.meta = top.meta;
                Self::DataNew(body)
            }
            EventType::DataUpdate => {
                let mut body: DataUpdate = body().parse()?;
                body.meta = top.meta;
                body.diff.object = body.object_type().cloned();
                Self::DataUpdate(body)
            }
            EventType::SyncComplete => Self::SyncComplete(body().parse()?),
            EventType::FirstSyncComplete => Self::FirstSyncComplete(body().parse()?),
            EventType::JobFailure => Self::JobFailure(body().parse()?),
            EventType::JobSuccess => Self::JobSuccess(body().parse()?),
            EventType::WriteOperationFailure => Self::WriteOperationFailure(body().parse()?),
            EventType::Unknown(trigger) => {
                let raw = RawValue::from_string(text.to_owned()).map_err(|err| {
                    Error::InvalidEvent(ParseError::new("a webhook body", "", &err))
                })?;
                let common = common_fields(fields, top.meta.as_ref());
                Self::Unknown(UnknownEvent {
                    trigger,
                    raw,
                    common,
                })
            }
        })
    }

    /// The trigger of this event.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::DataNew(_) => EventType::DataNew,
            Self::DataUpdate(_) => EventType::DataUpdate,
            Self::SyncComplete(_) => EventType::SyncComplete,
            Self::FirstSyncComplete(_) => EventType::FirstSyncComplete,
            Self::JobFailure(_) => EventType::JobFailure,
            Self::JobSuccess(_) => EventType::JobSuccess,
            Self::WriteOperationFailure(_) => EventType::WriteOperationFailure,
            Self::Unknown(unknown) => EventType::Unknown(unknown.trigger.clone()),
        }
    }

    /// Propexo's id of the integration, from the data or from `meta`.
    pub fn integration_id(&self) -> Option<&str> {
        match self {
            Self::DataNew(body) => body
                .integration_id
                .as_deref()
                .or_else(|| meta_integration_id(body.meta.as_ref())),
            Self::DataUpdate(body) => body
                .integration_id
                .as_deref()
                .or_else(|| meta_integration_id(body.meta.as_ref())),
            Self::SyncComplete(body) | Self::FirstSyncComplete(body) => {
                body.integration_id.as_deref()
            }
            Self::JobFailure(body) | Self::JobSuccess(body) => body.integration_id.as_deref(),
            Self::WriteOperationFailure(body) => body.integration_id.as_deref(),
            Self::Unknown(unknown) => unknown.common.integration_id.as_deref(),
        }
    }

    /// The property management system involved.
    pub fn vendor(&self) -> Option<&Vendor> {
        match self {
            Self::DataNew(body) => body.vendor.as_ref(),
            Self::DataUpdate(body) => body.vendor.as_ref(),
            Self::SyncComplete(body) | Self::FirstSyncComplete(body) => body.vendor.as_ref(),
            Self::JobFailure(body) | Self::JobSuccess(body) => body.vendor.as_ref(),
            Self::WriteOperationFailure(body) => body.vendor.as_ref(),
            Self::Unknown(unknown) => unknown.common.vendor.as_ref(),
        }
    }

    /// The record's object type (data events), from the data or from `meta`.
    pub fn object(&self) -> Option<&ObjectType> {
        match self {
            Self::DataNew(body) => body.object_type(),
            Self::DataUpdate(body) => body.object_type(),
            Self::Unknown(unknown) => unknown.common.object.as_ref(),
            _ => None,
        }
    }

    /// Propexo's id of the record (data events).
    pub fn record_id(&self) -> Option<&str> {
        match self {
            Self::DataNew(body) => body.record_id.as_deref(),
            Self::DataUpdate(body) => body.record_id.as_deref(),
            Self::Unknown(unknown) => unknown.common.record_id.as_deref(),
            _ => None,
        }
    }

    /// Propexo's id of the job (data and job events).
    pub fn job_id(&self) -> Option<&str> {
        match self {
            Self::DataNew(body) => body.job_id.as_deref(),
            Self::DataUpdate(body) => body.job_id.as_deref(),
            Self::JobFailure(body) | Self::JobSuccess(body) => body.job_id.as_deref(),
            Self::Unknown(unknown) => unknown.common.job_id.as_deref(),
            _ => None,
        }
    }

    /// Propexo's id of the job that started the sync or write (data, job and write events).
    pub fn root_job_id(&self) -> Option<&str> {
        match self {
            Self::DataNew(body) => body.root_job_id.as_deref(),
            Self::DataUpdate(body) => body.root_job_id.as_deref(),
            Self::JobFailure(body) | Self::JobSuccess(body) => body.root_job_id.as_deref(),
            Self::WriteOperationFailure(body) => body.root_job_id.as_deref(),
            Self::Unknown(unknown) => unknown.common.root_job_id.as_deref(),
            _ => None,
        }
    }

    /// The payload of a DATA_NEW event as the record type `R`; `Ok(None)` for other events.
    /// See [`DataNew::payload_as`].
    ///
    /// # Errors
    ///
    /// As [`DataNew::payload_as`].
    pub fn payload_as<R: crate::Record>(&self) -> Result<Option<R>, Error> {
        match self {
            Self::DataNew(new) => new.payload_as().map(Some),
            _ => Ok(None),
        }
    }

    /// The `meta` object sent beside the data (data events).
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Self::DataNew(body) => body.meta.as_ref(),
            Self::DataUpdate(body) => body.meta.as_ref(),
            _ => None,
        }
    }
}

fn meta_integration_id(meta: Option<&Meta>) -> Option<&str> {
    meta.and_then(|meta| meta.integration_id.as_deref())
}

fn meta_object(meta: Option<&Meta>) -> Option<&ObjectType> {
    meta.and_then(|meta| meta.object.as_ref())
}

/// The simplified form names no trigger: a `diff` means DATA_UPDATE, a `payload` DATA_NEW.
fn infer_trigger<'a>(has_diff: bool, has_payload: bool) -> Result<Cow<'a, str>, Error> {
    match (has_diff, has_payload) {
        (true, _) => Ok(Cow::Borrowed("DATA_UPDATE")),
        (false, true) => Ok(Cow::Borrowed("DATA_NEW")),
        (false, false) => Err(Error::MissingTrigger),
    }
}

/// The fields of a known trigger, ready to be parsed into its body type.
struct Body<'a> {
    trigger: &'a str,
    base: &'static str,
    fields: &'a str,
}

impl<'a> Body<'a> {
    fn parse<T: Deserialize<'a>>(&self) -> Result<T, Error> {
        ParseError::parse_str(
            || format!("a {} event", self.trigger),
            self.base,
            self.fields,
        )
        .map_err(Error::InvalidEvent)
    }
}

/// The keys that say which shape and trigger a body has; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, borrow)]
    trigger: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    diff: Option<IgnoredAny>,
    #[serde(default)]
    payload: Option<IgnoredAny>,
}

/// Reads the usual identifiers of an unknown event, keeping only those that are strings.
fn common_fields(fields: &str, meta: Option<&Meta>) -> CommonFields {
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Loose {
        integration_id: Loosely<String>,
        vendor: Loosely<String>,
        object: Loosely<String>,
        record_id: Loosely<String>,
        job_id: Loosely<String>,
        root_job_id: Loosely<String>,
    }

    let loose: Loose = serde_json::from_str(fields).unwrap_or_default();
    CommonFields {
        integration_id: loose
            .integration_id
            .0
            .or_else(|| meta_integration_id(meta).map(str::to_owned)),
        vendor: loose.vendor.0.map(|vendor| Vendor::parse(&vendor)),
        object: loose
            .object
            .0
            .map(|object| ObjectType::parse(&object))
            .or_else(|| meta_object(meta).cloned()),
        record_id: loose.record_id.0,
        job_id: loose.job_id.0,
        root_job_id: loose.root_job_id.0,
    }
}

/// A value kept only when it deserializes as `T`; anything else is skipped.
struct Loosely<T>(Option<T>);

impl<T> Default for Loosely<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loosely<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        Ok(Self(serde_json::from_str(raw.get()).ok()))
    }
}

impl FromStr for WebhookEvent {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse_str(text)
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Self::parse_str(raw.get()).map_err(serde::de::Error::custom)
    }
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The `data` object: the body with `event` first.
        #[derive(Serialize)]
        struct Data<'a, T> {
            event: &'a str,
            #[serde(flatten)]
            body: &'a T,
        }

        fn envelope<S: Serializer, T: Serialize>(
            serializer: S,
            trigger: &str,
            body: &T,
            meta: Option<&Meta>,
        ) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("trigger", trigger)?;
            map.serialize_entry(
                "data",
                &Data {
                    event: trigger,
                    body,
                },
            )?;
            if let Some(meta) = meta {
                map.serialize_entry("meta", meta)?;
            }
            map.end()
        }

        let trigger = self.event_type();
        let trigger = trigger.as_str();
        match self {
            Self::DataNew(body) => envelope(serializer, trigger, body, body.meta.as_ref()),
            Self::DataUpdate(body) => envelope(serializer, trigger, body, body.meta.as_ref()),
            Self::SyncComplete(body) | Self::FirstSyncComplete(body) => {
                envelope(serializer, trigger, body, None)
            }
            Self::JobFailure(body) | Self::JobSuccess(body) => {
                envelope(serializer, trigger, body, None)
            }
            Self::WriteOperationFailure(body) => envelope(serializer, trigger, body, None),
            Self::Unknown(unknown) => unknown.raw.serialize(serializer),
        }
    }
}
