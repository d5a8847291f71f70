//! Remembering deliveries, so that Propexo's re-sends run the handlers once.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::handler::{BoxError, BoxFuture};
use crate::{EventType, WebhookEvent};

/// Identifies a delivery by the SHA-256 of its raw, verified body.
///
/// Only authenticated material goes into it: Propexo sends no delivery id, and a header could be
/// set by anyone. The body hash rather than the signature, so that a re-send signed with a new
/// secret (after a rotation) is still recognised.
///
/// # What the key can and cannot tell apart
///
/// Propexo's bodies carry no delivery id and no timestamp. A re-send after a lost 2xx and a new
/// event that happens to have the same bytes have the same key, and nothing in the request can
/// tell them apart. So the [`Dispatcher`](crate::Dispatcher) remembers a handled key only as long
/// as its [`DedupPolicy`] allows for that kind of event:
///
/// - an event that carries a job id (`job_id` or `root_job_id`: DATA_NEW, DATA_UPDATE,
///   JOB_FAILURE, JOB_SUCCESS, WRITE_OPERATION_FAILURE as Propexo documents them) is unique to
///   its job, so equal bytes within 3 hours are a re-send: it runs once;
/// - an event without one (SYNC_COMPLETE, FIRST_SYNC_COMPLETE, the simplified or flat shapes
///   without a job id, unknown triggers) repeats byte for byte when nothing changed (an hourly
///   sync with the same counts), so it is de-duplicated only while a copy is being handled: a
///   re-send after a lost 2xx runs the handlers again, which is the lesser harm next to
///   silently skipping a new sync.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey([u8; 32]);

impl DeliveryKey {
    /// The key of a raw body.
    pub fn from_body(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
    }

    /// The key whose hash is `hash`: for a key read back from a store.
    pub fn from_hash(hash: [u8; 32]) -> Self {
        Self(hash)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeliveryKey({self})")
    }
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// Nobody has handled this delivery: the caller now owns it and must
    /// [`complete`](IdempotencyStore::complete) or [`release`](IdempotencyStore::release) it.
    Claimed,
    /// This delivery was handled successfully before: acknowledge it without handling it again.
    Completed,
    /// Another copy of this delivery is being handled right now: ask Propexo to retry later.
    InProgress,
}

/// Remembers which deliveries were handled, so each runs its handlers at most once per success.
///
/// The dispatcher [`claim`](Self::claim)s a delivery before running handlers, then
/// [`complete`](Self::complete)s it when every handler succeeded, or [`release`](Self::release)s
/// it when one failed (Propexo's retry runs them again). `complete` says how long to remember
/// the delivery, as its [`DedupPolicy`] decided from the event: a copy claimed within that window
/// gets [`Claim::Completed`] and is acknowledged without running the handlers; a window of zero
/// means "forget it now", exactly like `release`. A claim must be atomic: of two concurrent
/// claims of one key, one gets [`Claim::Claimed`] and the other [`Claim::InProgress`].
///
/// A shared store (Redis `SET NX PX`, a database row with a unique key) makes this hold across
/// processes. Such a store should let an in-progress claim expire after a while (longer than
/// the handlers take, shorter than Propexo's 15-minute retry interval), so that a process that
/// dies mid-delivery does not block that delivery's retries.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims `key` unless it is completed or in progress.
    fn claim<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<Claim, BoxError>>;

    /// Marks `key` as handled successfully, to be recognised as a duplicate for `window` from
    /// now (forgotten at once when `window` is zero).
    fn complete<'a>(
        &'a self,
        key: &'a DeliveryKey,
        window: Duration,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Gives up a claim, so that the next copy of the delivery is handled again.
    fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Gives up a claim without waiting, when a dispatch is dropped before it finished (the
    /// client hung up, the server shut down). The default does nothing and relies on the claim
    /// expiring; a store that can release synchronously should do it here.
    fn abandon(&self, key: &DeliveryKey) {
        let _ = key;
    }
}

