//! The in-memory inbox: ack-fast within one process, lost with it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::{
    DeadLetter, Inbox, InboxError, InboxStats, Lease, Leased, Retry, Stored, StoredDelivery,
};
use crate::{BoxFuture, DeliveryKey, VerifiedBody};

/// An [`Inbox`] in the process's memory, bounded in size.
///
/// **What it trades away.** It answers as fast as memory allows, but what it holds dies with
/// the process: deliveries acknowledged (202) and not yet handled are lost on a crash or a
/// restart, and Propexo will not send them again. Use `SqliteInbox` (feature `sqlite`) on one
/// machine or `PostgresInbox` (feature `postgres`) across replicas for deliveries that must
/// survive.
///
/// At most `capacity` deliveries not yet done are held (default 1024); beyond that
/// [`store`](Inbox::store) fails with [`InboxError::Full`] and the receiver answers 503 with
/// `Retry-After`, so Propexo sends the delivery again later.
#[derive(Clone)]
pub struct MemoryInbox {
    inner: Arc<Inner>,
}

struct Inner {
    capacity: usize,
    rows: Mutex<HashMap<DeliveryKey, Row>>,
    notify: Notify,
}

#[derive(Debug, Clone)]
struct Row {
    delivery: StoredDelivery,
    state: State,
    attempts: u32,
    last_error: Option<String>,
    received_at: SystemTime,
}

#[derive(Debug, Clone)]
enum State {
    Pending { due: Instant },
    InFlight { claim_id: u64, until: Instant },
    Done { keep_until: Instant },
    Dead { at: SystemTime },
}

impl Default for MemoryInbox {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryInbox {
    /// An empty inbox holding at most 1024 deliveries not yet done.
    pub fn new() -> Self {
        Self::with_capacity(1024)
    }

