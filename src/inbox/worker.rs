//! Workers: lease stored deliveries, run the dispatcher, settle the lease.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Inbox, Leased, Retry};
use crate::{Dispatcher, Outcome, log};

/// How [`Workers`] run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Deliveries handled at once by this process (default 4).
    pub workers: usize,
    /// Attempts per delivery, the first included, before it becomes a dead letter (default 5).
    pub max_attempts: u32,
    /// Wait before the second attempt, doubled for each later one, with jitter (default 1 s).
    pub backoff: Duration,
    /// The longest wait between two attempts (default 15 minutes).
    pub max_backoff: Duration,
    /// How long a leased delivery is a worker's before another may take it over (default 60 s).
    pub lease: Duration,
    /// How often a worker extends the lease of the delivery it is handling (default 20 s).
    pub heartbeat: Duration,
    /// How often an idle worker looks for work when no wake-up comes (default 1 s).
    pub poll_interval: Duration,
    /// How often expired leases are returned and old done deliveries purged (default 5 s).
    pub sweep_interval: Duration,
    /// How long a done delivery is kept after its de-duplication window (default 24 hours).
    pub retention: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl WorkerConfig {
    /// Sets [`workers`](Self::workers) (at least 1).
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts) (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets [`backoff`](Self::backoff) and [`max_backoff`](Self::max_backoff).
    #[must_use]
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// Sets [`lease`](Self::lease) and [`heartbeat`](Self::heartbeat) (at most a third of
    /// the lease, so two heartbeats may be missed before the lease ends).
    #[must_use]
    pub fn lease(mut self, lease: Duration, heartbeat: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = heartbeat.min(lease / 3);
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`sweep_interval`](Self::sweep_interval).
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Sets [`retention`](Self::retention).
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The wait before attempt `attempts + 1`: `backoff × 2^(attempts - 1)`, capped at
    /// `max_backoff`, then drawn uniformly between half of it and all of it, so that deliveries
    /// that failed together do not all come back together.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(31);
        let full = self
            .backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// Worker tasks that take deliveries from an [`Inbox`] and run a [`Dispatcher`] on them.
///
/// Each delivery is leased for [`WorkerConfig::lease`] and the lease is extended every
/// [`WorkerConfig::heartbeat`] while its handlers run, so a slow handler keeps it and a worker
/// that dies loses it to the sweeper. When every handler succeeds the delivery is done and
/// remembered for its [`DedupPolicy`](crate::DedupPolicy) window; when one fails it is retried
/// after an exponential backoff with jitter, and after [`WorkerConfig::max_attempts`] it becomes
/// a dead letter. A verified body that does not parse, with no
/// [`on_malformed`](Dispatcher::on_malformed) handler to take it, becomes a dead letter at once.
///
/// The dispatcher's own [`idempotency`](Dispatcher::idempotency) store is not used here: the
/// inbox de-duplicates. Start the workers inside a tokio runtime; [`shutdown`](Self::shutdown)
/// lets each finish the delivery in hand.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `config.workers` workers and a sweeper on `inbox`. Must be called from inside a
    /// tokio runtime.
    pub fn start(inbox: impl Inbox, dispatcher: Dispatcher, config: WorkerConfig) -> Self {
        let inbox: Arc<dyn Inbox> = Arc::new(inbox);
        let dispatcher = Arc::new(dispatcher);
        let config = Arc::new(config);
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = (0..config.workers.max(1))
            .map(|_| {
                let worker = Worker {
                    inbox: inbox.clone(),
                    dispatcher: dispatcher.clone(),
                    config: config.clone(),
                    stopped: stopped.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        tasks.push(tokio::spawn(sweep(inbox, config, stopped)));
        Self { stop, tasks }
    }

    /// Stops taking new deliveries and waits until each worker has settled the one in hand.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            // A handler's panic was caught by the dispatcher; nothing else here panics.
            let _ = task.await;
        }
    }
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("tasks", &self.tasks.len())
            .field("stopping", &*self.stop.borrow())
            .finish()
    }
}