/// How long a handled delivery is remembered, per kind of event: the de-duplication window.
///
/// A delivery is identified by the hash of its body ([`DeliveryKey`]), and Propexo's bodies have
/// no delivery id and no timestamp, so a re-send and a new event with the same bytes look alike.
/// The policy chooses, per kind of event, which mistake to risk. It is decided from the parsed
/// event when its handlers have succeeded, so recognising a duplicate stays parse-free.
///
/// | event | default window after success | why |
/// |---|---|---|
/// | carries a `job_id` or `root_job_id` (DATA_NEW, DATA_UPDATE, JOB_FAILURE, JOB_SUCCESS, WRITE_OPERATION_FAILURE) | 3 hours | the job id makes the bytes unique to one event; 3 h outlasts Propexo's retries (10 × 15 min) |
/// | no job id (SYNC_COMPLETE, FIRST_SYNC_COMPLETE, simplified or flat bodies without one, unknown triggers) | none | an hourly sync with the same counts sends the same bytes: each must be handled |
/// | verified but malformed (handled by `on_malformed`) | as for no job id | nothing in it can be trusted to be unique |
///
/// With no window, a copy that arrives while another is being handled is still held back
/// (answered 409, retried by Propexo); one that arrives after success runs the handlers again.
/// Running a sync notice twice is harmless next to never running a new one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use propexo_webhooks::{DedupPolicy, Dispatcher, EventType, MemoryIdempotencyStore};
///
/// // The defaults, spelled out, plus one change: remember job failures for a day.
/// let policy = DedupPolicy::new()
///     .with_job_id(DedupPolicy::DEFAULT_WINDOW)
///     .without_job_id(Duration::ZERO)
///     .trigger(EventType::JobFailure, Duration::from_secs(24 * 60 * 60));
///
/// // One window for every event, whatever it carries:
/// let uniform = DedupPolicy::uniform(Duration::from_secs(3 * 60 * 60));
///
/// let dispatcher = Dispatcher::new()
///     .idempotency(MemoryIdempotencyStore::new())
///     .dedup(uniform);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupPolicy {
    with_job_id: Duration,
    without_job_id: Duration,
    triggers: Vec<(EventType, Duration)>,
}

impl Default for DedupPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl DedupPolicy {
    /// The window of events that carry a job id: 3 hours, longer than Propexo's 2.5 hours of
    /// retries.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3 * 60 * 60);

    /// The default policy: [`DEFAULT_WINDOW`](Self::DEFAULT_WINDOW) for events with a job id,
    /// no window for the others.
    pub fn new() -> Self {
        Self {
            with_job_id: Self::DEFAULT_WINDOW,
            without_job_id: Duration::ZERO,
            triggers: Vec::new(),
        }
    }

    /// One window for every event, job id or not: equal bodies within `window` are one event.
    pub fn uniform(window: Duration) -> Self {
        Self {
            with_job_id: window,
            without_job_id: window,
            triggers: Vec::new(),
        }
    }

    /// The window of events that carry a `job_id` or `root_job_id`.
    #[must_use]
    pub fn with_job_id(mut self, window: Duration) -> Self {
        self.with_job_id = window;
        self
    }

    /// The window of events without a job id, and of malformed deliveries.
    #[must_use]
    pub fn without_job_id(mut self, window: Duration) -> Self {
        self.without_job_id = window;
        self
    }

    /// The window of every event of `trigger`, job id or not; the last call for a trigger wins.
    #[must_use]
    pub fn trigger(mut self, trigger: EventType, window: Duration) -> Self {
        self.triggers.retain(|(known, _)| *known != trigger);
        self.triggers.push((trigger, window));
        self
    }

    /// How long a handled `event` is remembered (zero: not after its handlers finished).
    pub fn window(&self, event: &WebhookEvent) -> Duration {
        let trigger = event.event_type();
        if let Some((_, window)) = self.triggers.iter().find(|(known, _)| *known == trigger) {
            return *window;
        }
        let has_job_id = !matches!(event, WebhookEvent::Unknown(_))
            && (event.job_id().is_some() || event.root_job_id().is_some());
        if has_job_id {
            self.with_job_id
        } else {
            self.without_job_id
        }
    }

    /// How long a verified body that is not a valid event is remembered once `on_malformed`
    /// stored it: the window of events without a job id.
    pub fn malformed_window(&self) -> Duration {
        self.without_job_id
    }
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use memory::MemoryIdempotencyStore;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
mod memory {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use super::{BoxError, BoxFuture, Claim, DeliveryKey, IdempotencyStore};

    /// An in-process [`IdempotencyStore`] with a size bound.
    ///
    /// It covers one process: deliveries handled by another instance, or before a restart, are
    /// not remembered. A completed delivery is remembered for the window its
    /// [`DedupPolicy`](super::DedupPolicy) gave it (3 hours for events with a job id by default,
    /// none for the others). A claim in progress for longer than the claim timeout (default: 5
    /// minutes, well under Propexo's 15-minute retry interval) is considered abandoned. When
    /// `max_entries` (default: 100 000) is reached, the oldest completed deliveries are forgotten
    /// first; if every entry is in progress, new claims fail and the delivery is retried later.
    ///
    /// Not available on `wasm32-unknown-unknown`, which has no clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use propexo_webhooks::{Dispatcher, MemoryIdempotencyStore};
    ///
    /// let store = MemoryIdempotencyStore::new()
    ///     .claim_timeout(Duration::from_secs(60))
    ///     .max_entries(10_000);
    /// let dispatcher = Dispatcher::new().idempotency(store);
    /// ```
    #[derive(Debug)]
    pub struct MemoryIdempotencyStore {
        claim_timeout: Duration,
        max_entries: usize,
        state: Mutex<State>,
    }

    #[derive(Debug, Default)]
    struct State {
        entries: HashMap<DeliveryKey, Entry>,
        /// Keys in the order their entries were written; stale positions are skipped.
        order: VecDeque<(DeliveryKey, Instant)>,
    }

