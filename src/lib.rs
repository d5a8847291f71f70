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

#[cfg(feature = "api")]
mod api;
mod diagnostics;
mod dispatch;
mod error;
mod event;
#[cfg(any(
    feature = "axum",
    feature = "actix-web",
    feature = "sqlite",
    feature = "postgres",
    feature = "nats"
))]
mod inbox;
#[cfg(any(
    feature = "axum",
    feature = "actix-web",
    feature = "sqlite",
    feature = "postgres",
    feature = "nats"
))]
mod log;
mod object_type;
#[cfg(any(feature = "axum", feature = "actix-web"))]
mod receiver;
pub mod records;
mod signature;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod wire_enum;

#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub use api::{
    API_KEY_ENV, ApiClient, ApiClientBuilder, ApiError, FetchedRecord, PRODUCTION_API_URL,
    PropexoError, SANDBOX_API_URL,
};
pub use diagnostics::{Diagnosis, MalformedReason, diagnose};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use dispatch::MemoryIdempotencyStore;
pub use dispatch::{
    BoxError, BoxFuture, Claim, DedupPolicy, Delivery, DeliveryKey, Dispatcher, Handler,
    HandlerError, HandlerErrors, IdempotencyStore, IsAsync, IsSync, Malformed, MalformedDelivery,
    NewRecord, Outcome, UpdatedRecord, VerifiedBody,
};
pub use error::{Error, ParseError};
pub use event::{
    Change, CommonFields, DataNew, DataUpdate, Diff, EventType, Field, Job, JsonObject, Meta,
    RawJson, SyncComplete, UnknownEvent, Vendor, WebhookEvent, WriteOperationFailure, WriteStatus,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use inbox::SqliteInbox;
#[cfg(any(
    feature = "axum",
    feature = "actix-web",
    feature = "sqlite",
    feature = "postgres",
    feature = "nats"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "axum",
        feature = "actix-web",
        feature = "sqlite",
        feature = "postgres",
        feature = "nats"
    )))
)]
pub use inbox::{
    DeadLetter, Inbox, InboxError, InboxStats, Lease, Leased, MemoryInbox, Retry, Stored,
    StoredDelivery, WorkerConfig, Workers,
};
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use inbox::{NatsInbox, NatsInboxBuilder, NatsSetupError};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use inbox::{PostgresInbox, PostgresInboxBuilder};
pub use object_type::ObjectType;
#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub use receiver::actix;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use receiver::axum;
#[cfg(any(feature = "axum", feature = "actix-web"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "axum", feature = "actix-web"))))]
pub use receiver::{DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, Receiver, WebhookRejection};
pub use records::{AnyRecord, Record};
pub use signature::{
    MIN_SECRET_LEN, SIGNATURE_HEADER, Secret, Signature, Verified, Verifier, sign, verify_signature,
};
