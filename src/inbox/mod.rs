//! Persist, then acknowledge: inboxes that store verified deliveries before the receiver answers,
//! and the workers that hand them to the [`Dispatcher`](crate::Dispatcher).
//!
//! One intake model: a verified delivery goes to one place before the answer. Either the
//! dispatcher runs at once ([`Receiver::new`](crate::Receiver::new)), or the delivery is stored
//! in an [`Inbox`] and answered `202 Accepted` once it is stored
//! ([`Receiver::with_inbox`](crate::Receiver::with_inbox)). [`Workers`] then lease stored
//! deliveries, run the same dispatcher, and retry failures themselves with exponential backoff
//! and jitter; after [`WorkerConfig::max_attempts`] a delivery becomes a dead letter, kept with
//! its raw body and signature, to be listed, inspected, requeued or deleted.
//!
//! | inbox | feature | survives | shared by |
//! |---|---|---|---|
//! | [`MemoryInbox`] | `axum` or `actix-web` (tokio) | nothing: a crash loses what it holds | one process |
//! | `SqliteInbox` | `sqlite` | a crash and a power loss (WAL, `synchronous=FULL`) | one machine |
//! | `PostgresInbox` | `postgres` | what the database survives | every replica using the database |
//! | `NatsInbox` | `nats` | what the JetStream stream survives (see its durability note) | every receiver and worker on the NATS system |

mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

pub use memory::MemoryInbox;
#[cfg(feature = "nats")]
pub use nats::{NatsInbox, NatsInboxBuilder, NatsSetupError};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresInbox, PostgresInboxBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteInbox;
pub use worker::{WorkerConfig, Workers};

use crate::{BoxError, BoxFuture, DeliveryKey, Signature, Verified, VerifiedBody};

/// A store of verified deliveries with leases: what a receiver writes to before it answers, and
/// what [`Workers`] take work from.
///
/// The life of a delivery: [`store`](Self::store) makes it *pending*; [`claim`](Self::claim)
/// leases it to one worker (*in flight*) and counts an attempt; the worker
/// [`heartbeat`](Self::heartbeat)s while its handlers run, then [`complete`](Self::complete)s it
/// (*done*, remembered for its de-duplication window) or [`fail`](Self::fail)s it (*pending*
/// again after a backoff, or *dead*). A lease that expires (its worker died) is returned by
/// [`sweep`](Self::sweep). Every call about a leased delivery carries its [`Lease`]: a stale
/// worker whose lease expired and was taken over changes nothing.
///
/// Implementations must make `store` durable before it returns `Ok` (the receiver answers 2xx
/// right after), make `claim` atomic (two workers never hold one delivery), and treat a stored
/// delivery as verified: only [`VerifiedBody`]s can be stored through this trait, so whoever can
/// write to the store directly is trusted like the receiver itself.
pub trait Inbox: Send + Sync + 'static {
    /// Stores a verified delivery, or recognises it (by its [`DeliveryKey`]) as stored already.
    fn store<'a>(&'a self, delivery: &'a VerifiedBody)
    -> BoxFuture<'a, Result<Stored, InboxError>>;

    /// Leases up to `limit` deliveries that are due, for `lease`, counting one attempt each.
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>>;

    /// Extends a lease by `lease` from now. `Ok(false)`: the lease is no longer this worker's.
    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// The handlers succeeded: the delivery is done, and a copy stored within `window` from now
    /// is a duplicate. `Ok(false)`: the lease is no longer this worker's; nothing changed.
    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// The handlers failed: retry later, or give up. `Ok(false)`: the lease is no longer this
    /// worker's; nothing changed.
    fn fail<'a>(&'a self, lease: &'a Lease, next: Retry)
    -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Returns deliveries whose lease expired to pending (due at once), or makes them dead
    /// letters when they have had `max_attempts` attempts. Returns how many it touched.
    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>>;

    /// Forgets done deliveries whose de-duplication window ended more than `retention` ago.
    /// Returns how many it removed.
    fn purge(&self, retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>>;

    /// How many deliveries are pending, in flight, done and dead.
    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>>;

    /// Dead letters, oldest death first, at most `limit`.
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>>;

    /// One dead letter, if `key` is dead.
    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>>;

    /// Makes a dead letter pending again, with its attempts reset. `Ok(false)`: not dead.
    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Deletes a dead letter for good. `Ok(false)`: not dead.
    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Resolves when new work may be there (a wake-up hint: workers poll anyway). The default
    /// never resolves, leaving the workers to their polling.
    fn notified(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

impl<I: Inbox + ?Sized> Inbox for Arc<I> {
    fn store<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
    ) -> BoxFuture<'a, Result<Stored, InboxError>> {
        (**self).store(delivery)
    }
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>> {
        (**self).claim(limit, lease)
    }
    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        (**self).heartbeat(lease, duration)
    }
    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        (**self).complete(lease, window)
    }
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        next: Retry,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        (**self).fail(lease, next)
    }
    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>> {
        (**self).sweep(max_attempts)
    }
    fn purge(&self, retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>> {
        (**self).purge(retention)
    }
    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>> {
        (**self).stats()
    }
    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>> {
        (**self).dead_letters(limit)
    }
    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>> {
        (**self).dead_letter(key)
    }
    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        (**self).requeue(key)
    }
    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        (**self).delete(key)
    }
    fn notified(&self) -> BoxFuture<'_, ()> {
        (**self).notified()
    }
}

/// What [`Inbox::store`] did with a delivery. Each is safe to acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored {
    /// Stored now: it will be handled.
    New,
    /// The same delivery is stored already and not yet done (pending, in flight, or a dead
    /// letter waiting for an operator): nothing was written.
    AlreadyStored,
    /// The same delivery was handled within its de-duplication window: nothing was written.
    Duplicate,
}