    /// An empty inbox holding at most `capacity` deliveries not yet done (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(1),
                rows: Mutex::new(HashMap::new()),
                notify: Notify::new(),
            }),
        }
    }

    fn rows(&self) -> MutexGuard<'_, HashMap<DeliveryKey, Row>> {
        // Every change below is a single assignment: a panic elsewhere cannot leave a row
        // half-written.
        self.inner
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn store_now(&self, delivery: &VerifiedBody) -> Result<Stored, InboxError> {
        let now = Instant::now();
        let stored = StoredDelivery::from_verified(delivery);
        let key = stored.key();
        let mut rows = self.rows();
        match rows.get(&key).map(|row| &row.state) {
            Some(State::Pending { .. } | State::InFlight { .. } | State::Dead { .. }) => {
                return Ok(Stored::AlreadyStored);
            }
            Some(State::Done { keep_until }) if *keep_until > now => return Ok(Stored::Duplicate),
            Some(State::Done { .. }) | None => {}
        }
        let open = rows
            .values()
            .filter(|row| !matches!(row.state, State::Done { .. }))
            .count();
        if open >= self.inner.capacity {
            return Err(InboxError::Full);
        }
        rows.insert(
            key,
            Row {
                delivery: stored,
                state: State::Pending { due: now },
                attempts: 0,
                last_error: None,
                received_at: SystemTime::now(),
            },
        );
        drop(rows);
        self.inner.notify.notify_waiters();
        Ok(Stored::New)
    }

    fn claim_now(&self, limit: usize, lease: Duration) -> Vec<Leased> {
        let now = Instant::now();
        let mut rows = self.rows();
        let mut due: Vec<(Instant, DeliveryKey)> = rows
            .iter()
            .filter_map(|(key, row)| match row.state {
                State::Pending { due } if due <= now => Some((due, *key)),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        due.into_iter()
            .take(limit)
            .filter_map(|(_, key)| {
                let row = rows.get_mut(&key)?;
                let lease_of = Lease::new(key);
                row.state = State::InFlight {
                    claim_id: lease_of.claim_id,
                    until: now + lease,
                };
                row.attempts = row.attempts.saturating_add(1);
                Some(Leased {
                    lease: lease_of,
                    delivery: row.delivery.clone(),
                    attempts: row.attempts,
                })
            })
            .collect()
    }

    /// Applies `change` to the row `lease` holds, if it still holds it.
    fn with_lease(&self, lease: &Lease, change: impl FnOnce(&mut Row, Instant)) -> bool {
        let now = Instant::now();
        let mut rows = self.rows();
        match rows.get_mut(&lease.key) {
            Some(row) if matches!(row.state, State::InFlight { claim_id, .. } if claim_id == lease.claim_id) =>
            {
                change(row, now);
                true
            }
            _ => false,
        }
    }

    fn sweep_now(&self, max_attempts: u32) -> u64 {
        let now = Instant::now();
        let mut touched = 0;
        for row in self.rows().values_mut() {
            if let State::InFlight { until, .. } = row.state
                && until <= now
            {
                touched += 1;
                if row.attempts >= max_attempts {
                    row.last_error = Some(format!(
                        "lease expired after {} attempts: the worker stopped or hung",
                        row.attempts
                    ));
                    row.state = State::Dead {
                        at: SystemTime::now(),
                    };
                } else {
                    row.state = State::Pending { due: now };
                }
            }
        }
        if touched > 0 {
            self.inner.notify.notify_waiters();
        }
        touched
    }

    fn purge_now(&self, retention: Duration) -> u64 {
        let now = Instant::now();
        let mut rows = self.rows();
        let before = rows.len();
        rows.retain(|_, row| match row.state {
            State::Done { keep_until } => now.saturating_duration_since(keep_until) <= retention,
            _ => true,
        });
        (before - rows.len()) as u64
    }

    fn stats_now(&self) -> InboxStats {
        let mut stats = InboxStats::default();
        for row in self.rows().values() {
            match row.state {
                State::Pending { .. } => stats.pending += 1,
                State::InFlight { .. } => stats.in_flight += 1,
                State::Done { .. } => stats.done += 1,
                State::Dead { .. } => stats.dead += 1,
            }
        }
        stats
    }

    fn dead_letter_of(key: DeliveryKey, row: &Row) -> Option<DeadLetter> {
        match row.state {
            State::Dead { at } => Some(DeadLetter {
                key,
                delivery: row.delivery.clone(),
                attempts: row.attempts,
                reason: row.last_error.clone().unwrap_or_default(),
                received_at: row.received_at,
                died_at: at,
            }),
            _ => None,
        }
    }
}

impl Inbox for MemoryInbox {
    fn store<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
    ) -> BoxFuture<'a, Result<Stored, InboxError>> {
        Box::pin(std::future::ready(self.store_now(delivery)))
    }

    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(std::future::ready(Ok(self.claim_now(limit, lease))))
    }

    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let kept = self.with_lease(lease, |row, now| {
            row.state = State::InFlight {
                claim_id: lease.claim_id,
                until: now + duration,
            };
        });
        Box::pin(std::future::ready(Ok(kept)))
    }

    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let done = self.with_lease(lease, |row, now| {
            row.state = State::Done {
                keep_until: now + window,
            };
        });
        Box::pin(std::future::ready(Ok(done)))
    }

    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        next: Retry,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let failed = self.with_lease(lease, |row, now| match next {
            Retry::After { delay, reason } => {
                row.last_error = Some(reason);
                row.state = State::Pending { due: now + delay };
            }
            Retry::Dead { reason } => {
                row.last_error = Some(reason);
                row.state = State::Dead {
                    at: SystemTime::now(),
                };
            }
        });
        Box::pin(std::future::ready(Ok(failed)))
    }

    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(std::future::ready(Ok(self.sweep_now(max_attempts))))
    }

    fn purge(&self, retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(std::future::ready(Ok(self.purge_now(retention))))
    }

    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>> {
        Box::pin(std::future::ready(Ok(self.stats_now())))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>> {
        let mut dead: Vec<DeadLetter> = self
            .rows()
            .iter()
            .filter_map(|(key, row)| Self::dead_letter_of(*key, row))
            .collect();
        dead.sort_by_key(|letter| (letter.died_at, letter.key));
        dead.truncate(limit);
        Box::pin(std::future::ready(Ok(dead)))
    }

    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>> {
        let letter = self
            .rows()
            .get(key)
            .and_then(|row| Self::dead_letter_of(*key, row));
        Box::pin(std::future::ready(Ok(letter)))
    }

    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        let requeued = match self.rows().get_mut(key) {
            Some(row) if matches!(row.state, State::Dead { .. }) => {
                row.state = State::Pending {
                    due: Instant::now(),
                };
                row.attempts = 0;
                true
            }
            _ => false,
        };
        if requeued {
            self.inner.notify.notify_waiters();
        }
        Box::pin(std::future::ready(Ok(requeued)))
    }

    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        let mut rows = self.rows();
        let dead = rows
            .get(key)
            .is_some_and(|row| matches!(row.state, State::Dead { .. }));
        if dead {
            rows.remove(key);
        }
        Box::pin(std::future::ready(Ok(dead)))
    }

    fn notified(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.notify.notified())
    }
}

impl fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryInbox")
            .field("capacity", &self.inner.capacity)
            .field("stats", &self.stats_now())
            .finish()
    }
}
