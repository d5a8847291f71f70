//! Remembering deliveries, so that Propexo's re-sends run the handlers once.

use std::fmt;

use sha2::{Digest, Sha256};

use super::handler::{BoxError, BoxFuture};

/// Identifies a delivery by the SHA-256 of its raw, verified body.
///
/// Only authenticated material goes into it: Propexo sends no delivery id, and a header could be
/// set by anyone. The body hash rather than the signature, so that a re-send signed with a new
/// secret (after a rotation) is still recognised. Two deliveries with byte-identical bodies are
/// the same delivery: Propexo's bodies carry no timestamp, so two identical events within the
/// store's time-to-live (e.g. two syncs with the same counts) count as one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryKey([u8; 32]);

impl DeliveryKey {
    /// The key of a raw body.
    pub fn from_body(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
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
/// [`complete`](Self::complete)s it when every handler succeeded (a re-send is then acknowledged
/// without running them), or [`release`](Self::release)s it when one failed (Propexo's retry runs
/// them again). A claim must be atomic: of two concurrent claims of one key, one gets
/// [`Claim::Claimed`] and the other [`Claim::InProgress`].
///
/// A shared store (Redis `SET NX PX`, a database row with a unique key) makes this hold across
/// processes. Such a store should let an in-progress claim expire after a while (longer than
/// the handlers take, shorter than Propexo's 15-minute retry interval), so that a process that
/// dies mid-delivery does not block that delivery's retries.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically claims `key` unless it is completed or in progress.
    fn claim<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<Claim, BoxError>>;

    /// Marks `key` as handled successfully.
    fn complete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Gives up a claim, so that the next copy of the delivery is handled again.
    fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Gives up a claim without waiting, when a dispatch is dropped before it finished (the
    /// client hung up, the server shut down). The default does nothing and relies on the claim
    /// expiring; a store that can release synchronously should do it here.
    fn abandon(&self, key: &DeliveryKey) {
        let _ = key;
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

    /// An in-process [`IdempotencyStore`] with a time-to-live and a size bound.
    ///
    /// It covers one process: deliveries handled by another instance, or before a restart, are
    /// not remembered. Completed deliveries are remembered for `ttl` (default: 3 hours, longer
    /// than Propexo's retry window of about 2.5 hours). A claim in progress for longer than the
    /// claim timeout (default: 5 minutes, well under Propexo's 15-minute retry interval) is
    /// considered abandoned. When `max_entries` (default: 100 000) is reached, the oldest
    /// completed deliveries are forgotten first; if every entry is in progress, new claims fail
    /// and the delivery is retried later.
    ///
    /// Not available on `wasm32-unknown-unknown`, which has no clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use propexo_webhooks::MemoryIdempotencyStore;
    ///
    /// let store = MemoryIdempotencyStore::new()
    ///     .ttl(Duration::from_secs(6 * 60 * 60))
    ///     .max_entries(10_000);
    /// ```
    #[derive(Debug)]
    pub struct MemoryIdempotencyStore {
        ttl: Duration,
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
        since: Instant,
        completed: bool,
    }

    impl Default for MemoryIdempotencyStore {
        fn default() -> Self {
            Self::new()
        }
    }

    impl MemoryIdempotencyStore {
        /// A store with the default time-to-live, claim timeout and size bound.
        pub fn new() -> Self {
            Self {
                ttl: Duration::from_secs(3 * 60 * 60),
                claim_timeout: Duration::from_secs(5 * 60),
                max_entries: 100_000,
                state: Mutex::new(State::default()),
            }
        }

        /// How long a completed delivery is remembered.
        #[must_use]
        pub fn ttl(mut self, ttl: Duration) -> Self {
            self.ttl = ttl;
            self
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

        fn is_live(&self, entry: &Entry, now: Instant) -> bool {
            let limit = if entry.completed {
                self.ttl
            } else {
                self.claim_timeout
            };
            now.saturating_duration_since(entry.since) < limit
        }

        fn claim_now(&self, key: &DeliveryKey) -> Result<Claim, BoxError> {
            let now = Instant::now();
            let mut state = self.lock();
            if let Some(entry) = state.entries.get(key) {
                if self.is_live(entry, now) {
                    return Ok(if entry.completed {
                        Claim::Completed
                    } else {
                        Claim::InProgress
                    });
                }
            }
            if !state.entries.contains_key(key) && state.entries.len() >= self.max_entries {
                self.make_room(&mut state, now)?;
            }
            self.write(&mut state, *key, now, false);
            Ok(Claim::Claimed)
        }

        fn write(&self, state: &mut State, key: DeliveryKey, now: Instant, completed: bool) {
            state.entries.insert(
                key,
                Entry {
                    since: now,
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
                    Some(entry) if entry.completed || !self.is_live(entry, now) => {
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

        fn finish(&self, key: &DeliveryKey, completed: bool) {
            let now = Instant::now();
            let mut state = self.lock();
            if completed {
                self.write(&mut state, *key, now, true);
            } else if state.entries.get(key).is_some_and(|entry| !entry.completed) {
                state.entries.remove(key);
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

        fn complete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>> {
            self.finish(key, true);
            Box::pin(std::future::ready(Ok(())))
        }

        fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>> {
            self.finish(key, false);
            Box::pin(std::future::ready(Ok(())))
        }

        fn abandon(&self, key: &DeliveryKey) {
            self.finish(key, false);
        }
    }
}