/// Identifies one lease of one delivery: the key and a claim id drawn for this lease alone, so
/// a worker whose lease expired and was taken over cannot settle the new owner's attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The delivery.
    pub key: DeliveryKey,
    /// This lease's fencing token.
    pub claim_id: u64,
}

impl Lease {
    /// A lease with a fresh random claim id.
    pub fn new(key: DeliveryKey) -> Self {
        // Never 0, so a column default of 0 never matches a live lease.
        Self {
            key,
            claim_id: fastrand::u64(1..),
        }
    }
}

/// A delivery leased to a worker.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Leased {
    /// The lease to settle it with.
    pub lease: Lease,
    /// The delivery as it was stored.
    pub delivery: StoredDelivery,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// What the handlers' failure leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Pending again, due after this long.
    After {
        /// The backoff.
        delay: Duration,
        /// Why the attempt failed, kept for operators.
        reason: String,
    },
    /// A dead letter, for an operator.
    Dead {
        /// Why it was given up.
        reason: String,
    },
}

/// A verified delivery as an inbox keeps it: the raw body, the verified signature, which secret
/// verified it, and the request headers worth keeping.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// The raw body, exactly as received.
    pub body: Bytes,
    /// The `propexo-signature` value that verified it, as lowercase hex.
    pub signature: String,
    /// Position of the secret that matched.
    pub secret_index: usize,
    /// Label of the secret that matched.
    pub secret_label: Option<String>,
    /// The request headers, one `name: value` per line, without the signature and the
    /// connection-level ones (see [`StoredDelivery::from_verified`]).
    pub headers: String,
}

/// Headers that describe the connection or are kept elsewhere, not the delivery.
const UNKEPT_HEADERS: [&str; 6] = [
    "propexo-signature",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

impl StoredDelivery {
    /// What an inbox stores of `delivery`: everything but connection-level headers
    /// (`content-length`, `connection`, `transfer-encoding`, ...) and header values that are not
    /// visible ASCII.
    pub fn from_verified(delivery: &VerifiedBody) -> Self {
        let verified = delivery.verified();
        let mut headers = String::new();
        if let Some(map) = delivery.headers() {
            for (name, value) in map {
                if UNKEPT_HEADERS.contains(&name.as_str()) {
                    continue;
                }
                if let Ok(value) = value.to_str() {
                    headers.push_str(name.as_str());
                    headers.push_str(": ");
                    headers.push_str(value);
                    headers.push('\n');
                }
            }
        }
        Self {
            body: delivery.body().clone(),
            signature: verified.signature().to_string(),
            secret_index: verified.index(),
            secret_label: verified.label().map(str::to_owned),
            headers,
        }
    }

    /// The delivery's key: the hash of its body.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey::from_body(&self.body)
    }

    /// The delivery, ready for the dispatcher. It is not verified again: only verified bodies
    /// are stored (see [`Inbox`]). The signature must still be well-formed hex.
    ///
    /// # Errors
    ///
    /// When the stored signature is not a valid `propexo-signature` value: the row was not
    /// written by this crate.
    pub fn to_verified(&self) -> Result<VerifiedBody, crate::Error> {
        let signature = Signature::parse(&self.signature)?;
        let verified = Verified::restored(
            self.secret_index,
            self.secret_label.as_deref().map(Arc::from),
            signature,
        );
        let mut headers = HeaderMap::new();
        for line in self.headers.lines() {
            let Some((name, value)) = line.split_once(": ") else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&self.signature) {
            headers.insert(crate::SIGNATURE_HEADER, value);
        }
        Ok(VerifiedBody::new(self.body.clone(), verified).with_headers(headers))
    }
}

impl fmt::Debug for StoredDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredDelivery")
            .field("key", &self.key())
            .field("body_len", &self.body.len())
            .field("secret_index", &self.secret_index)
            .field("secret_label", &self.secret_label)
            .finish_non_exhaustive()
    }
}

/// A delivery the workers gave up on, kept whole for an operator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its key.
    pub key: DeliveryKey,
    /// The delivery as it was stored: body, signature, headers.
    pub delivery: StoredDelivery,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was given up: the last failure.
    pub reason: String,
    /// When it was first stored.
    pub received_at: SystemTime,
    /// When it was given up.
    pub died_at: SystemTime,
}

/// How many deliveries an inbox holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxStats {
    /// Waiting for a worker (due now or after a backoff).
    pub pending: u64,
    /// Leased to a worker.
    pub in_flight: u64,
    /// Handled, kept for their de-duplication window and the retention after it.
    pub done: u64,
    /// Given up, waiting for an operator.
    pub dead: u64,
}

/// An inbox could not do what was asked. A receiver answers `503` with `Retry-After`, so
/// Propexo sends the delivery again.
#[derive(Debug)]
#[non_exhaustive]
pub enum InboxError {
    /// The store cannot be reached or failed (the database is down, the disk is full, ...).
    Unavailable(BoxError),
    /// The inbox holds as many deliveries as it may (in-memory inboxes).
    Full,
    /// The inbox was shut down.
    Closed,
}

impl InboxError {
    /// Wraps a backend error.
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        Self::Unavailable(error.into())
    }
}

impl fmt::Display for InboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(error) => write!(f, "the inbox is unavailable: {error}"),
            Self::Full => f.write_str("the inbox is full"),
            Self::Closed => f.write_str("the inbox is shut down"),
        }
    }
}

impl std::error::Error for InboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(error) => Some(error.as_ref()),
            Self::Full | Self::Closed => None,
        }
    }
}
