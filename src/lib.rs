#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod diagnostics;
mod dispatch;
mod error;
mod event;
mod object_type;
mod signature;
mod wire_enum;

pub use diagnostics::{Diagnosis, MalformedReason, diagnose};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use dispatch::MemoryIdempotencyStore;
pub use dispatch::{
    BoxError, BoxFuture, Claim, Delivery, DeliveryKey, Dispatcher, Handler, HandlerError,
    HandlerErrors, IdempotencyStore, IsAsync, IsSync, Malformed, MalformedDelivery, Outcome,
    VerifiedBody,
};
pub use error::{Error, ParseError};
pub use event::{
    Change, CommonFields, DataNew, DataUpdate, Diff, EventType, Field, Job, JsonObject, Meta,
    RawJson, SyncComplete, UnknownEvent, Vendor, WebhookEvent, WriteOperationFailure, WriteStatus,
};
pub use object_type::ObjectType;
pub use signature::{
    MIN_SECRET_LEN, SIGNATURE_HEADER, Secret, Signature, Verified, Verifier, sign, verify_signature,
};
