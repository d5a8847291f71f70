//! The client-side rate limiter: one budget for every request of a client and its clones.
//!
//! Propexo counts requests per minute (150 by default) and answers 429 past the limit until
//! the minute resets; it does not say when that is. Two mechanisms keep the client under it:
//!
//! - **Slots.** `requests` slots per client; a request holds one from before it is sent until
//!   `per` after its answer arrived. Any two requests that used the same slot therefore
//!   *arrive* more than `per` apart, so no interval of length `per`, and so no window of
//!   Propexo's however it is aligned, ever receives more than `requests` of them.
//! - **Propexo's own count.** Each answer's `x-ratelimit-limit` / `x-ratelimit-remaining`
//!   (which also count other processes using the same key) is remembered: with none left, no
//!   request is sent until `per` after that answer; past 80 % of the limit, where Propexo
//!   delays every answer by 2 seconds, requests are spread evenly instead of sent in a burst.
//!   A 429 stops every request for `per`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The shared budget.
pub(crate) struct Limiter {
    slots: Arc<Semaphore>,
    per: Duration,
    view: Mutex<View>,
}

/// What the client knows of Propexo's count.
#[derive(Default)]
struct View {
    /// No request is sent before this instant.
    paused_until: Option<Instant>,
    /// The latest count Propexo reported.
    report: Option<Report>,
    /// While pacing, the earliest instant the next request may be sent.
    next_paced: Option<Instant>,
}

struct Report {
    limit: u32,
    remaining: u32,
    at: Instant,
    /// Requests sent since this report.
    sent_since: u32,
}

impl Limiter {
    pub(crate) fn new(requests: u32, per: Duration) -> Self {
        let requests = usize::try_from(requests).unwrap_or(Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(requests.min(Semaphore::MAX_PERMITS))),
            per,
            view: Mutex::new(View::default()),
        }
    }

    /// Waits until a request may be sent, and returns the slot it holds.
    pub(crate) async fn acquire(&self) -> Slot {
        // The semaphore is never closed, so this only fails in theory; a request then goes
        // without a slot, still bound by Propexo's count below.
        let permit = self.slots.clone().acquire_owned().await.ok();
        loop {
            let wait = self.lock().next_send(Instant::now(), self.per);
            match wait {
                Some(until) => tokio::time::sleep_until(until).await,
                None => break,
            }
        }
        Slot {
            permit,
            per: self.per,
        }
    }

    /// Remembers Propexo's count from an answer's headers.
    pub(crate) fn observe(&self, limit: Option<u32>, remaining: Option<u32>) {
        if let (Some(limit), Some(remaining)) = (limit, remaining) {
            self.lock().report = Some(Report {
                limit,
                remaining,
                at: Instant::now(),
                sent_since: 0,
            });
        }
    }

    /// Propexo answered 429: send nothing until its window has surely reset.
    pub(crate) fn rate_limited(&self) {
        let until = Instant::now() + self.per;
        let mut view = self.lock();
        view.report = None;
        view.paused_until = Some(view.paused_until.map_or(until, |paused| paused.max(until)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl View {
    /// `None` when a request may be sent now (and counts it), or the instant to wait for.
    fn next_send(&mut self, now: Instant, per: Duration) -> Option<Instant> {
        if let Some(until) = self.paused_until {
            if until > now {
                return Some(until);
            }
            self.paused_until = None;
        }
        if let Some(report) = &mut self.report {
            let window_end = report.at + per;
            if window_end <= now {
                // That window is over; the next answer will say where the new one stands.
                self.report = None;
                self.next_paced = None;
            } else {
                let left = report.remaining.saturating_sub(report.sent_since);
                if left == 0 {
                    self.paused_until = Some(window_end);
                    return Some(window_end);
                }
                // Past 80 % of the limit: one request per `per / limit`, not a burst.
                if report.remaining.saturating_mul(5) <= report.limit {
                    if let Some(next) = self.next_paced.filter(|next| *next > now) {
                        return Some(next);
                    }
                    self.next_paced = Some(now + per / report.limit.max(1));
                }
                report.sent_since = report.sent_since.saturating_add(1);
            }
        }
        None
    }
}

/// A slot of the budget, held by one request. Dropping it gives the slot back `per` later.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    per: Duration,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let per = self.per;
            runtime.spawn(async move {
                tokio::time::sleep(per).await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_request_past_the_reported_count_until_the_window_is_over() {
        let per = Duration::from_secs(60);
        let now = Instant::now();
        let mut view = View {
            report: Some(Report {
                limit: 150,
                remaining: 2,
                at: now,
                sent_since: 0,
            }),
            ..View::default()
        };
        // 2 left, but past 80 %: the first goes, the second is paced.
        assert_eq!(view.next_send(now, per), None);
        let paced = view.next_send(now, per).unwrap();
        assert_eq!(paced, now + per / 150);
        assert_eq!(view.next_send(paced, per), None);
        // None left: wait for the end of the window.
        assert_eq!(view.next_send(paced, per), Some(now + per));
        assert_eq!(view.next_send(now + per, per), None);
    }

    #[test]
    fn below_80_percent_requests_are_not_paced() {
        let per = Duration::from_secs(60);
        let now = Instant::now();
        let mut view = View {
            report: Some(Report {
                limit: 150,
                remaining: 100,
                at: now,
                sent_since: 0,
            }),
            ..View::default()
        };
        for _ in 0..50 {
            assert_eq!(view.next_send(now, per), None);
        }
    }
}