    #[derive(Debug, Clone, Copy)]
    struct Entry {
        /// When it was written: identifies its position in `State::order`.
        since: Instant,
        /// How long it counts from `since`: the window of a completed delivery, the claim
        /// timeout of one in progress.
        lasts: Duration,
        completed: bool,
    }

    impl Default for MemoryIdempotencyStore {
        fn default() -> Self {
            Self::new()
        }
    }

    impl MemoryIdempotencyStore {
        /// A store with the default claim timeout and size bound.
        pub fn new() -> Self {
            Self {
                claim_timeout: Duration::from_secs(5 * 60),
                max_entries: 100_000,
                state: Mutex::new(State::default()),
            }
        }

        /// How long a claim may stay in progress before another copy may take it over.
        #[must_use]
        pub fn claim_timeout(mut self, timeout: Duration) -> Self {
            self.claim_timeout = timeout;
            self
        }

        /// How many deliveries are remembered at most (at least 1).
        #[must_use]
        pub fn max_entries(mut self, max_entries: usize) -> Self {
            self.max_entries = max_entries.max(1);
            self
        }

        /// Number of deliveries remembered (completed or in progress), expired ones included
        /// until they are swept.
        pub fn len(&self) -> usize {
            self.lock().entries.len()
        }

        /// Whether nothing is remembered.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            // The state stays consistent between statements, so a panic elsewhere while the
            // lock was held leaves nothing half-written.
            self.state.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn is_live(entry: &Entry, now: Instant) -> bool {
            now.saturating_duration_since(entry.since) < entry.lasts
        }

        fn claim_now(&self, key: &DeliveryKey) -> Result<Claim, BoxError> {
            let now = Instant::now();
            let mut state = self.lock();
            if let Some(entry) = state.entries.get(key)
                && Self::is_live(entry, now)
            {
                return Ok(if entry.completed {
                    Claim::Completed
                } else {
                    Claim::InProgress
                });
            }
            if !state.entries.contains_key(key) && state.entries.len() >= self.max_entries {
                self.make_room(&mut state, now)?;
            }
            let claim_timeout = self.claim_timeout;
            Self::write(&mut state, *key, now, claim_timeout, false);
            Ok(Claim::Claimed)
        }

        fn write(
            state: &mut State,
            key: DeliveryKey,
            now: Instant,
            lasts: Duration,
            completed: bool,
        ) {
            state.entries.insert(
                key,
                Entry {
                    since: now,
                    lasts,
                    completed,
                },
            );
            state.order.push_back((key, now));
        }

        /// Drops expired entries, then the oldest completed ones, until one more fits.
        fn make_room(&self, state: &mut State, now: Instant) -> Result<(), BoxError> {
            let mut kept = Vec::new();
            while state.entries.len() >= self.max_entries {
                let Some((key, written)) = state.order.pop_front() else {
                    break;
                };
                match state.entries.get(&key) {
                    // A later write of this key has its own position in the queue.
                    Some(entry) if entry.since != written => {}
                    Some(entry) if entry.completed || !Self::is_live(entry, now) => {
                        state.entries.remove(&key);
                    }
                    Some(_) => kept.push((key, written)),
                    None => {}
                }
            }
            for position in kept.into_iter().rev() {
                state.order.push_front(position);
            }
            if state.entries.len() >= self.max_entries {
                return Err("the idempotency store is full of deliveries in progress".into());
            }
            Ok(())
        }

        /// Settles a claim: remembers the delivery for `window` when it succeeded (`Some`),
        /// forgets it otherwise or when the window is zero.
        fn finish(&self, key: &DeliveryKey, window: Option<Duration>) {
            let now = Instant::now();
            let mut state = self.lock();
            match window {
                Some(window) if !window.is_zero() => {
                    Self::write(&mut state, *key, now, window, true);
                }
                _ => {
                    // A completed entry is someone else's success (this claim was taken over
                    // after its timeout): keep it.
                    if state.entries.get(key).is_some_and(|entry| !entry.completed) {
                        state.entries.remove(key);
                    }
                }
            }
            // Keep the queue from growing without bound when keys are released and re-claimed.
            if state.order.len() > 2 * self.max_entries.max(state.entries.len()) {
                let State { entries, order } = &mut *state;
                order.retain(|(key, written)| {
                    entries
                        .get(key)
                        .is_some_and(|entry| entry.since == *written)
                });
            }
        }
    }

    impl IdempotencyStore for MemoryIdempotencyStore {
        fn claim<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<Claim, BoxError>> {
            Box::pin(std::future::ready(self.claim_now(key)))
        }

        fn complete<'a>(
            &'a self,
            key: &'a DeliveryKey,
            window: Duration,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            self.finish(key, Some(window));
            Box::pin(std::future::ready(Ok(())))
        }

        fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>> {
            self.finish(key, None);
            Box::pin(std::future::ready(Ok(())))
        }

        fn abandon(&self, key: &DeliveryKey) {
            self.finish(key, None);
        }
    }
}
