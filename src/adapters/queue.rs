//! Ack-fast mode: a bounded in-process queue of verified deliveries, served by worker tasks.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::log;
use crate::{BoxError, BoxFuture, DeliveryKey, Dispatcher, Outcome, VerifiedBody};

/// Persists queued deliveries, so that what the queue holds survives a crash.
///
/// An in-process queue loses every delivery it holds when the process dies: they were already
/// acknowledged (202), so Propexo will not send them again. A journal closes that gap:
/// [`record`](Self::record) runs before the 202 is sent (if it fails, the receiver answers 503
/// and Propexo retries, so nothing is lost), [`complete`](Self::complete) when the handlers
/// succeeded, and [`give_up`](Self::give_up) when the queue stopped retrying. After a restart,
/// verify each recorded, uncompleted body again with
/// [`VerifiedBody::verify_signature`] (so record the signature with the body) and
/// [`Queue::enqueue`] it.
pub trait QueueJournal: Send + Sync + 'static {
    /// Stores a delivery before it is acknowledged.
    fn record<'a>(&'a self, delivery: &'a VerifiedBody) -> BoxFuture<'a, Result<(), BoxError>>;

    /// The delivery's handlers succeeded: its record may go.
    fn complete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>>;

    /// The queue stopped retrying the delivery; keep it for an operator.
    fn give_up<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// How a [`Queue`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Deliveries waiting at most; when full, requests get 503 (default 1024).
    pub capacity: usize,
    /// Worker tasks running handlers concurrently (default 4).
    pub workers: usize,
    /// Attempts per delivery, the first included (default 5).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each later one (default 1 s).
    pub backoff: Duration,
    /// The `Retry-After` sent with a 503 when the queue is full (default 60 s).
    pub retry_after: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 1024,
            workers: 4,
            max_attempts: 5,
            backoff: Duration::from_secs(1),
            retry_after: Duration::from_secs(60),
        }
    }
}

impl QueueConfig {
    /// Sets [`capacity`](Self::capacity) (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

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

    /// Sets [`backoff`](Self::backoff).
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets [`retry_after`](Self::retry_after).
    #[must_use]
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// A bounded in-process queue of verified deliveries, served by tokio worker tasks: the
/// receiver answers `202 Accepted` as soon as a delivery is queued, and `503` with
/// `Retry-After` when the queue is full, so Propexo sends it again later.
///
/// **What it trades away.** Deliveries in the queue live in memory: if the process dies, they
/// are lost, and Propexo, which got its 202, will not send them again. Give the queue a
/// [`QueueJournal`] to persist each delivery before it is acknowledged, or answer only after
/// the handlers ran (the receiver's default mode). A delivery whose handlers keep failing is
/// retried by the queue ([`QueueConfig::max_attempts`]), not by Propexo, then handed to
/// [`QueueJournal::give_up`] and logged.
///
/// Start it inside a tokio runtime; [`Queue::shutdown`] stops accepting deliveries and waits
/// until the workers have drained the queue.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    sender: Mutex<Option<mpsc::Sender<VerifiedBody>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    journal: Option<Arc<dyn QueueJournal>>,
    retry_after: Duration,
}

impl Queue {
    /// Starts the workers. Must be called from inside a tokio runtime.
    pub fn start(dispatcher: Dispatcher, config: QueueConfig) -> Self {
        Self::start_with(dispatcher, config, None)
    }

    /// Starts the workers, recording each delivery in `journal` before it is acknowledged.
    /// Must be called from inside a tokio runtime.
    pub fn start_with_journal(
        dispatcher: Dispatcher,
        config: QueueConfig,
        journal: impl QueueJournal,
    ) -> Self {
        Self::start_with(dispatcher, config, Some(Arc::new(journal)))
    }

    fn start_with(
        dispatcher: Dispatcher,
        config: QueueConfig,
        journal: Option<Arc<dyn QueueJournal>>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(config.capacity.max(1));
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let dispatcher = Arc::new(dispatcher);
        let workers = (0..config.workers.max(1))
            .map(|_| {
                let worker = Worker {
                    receiver: receiver.clone(),
                    dispatcher: dispatcher.clone(),
                    journal: journal.clone(),
                    max_attempts: config.max_attempts.max(1),
                    backoff: config.backoff,
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                sender: Mutex::new(Some(sender)),
                workers: Mutex::new(workers),
                journal,
                retry_after: config.retry_after,
            }),
        }
    }