struct Worker {
    inbox: Arc<dyn Inbox>,
    dispatcher: Arc<Dispatcher>,
    config: Arc<WorkerConfig>,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        while !*self.stopped.borrow() {
            match self.inbox.claim(1, self.config.lease).await {
                Ok(batch) if !batch.is_empty() => {
                    for leased in batch {
                        self.handle(leased).await;
                    }
                }
                Ok(_) => {
                    tokio::select! {
                        () = self.inbox.notified() => {}
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = self.stopped.changed() => {}
                    }
                }
                Err(error) => {
                    log::warn(format_args!(
                        "propexo webhook worker: cannot take work from the inbox: {error}"
                    ));
                    tokio::select! {
                        () = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = self.stopped.changed() => {}
                    }
                }
            }
        }
    }

    async fn handle(&self, leased: Leased) {
        let Leased {
            lease,
            delivery,
            attempts,
        } = leased;
        let key = lease.key;
        let verified = match delivery.to_verified() {
            Ok(verified) => verified,
            Err(error) => {
                let reason = format!("the stored signature is not valid: {error}");
                self.settle(&lease, Settle::Fail(Retry::Dead { reason }))
                    .await;
                return;
            }
        };
        let (outcome, window) = tokio::select! {
            result = self.dispatcher.run(verified) => result,
            never = self.heartbeats(&lease) => match never {},
        };
        let settle = match window {
            Some(window) => Settle::Complete(window),
            None => {
                let reason = reason(&outcome);
                let malformed =
                    matches!(&outcome, Outcome::Malformed(m) if m.handler_error().is_none());
                if malformed || attempts >= self.config.max_attempts {
                    log::error(format_args!(
                        "propexo webhook worker: delivery {key} is a dead letter after {attempts} \
                         attempt(s): {reason}"
                    ));
                    Settle::Fail(Retry::Dead { reason })
                } else {
                    let delay = self.config.delay_after(attempts);
                    log::warn(format_args!(
                        "propexo webhook worker: delivery {key}: attempt {attempts} of {} failed \
                         ({reason}), retrying in {delay:?}",
                        self.config.max_attempts
                    ));
                    Settle::Fail(Retry::After { delay, reason })
                }
            }
        };
        self.settle(&lease, settle).await;
    }

    /// Extends `lease` every heartbeat interval, for as long as it is polled.
    async fn heartbeats(&self, lease: &super::Lease) -> Infallible {
        let key = lease.key;
        loop {
            tokio::time::sleep(self.config.heartbeat).await;
            match self.inbox.heartbeat(lease, self.config.lease).await {
                Ok(true) => {}
                Ok(false) => log::warn(format_args!(
                    "propexo webhook worker: delivery {key}: lease lost while its handlers run; \
                     another worker may run them too"
                )),
                Err(error) => log::warn(format_args!(
                    "propexo webhook worker: delivery {key}: heartbeat failed: {error}"
                )),
            }
        }
    }

    async fn settle(&self, lease: &super::Lease, settle: Settle) {
        let key = lease.key;
        let result = match settle {
            Settle::Complete(window) => self.inbox.complete(lease, window).await,
            Settle::Fail(next) => self.inbox.fail(lease, next).await,
        };
        match result {
            Ok(true) => {}
            Ok(false) => log::warn(format_args!(
                "propexo webhook worker: delivery {key}: its lease expired before it was settled; \
                 the attempt counts for nothing"
            )),
            // The lease runs out and the sweeper makes the delivery pending again.
            Err(error) => log::warn(format_args!(
                "propexo webhook worker: delivery {key}: could not settle it: {error}"
            )),
        }
    }
}

enum Settle {
    Complete(Duration),
    Fail(Retry),
}

/// Why an attempt failed, for the dead letter and the logs: no body, no secret.
fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(errors) => errors.to_string(),
        Outcome::Malformed(malformed) => match malformed.handler_error() {
            Some(failure) => format!("not a valid event: {}; {failure}", malformed.error()),
            None => format!("not a valid event: {}", malformed.error()),
        },
        other => format!("{other:?}"),
    }
}

async fn sweep(
    inbox: Arc<dyn Inbox>,
    config: Arc<WorkerConfig>,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        if let Err(error) = inbox.sweep(config.max_attempts).await {
            log::warn(format_args!(
                "propexo webhook sweeper: cannot return expired leases: {error}"
            ));
        }
        if let Err(error) = inbox.purge(config.retention).await {
            log::warn(format_args!(
                "propexo webhook sweeper: cannot purge done deliveries: {error}"
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(config.sweep_interval) => {}
            _ = stopped.changed() => {}
        }
    }
}