    /// Queues a verified delivery: records it in the journal, if any, then hands it to the
    /// workers.
    ///
    /// # Errors
    ///
    /// [`QueueError::Full`], [`QueueError::Closed`] after [`shutdown`](Self::shutdown), or
    /// [`QueueError::Journal`] if the journal could not record it. The delivery is not queued
    /// in any of these cases, so answering non-2xx makes Propexo send it again.
    pub async fn enqueue(&self, delivery: VerifiedBody) -> Result<(), QueueError> {
        let retry_after = self.inner.retry_after;
        let Some(sender) = self.sender() else {
            return Err(QueueError::Closed { retry_after });
        };
        // Reserve the slot first, so a full queue costs no journal write.
        let permit = sender.try_reserve().map_err(|error| match error {
            mpsc::error::TrySendError::Full(()) => QueueError::Full { retry_after },
            mpsc::error::TrySendError::Closed(()) => QueueError::Closed { retry_after },
        })?;
        if let Some(journal) = &self.inner.journal {
            journal
                .record(&delivery)
                .await
                .map_err(|error| QueueError::Journal { error, retry_after })?;
        }
        permit.send(delivery);
        Ok(())
    }

    /// Stops accepting deliveries (they get 503), then waits until the workers have handled
    /// every delivery already queued.
    pub async fn shutdown(&self) {
        drop(
            self.inner
                .sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let workers = std::mem::take(
            &mut *self
                .inner
                .workers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for worker in workers {
            // A worker only ends by draining the queue; a panic inside it was already caught
            // by the dispatcher, so there is nothing more to report here.
            let _ = worker.await;
        }
    }

    /// Deliveries waiting for a worker.
    pub fn len(&self) -> usize {
        self.sender()
            .map_or(0, |sender| sender.max_capacity() - sender.capacity())
    }

    /// Whether no delivery is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sender(&self) -> Option<mpsc::Sender<VerifiedBody>> {
        self.inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("waiting", &self.len())
            .field("journal", &self.inner.journal.is_some())
            .finish_non_exhaustive()
    }
}

struct Worker {
    receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<VerifiedBody>>>,
    dispatcher: Arc<Dispatcher>,
    journal: Option<Arc<dyn QueueJournal>>,
    max_attempts: u32,
    backoff: Duration,
}

impl Worker {
    async fn run(self) {
        loop {
            let next = self.receiver.lock().await.recv().await;
            let Some(delivery) = next else {
                return;
            };
            self.handle(delivery).await;
        }
    }

    async fn handle(&self, delivery: VerifiedBody) {
        let mut backoff = self.backoff;
        for attempt in 1..=self.max_attempts {
            let outcome = self.dispatcher.dispatch(delivery.clone()).await;
            if outcome.is_acknowledged() {
                if let Some(journal) = &self.journal {
                    let key = DeliveryKey::from_body(delivery.body());
                    if let Err(error) = journal.complete(&key).await {
                        log::warn(format_args!(
                            "propexo webhook queue: could not mark delivery {key} complete: {error}"
                        ));
                    }
                }
                return;
            }
            if attempt == self.max_attempts {
                self.give_up(&delivery, &outcome).await;
                return;
            }
            log::warn(format_args!(
                "propexo webhook queue: attempt {attempt} of {} failed ({}), retrying in {backoff:?}",
                self.max_attempts,
                outcome.status()
            ));
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    async fn give_up(&self, delivery: &VerifiedBody, outcome: &Outcome) {
        let key = DeliveryKey::from_body(delivery.body());
        let reason = format!(
            "gave up after {} attempts, last answer {}",
            self.max_attempts,
            outcome.status()
        );
        log::error(format_args!(
            "propexo webhook queue: delivery {key}: {reason}"
        ));
        if let Some(journal) = &self.journal {
            if let Err(error) = journal.give_up(delivery, &reason).await {
                log::error(format_args!(
                    "propexo webhook queue: could not hand delivery {key} to the journal: {error}"
                ));
            }
        }
    }
}

/// Why a delivery could not be queued. Each means "answer 503 and let Propexo retry".
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue holds [`QueueConfig::capacity`] deliveries already.
    Full {
        /// How long to tell Propexo to wait.
        retry_after: Duration,
    },
    /// The queue is shutting down.
    Closed {
        /// How long to tell Propexo to wait.
        retry_after: Duration,
    },
    /// The journal could not record the delivery.
    Journal {
        /// The journal's error.
        error: BoxError,
        /// How long to tell Propexo to wait.
        retry_after: Duration,
    },
}

impl QueueError {
    /// How long to tell Propexo to wait before sending the delivery again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Full { retry_after }
            | Self::Closed { retry_after }
            | Self::Journal { retry_after, .. } => *retry_after,
        }
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { .. } => f.write_str("the delivery queue is full"),
            Self::Closed { .. } => f.write_str("the delivery queue is shutting down"),
            Self::Journal { error, .. } => {
                write!(f, "the delivery could not be journaled: {error}")
            }
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Journal { error, .. } => Some(error.as_ref()),
            Self::Full { .. } | Self::Closed { .. } => None,
        }
    }
}
