//! [`NatsInbox`]: verified deliveries handed to NATS JetStream, consumed by `Workers`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::{AckKind, StreamMessage};
use async_nats::jetstream::stream::{
    self, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{
    DeadLetter, Inbox, InboxError, InboxStats, Lease, Leased, Retry, Stored, StoredDelivery,
};
use crate::{BoxError, BoxFuture, DeliveryKey, VerifiedBody, Verifier, log};

const H_SIGNATURE: &str = "Propexo-Signature";
const H_SECRET_INDEX: &str = "Propexo-Secret-Index";
const H_SECRET_LABEL: &str = "Propexo-Secret-Label";
const H_HEADERS: &str = "Propexo-Headers";
const H_REASON: &str = "Propexo-Reason";
const H_ATTEMPTS: &str = "Propexo-Attempts";
const H_RECEIVED_AT: &str = "Propexo-Received-At";
const H_DONE_UNTIL: &str = "Propexo-Done-Until";
const H_MSG_ID: &str = "Nats-Msg-Id";

/// The longest an empty claim waits for a delivery to arrive.
const FETCH_WAIT: Duration = Duration::from_millis(100);

/// Propexo retries for 2.5 hours; the duplicate window must cover at least that.
const MIN_DUPLICATE_WINDOW: Duration = Duration::from_secs(150 * 60);

/// How a [`NatsInbox`] is set up: names, limits and the safety settings its streams and consumer
/// must have. Made by [`NatsInbox::builder`].
#[derive(Debug, Clone)]
pub struct NatsInboxBuilder {
    client: async_nats::Client,
    prefix: String,
    stream: String,
    consumer: String,
    replicas: usize,
    duplicate_window: Duration,
    ack_wait: Duration,
    max_attempts: u32,
    timeout: Duration,
    verifier: Option<Verifier>,
}

/// The streams or the consumer could not be set up: the server is unreachable, or an existing
/// stream or consumer has settings that could lose deliveries.
#[derive(Debug)]
#[non_exhaustive]
pub enum NatsSetupError {
    /// The server could not be reached, or refused a request.
    Unavailable(BoxError),
    /// An existing stream or consumer (or the builder) has a setting that could lose or
    /// mishandle deliveries. Nothing was changed: fix the setting, or use other names.
    Unsafe {
        /// The stream or consumer.
        what: String,
        /// What is wrong and why.
        why: String,
    },
}

impl fmt::Display for NatsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(error) => write!(f, "NATS JetStream is unavailable: {error}"),
            Self::Unsafe { what, why } => write!(f, "refusing {what}: {why}"),
        }
    }
}

impl std::error::Error for NatsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(error) => Some(error.as_ref()),
            Self::Unsafe { .. } => None,
        }
    }
}

fn unavailable(error: impl Into<BoxError>) -> NatsSetupError {
    NatsSetupError::Unavailable(error.into())
}

fn refuse(what: &str, why: impl Into<String>) -> NatsSetupError {
    NatsSetupError::Unsafe {
        what: what.to_owned(),
        why: why.into(),
    }
}

/// Subject tokens and stream names: letters, digits, `-` and `_` (and `.` between tokens of a
/// prefix), nothing a wildcard or a space could be made of.
fn valid_name(name: &str, dots: bool) -> bool {
    !name.is_empty()
        && name.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && (dots || !name.contains('.'))
}

impl NatsInboxBuilder {
    /// The subject prefix (default `propexo.webhooks`): deliveries go to `<prefix>.deliveries`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The main stream's name (default `PROPEXO_WEBHOOKS`); the done markers and dead letters go
    /// to `<name>_DONE` and `<name>_DEAD`.
    #[must_use]
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The durable consumer's name (default `propexo-webhooks-workers`), shared by every worker.
    #[must_use]
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// Replicas of each stream created (default 1, which the inbox warns about; 3 in a cluster
    /// is what survives the loss of a server and of power).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// The main stream's duplicate window (default 3 hours, at least 2.5 hours: Propexo's
    /// retries). Done markers are kept as long.
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// The consumer's `ack_wait`: how long a claimed delivery is a worker's without a heartbeat
    /// (default 60 s, as [`WorkerConfig::lease`](super::WorkerConfig::lease)). It must be above
    /// the workers' heartbeat interval, and the handlers' run time if they have no heartbeat.
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// The workers' [`max_attempts`](super::WorkerConfig::max_attempts) (default 5): a delivery
    /// claimed for a later attempt (its last worker died holding it) becomes a dead letter.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long a publish, an ack or a request waits for the server (default 5 s); then the
    /// receiver answers 503 with `Retry-After`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Verify each claimed delivery again with `verifier` (the receiver's secrets): one that does
    /// not verify was not put there by a receiver and becomes a dead letter unhandled.
    #[must_use]
    pub fn verify_again(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    fn context(&self) -> Context {
        let mut context = jetstream::new(self.client.clone());
        context.set_timeout(self.timeout);
        context
    }

    fn check_names(&self) -> Result<(), NatsSetupError> {
        if !valid_name(&self.prefix, true) {
            return Err(refuse(
                "the subject prefix",
                format!(
                    "{:?} is not dot-separated letters, digits, '-' and '_'",
                    self.prefix
                ),
            ));
        }
        for (what, name) in [
            ("the stream name", &self.stream),
            ("the consumer name", &self.consumer),
        ] {
            if !valid_name(name, false) {
                return Err(refuse(
                    what,
                    format!("{name:?} is not letters, digits, '-' and '_'"),
                ));
            }
        }
        if self.duplicate_window < MIN_DUPLICATE_WINDOW {
            return Err(refuse(
                "the duplicate window",
                format!(
                    "{:?} is shorter than Propexo's 2.5 hours of retries: a re-send would be \
                     handled twice",
                    self.duplicate_window
                ),
            ));
        }
        Ok(())
    }

    /// Creates the three streams, or checks that existing ones are safe: file storage, nothing
    /// that ages out or discards an unhandled delivery or a dead letter, work-queue retention
    /// for deliveries, a duplicate window of at least 2.5 hours. Warns when a stream has a single
    /// replica. Never changes an existing stream.
    ///
    /// # Errors
    ///
    /// [`NatsSetupError::Unsafe`] for a setting that could lose deliveries,
    /// [`NatsSetupError::Unavailable`] when the server cannot be reached.
    pub async fn ensure_stream(&self) -> Result<(), NatsSetupError> {
        self.check_names()?;
        let context = self.context();
        let main = stream::Config {
            name: self.stream.clone(),
            subjects: vec![deliveries_subject(&self.prefix)],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            discard: DiscardPolicy::New,
            ..Default::default()
        };
        let done = stream::Config {
            name: format!("{}_DONE", self.stream),
            subjects: vec![format!("{}.done.*", self.prefix)],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: self.replicas,
            max_age: self.duplicate_window,
            max_messages_per_subject: 1,
            discard: DiscardPolicy::Old,
            ..Default::default()
        };
        let dead = stream::Config {
            name: format!("{}_DEAD", self.stream),
            subjects: vec![format!("{}.dead.*", self.prefix)],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: self.replicas,
            max_messages_per_subject: 1,
            discard: DiscardPolicy::New,
            ..Default::default()
        };
        for (config, kind) in [(main, Kind::Main), (done, Kind::Done), (dead, Kind::Dead)] {
            let name = config.name.clone();
            let actual = match context.get_stream(&name).await {
                Ok(mut existing) => existing.info().await.map_err(unavailable)?.config.clone(),
                Err(error)
                    if matches!(
                        error.kind(),
                        jetstream::context::GetStreamErrorKind::JetStream(e)
                            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                    ) =>
                {
                    context
                        .create_stream(config.clone())
                        .await
                        .map_err(unavailable)?
                        .cached_info()
                        .config
                        .clone()
                }
                Err(error) => return Err(unavailable(error)),
            };
            check_stream(&actual, &config, kind, self.duplicate_window)?;
            if actual.num_replicas <= 1 {
                log::warn(format_args!(
                    "propexo webhook inbox: JetStream stream {name} has a single replica: an \
                     acknowledged delivery survives a crash of nats-server but not a power loss \
                     unless the server runs with `sync_interval: always`; use 3 replicas in a \
                     cluster"
                ));
            }
        }
        Ok(())
    }

    /// Creates the workers' durable pull consumer, or checks that an existing one is safe:
    /// explicit acks, `ack_wait` at least [`ack_wait`](Self::ack_wait), `MaxDeliver` unlimited
    /// or above `max_attempts`, every delivery of the stream. Never changes an existing consumer.
    ///
    /// # Errors
    ///
    /// As [`ensure_stream`](Self::ensure_stream).
    pub async fn ensure_consumer(&self) -> Result<(), NatsSetupError> {
        self.check_names()?;
        self.consumer_handle().await.map(drop)
    }

    async fn consumer_handle(&self) -> Result<PullConsumer, NatsSetupError> {
        let context = self.context();
        let stream = context
            .get_stream(&self.stream)
            .await
            .map_err(unavailable)?;
        let wanted = pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            filter_subject: deliveries_subject(&self.prefix),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        };
        let mut consumer: PullConsumer = stream
            .get_or_create_consumer(&self.consumer, wanted)
            .await
            .map_err(unavailable)?;
        let info = consumer.info().await.map_err(unavailable)?;
        let what = format!("consumer {} of stream {}", self.consumer, self.stream);
        let config = &info.config;
        if config.ack_policy != AckPolicy::Explicit {
            return Err(refuse(
                &what,
                format!(
                    "its ack policy is {:?}, not explicit: a delivery would count as handled \
                     before its handlers ran",
                    config.ack_policy
                ),
            ));
        }
        if config.ack_wait < self.ack_wait {
            return Err(refuse(
                &what,
                format!(
                    "its ack wait {:?} is shorter than the {:?} asked for: a second worker \
                     would take a delivery whose handlers still run",
                    config.ack_wait, self.ack_wait
                ),
            ));
        }
        if config.max_deliver > 0 && config.max_deliver <= i64::from(self.max_attempts) {
            return Err(refuse(
                &what,
                format!(
                    "its MaxDeliver {} is not above max_attempts {}: JetStream would stop \
                     delivering a delivery whose last worker died, without a dead letter",
                    config.max_deliver, self.max_attempts
                ),
            ));
        }
        let filter = deliveries_subject(&self.prefix);
        if !(config.filter_subject.is_empty() || config.filter_subject == filter) {
            return Err(refuse(
                &what,
                format!("it filters {:?}, not {filter:?}", config.filter_subject),
            ));
        }
        if config.deliver_policy != DeliverPolicy::All {
            return Err(refuse(
                &what,
                "its deliver policy skips deliveries stored before it was created",
            ));
        }
        Ok(consumer)
    }

    /// Ensures the streams and the consumer ([`ensure_stream`](Self::ensure_stream),
    /// [`ensure_consumer`](Self::ensure_consumer)) and opens the inbox.
    ///
    /// # Errors
    ///
    /// As [`ensure_stream`](Self::ensure_stream).
    pub async fn open(self) -> Result<NatsInbox, NatsSetupError> {
        self.ensure_stream().await?;
        let consumer = self.consumer_handle().await?;
        let context = self.context();
        let ack_wait = consumer.cached_info().config.ack_wait;
        let done = context
            .get_stream_no_info(format!("{}_DONE", self.stream))
            .await
            .map_err(unavailable)?;
        let dead = context
            .get_stream_no_info(format!("{}_DEAD", self.stream))
            .await
            .map_err(unavailable)?;
        let main = context
            .get_stream_no_info(&self.stream)
            .await
            .map_err(unavailable)?;
        Ok(NatsInbox {
            inner: Arc::new(Inner {
                client: self.client.clone(),
                subject: deliveries_subject(&self.prefix),
                prefix: self.prefix.clone(),
                consumer_name: self.consumer.clone(),
                context,
                main,
                done,
                dead,
                consumer,
                ack_wait,
                max_attempts: AtomicU32::new(self.max_attempts),
                verifier: self.verifier,
                local: Mutex::new(Local::default()),
            }),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Done,
    Dead,
}

fn check_stream(
    actual: &stream::Config,
    wanted: &stream::Config,
    kind: Kind,
    window: Duration,
) -> Result<(), NatsSetupError> {
    let what = format!("stream {}", actual.name);
    if actual.storage != StorageType::File {
        return Err(refuse(
            &what,
            "it is kept in memory: a restart of nats-server would lose every delivery",
        ));
    }
    for subject in &wanted.subjects {
        if !actual.subjects.contains(subject) {
            return Err(refuse(
                &what,
                format!("it does not take subject {subject:?}"),
            ));
        }
    }
    let limited = actual.max_messages > 0
        || actual.max_bytes > 0
        || actual.max_messages_per_subject > 0 && kind == Kind::Main;
    match kind {
        Kind::Main | Kind::Dead => {
            if !actual.max_age.is_zero() {
                return Err(refuse(
                    &what,
                    format!(
                        "its max age {:?} would delete deliveries nobody handled",
                        actual.max_age
                    ),
                ));
            }
            if limited && actual.discard == DiscardPolicy::Old {
                return Err(refuse(
                    &what,
                    "it has limits with the discard policy 'old': a full stream would drop \
                     stored deliveries rather than refuse new ones (which Propexo retries)",
                ));
            }
        }
        Kind::Done => {
            if actual.max_age < window {
                return Err(refuse(
                    &what,
                    format!(
                        "its max age {:?} is shorter than the duplicate window {window:?}",
                        actual.max_age
                    ),
                ));
            }
        }
    }
    if kind == Kind::Main {
        if actual.retention != RetentionPolicy::WorkQueue {
            return Err(refuse(
                &what,
                format!(
                    "its retention is {:?}, not work queue: handled deliveries would stay, or \
                     unhandled ones go when nobody is interested",
                    actual.retention
                ),
            ));
        }
        if actual.duplicate_window < window {
            return Err(refuse(
                &what,
                format!(
                    "its duplicate window {:?} is shorter than {window:?}: a re-send Propexo makes \
                     later would be stored and handled again",
                    actual.duplicate_window
                ),
            ));
        }
    }
    Ok(())
}

fn deliveries_subject(prefix: &str) -> String {
    format!("{prefix}.deliveries")
}

/// An [`Inbox`] on NATS JetStream: a thin, stateless receiver publishes each verified delivery
/// to a stream and answers once JetStream acknowledged it; a fleet of [`Workers`](super::Workers)
/// consumes them through one durable consumer.
///
/// Cheap to clone: clones share the connection and the leases.
///
/// ```no_run
/// # async fn run(verifier: propexo_webhooks::Verifier, dispatcher: propexo_webhooks::Dispatcher)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use propexo_webhooks::{NatsInbox, Receiver, WorkerConfig, Workers};
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let inbox = NatsInbox::builder(client).open().await?;
/// // The receiver: 202 once JetStream has the delivery.
/// let receiver = Receiver::with_inbox(verifier, inbox.clone());
/// // A worker: the lease is the consumer's ack wait.
/// let config = WorkerConfig::default().lease(inbox.ack_wait(), inbox.ack_wait() / 3);
/// let workers = Workers::start(inbox, dispatcher, config);
/// # Ok(()) }
/// ```
///
/// # Layout
///
/// Three streams, named after [`NatsInboxBuilder::stream`] (default `PROPEXO_WEBHOOKS`), under
/// one subject prefix (default `propexo.webhooks`):
///
/// | stream | subjects | holds |
/// |---|---|---|
/// | `PROPEXO_WEBHOOKS` | `<prefix>.deliveries` | deliveries not yet done (work-queue retention: an ack removes one) |
/// | `PROPEXO_WEBHOOKS_DONE` | `<prefix>.done.<key>` | one empty marker per handled delivery, aged out after the duplicate window |
/// | `PROPEXO_WEBHOOKS_DEAD` | `<prefix>.dead.<key>` | dead letters, until an operator requeues or deletes them |
///
/// Each message carries the raw body as its payload and, as NATS headers, the signature that
/// verified it (`Propexo-Signature`), the secret's index and label, and the request headers worth
/// keeping (`Propexo-Headers`: a JSON array of `<name>: <value>` lines, in order).
///
/// # De-duplication
///
/// A delivery is published with `Nats-Msg-Id` = its [`DeliveryKey`] in hex, so that JetStream
/// drops a re-send that arrives within the stream's duplicate window (3 hours by default, more
/// than Propexo's 2.5 hours of retries; JetStream's own default is 2 minutes). JetStream's window
/// does not know whether the delivery was handled, nor the event's [`DedupPolicy`]: an event
/// without a job id (`SYNC_COMPLETE`, ...) must not be de-duplicated once handled. So a worker
/// that completes a delivery also writes a *done marker* saying until when the delivery counts
/// as a duplicate (the window the dispatcher chose, zero for those events). When the publish ack
/// reports a duplicate, the inbox reads the marker: none means the delivery is still pending, in
/// flight or dead ([`Stored::AlreadyStored`]); a marker whose window has not ended means
/// [`Stored::Duplicate`]; a marker whose window has ended means the same bytes are a new event,
/// published again under the message id `<key>.<marker sequence>` (so that concurrent re-sends of
/// it are still one message). Windows longer than the stream's duplicate window end with it.
///
/// # Only verified deliveries
///
/// The receiver publishes only what [`Inbox::store`] is given, a [`VerifiedBody`]. Anybody who
/// may publish to `<prefix>.deliveries` can put a message there too, so restrict that subject
/// with NATS permissions to the receivers' user (and the operators who requeue dead letters), or
/// give the workers the secrets with [`NatsInboxBuilder::verify_again`]: each claimed delivery is
/// then verified again (an HMAC, microseconds), and one that does not verify becomes a dead
/// letter without reaching a handler.
///
/// # Leases and attempts
///
/// A claim fetches from a durable pull consumer with explicit acks, returning as soon as a
/// delivery is there or empty after 100 ms (a short long-poll). The lease is the consumer's
/// `ack_wait` (per consumer, not per claim: [`Workers`]' `lease` should be set to
/// [`NatsInbox::ack_wait`]); a heartbeat is an in-progress ack; a completion is an ack the server
/// confirms; a retry is a nak with the backoff as its delay. JetStream redelivers a message whose
/// `ack_wait` ran out, so [`Inbox::sweep`] only forgets this process's expired leases (a stale
/// worker's settlement then changes nothing here). The attempt count is JetStream's delivery
/// count. The consumer's `MaxDeliver` is unlimited, so JetStream never silently stops delivering:
/// a delivery past `max_attempts` (its last worker died holding it) is made a dead letter when it
/// is next claimed. Fencing across processes is JetStream's: a stale worker's ack still counts
/// if nobody acknowledged the redelivered copy first, so handlers must be idempotent (as they
/// must for every inbox: delivery is at least once).
///
/// # Stats
///
/// `pending` and `in_flight` come from the consumer (never delivered, and delivered but not
/// acknowledged); a delivery this process nak'd or whose lease expired here counts as pending
/// until redelivered (JetStream counts it as unacknowledged; other processes' stats do too).
/// `done` is the number of done markers (deliveries completed within the duplicate window),
/// `dead` the number of dead letters.
///
/// # Outages
///
/// A publish that times out is answered 503, but the client may still deliver it once the
/// connection is back: Propexo's re-send of it is then recognised as already stored (202).
/// Nothing answered 2xx is missing from the stream.
///
/// # Durability
///
/// A publish ack means the stream's leader (and, with replicas, a quorum) has the message in its
/// file store, not that it reached the disk: by default `nats-server` syncs its files every two
/// minutes, so a power loss (not a process crash) of a single-replica server can lose deliveries
/// already answered 2xx. For an acknowledged delivery to survive a power loss, run the stream
/// with 3 replicas (a cluster), or set `jetstream { sync_interval: always }` in the server's
/// configuration (nats-server 2.10 or later; every write is then synced). [`NatsInbox`] warns
/// when the stream has a single replica.
///
/// [`Workers`]: super::Workers
/// [`DedupPolicy`]: crate::DedupPolicy
#[derive(Clone)]
pub struct NatsInbox {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    context: Context,
    prefix: String,
    subject: String,
    consumer_name: String,
    main: jetstream::stream::Stream<()>,
    done: jetstream::stream::Stream<()>,
    dead: jetstream::stream::Stream<()>,
    consumer: PullConsumer,
    ack_wait: Duration,
    max_attempts: AtomicU32,
    verifier: Option<Verifier>,
    local: Mutex<Local>,
}

/// This process's leases.
#[derive(Default)]
struct Local {
    /// By claim id.
    held: HashMap<u64, Held>,
    /// Stream sequence → claim id of the lease that holds it.
    by_sequence: HashMap<u64, u64>,
    /// Stream sequences nak'd or expired here and not redelivered yet: JetStream still counts
    /// them as pending acks, [`Inbox::stats`] counts them as pending.
    waiting: HashSet<u64>,
}

struct Held {
    key: DeliveryKey,
    message: jetstream::Message,
    sequence: u64,
    attempts: u32,
    received_at: SystemTime,
    deadline: Instant,
}

impl NatsInbox {
    /// Sets up an inbox on `client`'s NATS system: see [`NatsInboxBuilder`] for the defaults.
    pub fn builder(client: async_nats::Client) -> NatsInboxBuilder {
        NatsInboxBuilder {
            client,
            prefix: "propexo.webhooks".to_owned(),
            stream: "PROPEXO_WEBHOOKS".to_owned(),
            consumer: "propexo-webhooks-workers".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(3 * 60 * 60),
            ack_wait: Duration::from_secs(60),
            max_attempts: 5,
            timeout: Duration::from_secs(5),
            verifier: None,
        }
    }

    /// Connects to `url` and opens the inbox with the default settings.
    ///
    /// # Errors
    ///
    /// As [`NatsInboxBuilder::ensure_stream`].
    pub async fn connect(url: &str) -> Result<Self, NatsSetupError> {
        let client = async_nats::connect(url).await.map_err(unavailable)?;
        Self::builder(client).open().await
    }

    /// The consumer's `ack_wait`: the lease of every claim. Give it to
    /// [`WorkerConfig::lease`](super::WorkerConfig::lease).
    pub fn ack_wait(&self) -> Duration {
        self.inner.ack_wait
    }

    /// The subject deliveries are published to.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The NATS client the inbox uses.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }
}

impl fmt::Debug for NatsInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsInbox")
            .field("subject", &self.inner.subject)
            .field("consumer", &self.inner.consumer_name)
            .field("ack_wait", &self.inner.ack_wait)
            .finish_non_exhaustive()
    }
}

fn lock(local: &Mutex<Local>) -> MutexGuard<'_, Local> {
    local.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

/// NATS header values end at a line break: keep a reason on one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The headers that carry a delivery's signature, secret and request headers.
fn delivery_headers(delivery: &StoredDelivery) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(H_SIGNATURE, delivery.signature.as_str());
    headers.insert(H_SECRET_INDEX, delivery.secret_index.to_string());
    if let Some(label) = &delivery.secret_label {
        headers.insert(H_SECRET_LABEL, one_line(label));
    }
    // One header holding a JSON array of `name: value` lines: JetStream's stored-message API
    // (dead letters are read through it) keeps only the last value of a repeated header.
    if !delivery.headers.is_empty() {
        let lines: Vec<&str> = delivery.headers.lines().collect();
        if let Ok(json) = serde_json::to_string(&lines) {
            headers.insert(H_HEADERS, json);
        }
    }
    headers
}

/// The delivery a message carries. A message that lacks the signature was not written by this
/// crate: it gets an empty one, which the worker refuses (a dead letter, never a handler run).
fn stored_delivery(headers: Option<&HeaderMap>, body: Bytes) -> StoredDelivery {
    let get = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let mut kept = String::new();
    let lines = get(H_HEADERS)
        .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
        .unwrap_or_default();
    for line in lines {
        kept.push_str(&line);
        kept.push('\n');
    }
    StoredDelivery {
        body,
        signature: get(H_SIGNATURE).unwrap_or_default(),
        secret_index: get(H_SECRET_INDEX)
            .and_then(|index| index.parse().ok())
            .unwrap_or(0),
        secret_label: get(H_SECRET_LABEL),
        headers: kept,
    }
}

fn dead_letter_of(message: &StreamMessage) -> DeadLetter {
    let headers = Some(&message.headers);
    let get = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
    let delivery = stored_delivery(headers, message.payload.clone());
    let died_at = SystemTime::from(message.time);
    DeadLetter {
        key: delivery.key(),
        attempts: get(H_ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
        reason: get(H_REASON).unwrap_or_default(),
        received_at: get(H_RECEIVED_AT)
            .and_then(|ms| ms.parse().ok())
            .map_or(died_at, from_unix_millis),
        died_at,
        delivery,
    }
}

fn is_no_message(error: &jetstream::stream::LastRawMessageError) -> bool {
    matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound)
        || matches!(error.kind(), LastRawMessageErrorKind::JetStream(e) if e.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND)
}

impl Inner {
    fn done_subject(&self, key: &DeliveryKey) -> String {
        format!("{}.done.{key}", self.prefix)
    }

    fn dead_subject(&self, key: &DeliveryKey) -> String {
        format!("{}.dead.{key}", self.prefix)
    }

    /// Publishes and waits for JetStream's ack: `Ok(true)` when stored, `Ok(false)` for a
    /// duplicate.
    async fn publish(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(bool, u64), InboxError> {
        let ack = self
            .context
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(InboxError::unavailable)?
            .await
            .map_err(InboxError::unavailable)?;
        Ok((!ack.duplicate, ack.sequence))
    }

    async fn last_of(
        &self,
        stream: &jetstream::stream::Stream<()>,
        subject: &str,
    ) -> Result<Option<StreamMessage>, InboxError> {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Some(message)),
            Err(error) if is_no_message(&error) => Ok(None),
            Err(error) => Err(InboxError::unavailable(error)),
        }
    }

    async fn store(&self, delivery: &VerifiedBody) -> Result<Stored, InboxError> {
        let stored = StoredDelivery::from_verified(delivery);
        let key = stored.key();
        let mut headers = delivery_headers(&stored);
        headers.insert(H_MSG_ID, key.to_string());
        let (new, _) = self
            .publish(self.subject.clone(), headers, stored.body.clone())
            .await?;
        if new {
            return Ok(Stored::New);
        }
        // A duplicate of a message id: pending, in flight, dead, or done (see the module docs).
        let Some(marker) = self.last_of(&self.done, &self.done_subject(&key)).await? else {
            return Ok(Stored::AlreadyStored);
        };
        let until = marker
            .headers
            .get(H_DONE_UNTIL)
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .map_or(UNIX_EPOCH, from_unix_millis);
        if until > SystemTime::now() {
            return Ok(Stored::Duplicate);
        }
        let mut headers = delivery_headers(&stored);
        headers.insert(H_MSG_ID, format!("{key}.{}", marker.sequence));
        let (new, _) = self
            .publish(self.subject.clone(), headers, stored.body)
            .await?;
        Ok(if new {
            Stored::New
        } else {
            Stored::AlreadyStored
        })
    }

    /// Publishes a dead letter, then terminates the message.
    async fn bury(
        &self,
        message: &jetstream::Message,
        key: &DeliveryKey,
        attempts: u32,
        received_at: SystemTime,
        reason: &str,
    ) -> Result<(), InboxError> {
        let delivery = stored_delivery(message.headers.as_ref(), message.payload.clone());
        let mut headers = delivery_headers(&delivery);
        headers.insert(H_REASON, one_line(reason));
        headers.insert(H_ATTEMPTS, attempts.to_string());
        headers.insert(H_RECEIVED_AT, unix_millis(received_at).to_string());
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        headers.insert(H_MSG_ID, format!("dead.{key}.{sequence}"));
        self.publish(self.dead_subject(key), headers, delivery.body)
            .await?;
        message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(InboxError::Unavailable)
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Leased>, InboxError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(limit.max(1))
            // Without an expiry, a no-wait pull that finds messages pending but none
            // deliverable (a nak's delay running) is never answered. With one, it returns as
            // soon as it has a message, or empty after FETCH_WAIT: a short long-poll.
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(InboxError::unavailable)?;
        let max_attempts = self.max_attempts.load(Ordering::Relaxed);
        let mut leased = Vec::new();
        while let Some(message) = batch.next().await {
            let message = match message {
                Ok(message) => message,
                // Keep what was leased already; the rest stays for the next claim.
                Err(error) if !leased.is_empty() => {
                    log::warn(format_args!(
                        "propexo webhook inbox: a JetStream fetch ended early: {error}"
                    ));
                    break;
                }
                Err(error) => return Err(InboxError::unavailable(error)),
            };
            let (sequence, delivered, received_at) = match message.info() {
                Ok(info) => (
                    info.stream_sequence,
                    u32::try_from(info.delivered).unwrap_or(u32::MAX),
                    SystemTime::from(info.published),
                ),
                Err(error) => {
                    log::warn(format_args!(
                        "propexo webhook inbox: a JetStream message without its metadata: {error}"
                    ));
                    continue;
                }
            };
            let delivery = stored_delivery(message.headers.as_ref(), message.payload.clone());
            let key = delivery.key();
            {
                let mut local = lock(&self.local);
                local.waiting.remove(&sequence);
                if let Some(stale) = local.by_sequence.remove(&sequence) {
                    local.held.remove(&stale);
                }
            }
            let refused = match &self.verifier {
                Some(verifier)
                    if verifier
                        .verify(&delivery.body, &delivery.signature)
                        .is_err() =>
                {
                    Some(
                        "its signature does not verify with the configured secrets: it was not \
                          stored by a receiver"
                            .to_owned(),
                    )
                }
                _ if delivered > max_attempts => Some(format!(
                    "lease expired {} time(s): the worker holding it died or stalled, and \
                     max_attempts is {max_attempts}",
                    delivered.saturating_sub(1)
                )),
                _ => None,
            };
            if let Some(reason) = refused {
                log::error(format_args!(
                    "propexo webhook inbox: delivery {key} is a dead letter: {reason}"
                ));
                let attempts = delivered.saturating_sub(1);
                if let Err(error) = self
                    .bury(&message, &key, attempts, received_at, &reason)
                    .await
                {
                    // JetStream delivers it again after the ack wait; that claim retries.
                    log::warn(format_args!(
                        "propexo webhook inbox: delivery {key}: cannot make it a dead letter: \
                         {error}"
                    ));
                }
                continue;
            }
            let lease = Lease::new(key);
            let mut local = lock(&self.local);
            local.by_sequence.insert(sequence, lease.claim_id);
            local.held.insert(
                lease.claim_id,
                Held {
                    key,
                    message,
                    sequence,
                    attempts: delivered,
                    received_at,
                    deadline: Instant::now() + self.ack_wait,
                },
            );
            leased.push(Leased {
                lease,
                delivery,
                attempts: delivered,
            });
        }
        Ok(leased)
    }

    /// Takes this process's lease `lease` out of the local state.
    fn take(&self, lease: &Lease) -> Option<Held> {
        let mut local = lock(&self.local);
        match local.held.get(&lease.claim_id) {
            Some(held) if held.key == lease.key => {}
            _ => return None,
        }
        let held = local.held.remove(&lease.claim_id)?;
        local.by_sequence.remove(&held.sequence);
        Some(held)
    }

    async fn heartbeat(&self, lease: &Lease) -> Result<bool, InboxError> {
        let message = {
            let local = lock(&self.local);
            match local.held.get(&lease.claim_id) {
                Some(held) if held.key == lease.key => held.message.clone(),
                _ => return Ok(false),
            }
        };
        message
            .ack_with(AckKind::Progress)
            .await
            .map_err(InboxError::Unavailable)?;
        self.client.flush().await.map_err(InboxError::unavailable)?;
        let mut local = lock(&self.local);
        if let Some(held) = local.held.get_mut(&lease.claim_id) {
            held.deadline = Instant::now() + self.ack_wait;
        }
        Ok(true)
    }

    async fn complete(&self, lease: &Lease, window: Duration) -> Result<bool, InboxError> {
        let Some(held) = self.take(lease) else {
            return Ok(false);
        };
        let until = SystemTime::now() + window;
        let mut headers = HeaderMap::new();
        headers.insert(H_DONE_UNTIL, unix_millis(until).to_string());
        self.publish(self.done_subject(&held.key), headers, Bytes::new())
            .await?;
        held.message
            .double_ack()
            .await
            .map_err(InboxError::Unavailable)?;
        Ok(true)
    }

    async fn fail(&self, lease: &Lease, next: Retry) -> Result<bool, InboxError> {
        let Some(held) = self.take(lease) else {
            return Ok(false);
        };
        match next {
            Retry::After { delay, .. } => {
                let kind = AckKind::Nak((!delay.is_zero()).then_some(delay));
                held.message
                    .double_ack_with(kind)
                    .await
                    .map_err(InboxError::Unavailable)?;
                lock(&self.local).waiting.insert(held.sequence);
            }
            Retry::Dead { reason } => {
                self.bury(
                    &held.message,
                    &held.key,
                    held.attempts,
                    held.received_at,
                    &reason,
                )
                .await?;
            }
        }
        Ok(true)
    }

    fn sweep(&self, max_attempts: u32) -> u64 {
        self.max_attempts
            .store(max_attempts.max(1), Ordering::Relaxed);
        let now = Instant::now();
        let mut local = lock(&self.local);
        let expired: Vec<u64> = local
            .held
            .iter()
            .filter(|(_, held)| held.deadline <= now)
            .map(|(claim_id, _)| *claim_id)
            .collect();
        for claim_id in &expired {
            if let Some(held) = local.held.remove(claim_id) {
                local.by_sequence.remove(&held.sequence);
                local.waiting.insert(held.sequence);
            }
        }
        u64::try_from(expired.len()).unwrap_or(u64::MAX)
    }

    async fn stats(&self) -> Result<InboxStats, InboxError> {
        let consumer = self
            .main
            .consumer_info(&self.consumer_name)
            .await
            .map_err(InboxError::unavailable)?;
        let done = self
            .done
            .get_info()
            .await
            .map_err(InboxError::unavailable)?;
        let dead = self
            .dead
            .get_info()
            .await
            .map_err(InboxError::unavailable)?;
        let ack_pending = u64::try_from(consumer.num_ack_pending).unwrap_or(u64::MAX);
        let waiting = {
            let mut local = lock(&self.local);
            if ack_pending == 0 {
                local.waiting.clear();
            }
            u64::try_from(local.waiting.len()).unwrap_or(u64::MAX)
        }
        .min(ack_pending);
        let stats = InboxStats {
            pending: consumer.num_pending + waiting,
            in_flight: ack_pending - waiting,
            done: done.state.messages,
            dead: dead.state.messages,
        };
        Ok(stats)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, InboxError> {
        let filter = format!("{}.dead.*", self.prefix);
        let mut letters = Vec::new();
        let mut sequence = 1;
        while letters.len() < limit {
            let next = self
                .dead
                .raw_message_builder()
                .sequence(sequence)
                .next_by_subject(filter.clone())
                .send()
                .await;
            match next {
                Ok(message) => {
                    sequence = message.sequence + 1;
                    letters.push(dead_letter_of(&message));
                }
                Err(error) if is_no_message(&error) => break,
                Err(error) => return Err(InboxError::unavailable(error)),
            }
        }
        Ok(letters)
    }

    async fn requeue(&self, key: &DeliveryKey) -> Result<bool, InboxError> {
        let Some(dead) = self.last_of(&self.dead, &self.dead_subject(key)).await? else {
            return Ok(false);
        };
        let delivery = stored_delivery(Some(&dead.headers), dead.payload.clone());
        let mut headers = delivery_headers(&delivery);
        headers.insert(H_MSG_ID, format!("{key}.requeue.{}", dead.sequence));
        self.publish(self.subject.clone(), headers, delivery.body)
            .await?;
        self.dead
            .delete_message(dead.sequence)
            .await
            .map_err(InboxError::unavailable)
    }

    async fn delete(&self, key: &DeliveryKey) -> Result<bool, InboxError> {
        let Some(dead) = self.last_of(&self.dead, &self.dead_subject(key)).await? else {
            return Ok(false);
        };
        self.dead
            .delete_message(dead.sequence)
            .await
            .map_err(InboxError::unavailable)
    }
}

impl Inbox for NatsInbox {
    fn store<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
    ) -> BoxFuture<'a, Result<Stored, InboxError>> {
        Box::pin(self.inner.store(delivery))
    }

    fn claim(
        &self,
        limit: usize,
        _lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(self.inner.claim(limit))
    }

    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        _duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.inner.heartbeat(lease))
    }

    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.inner.complete(lease, window))
    }

    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        next: Retry,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.inner.fail(lease, next))
    }

    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>> {
        let swept = self.inner.sweep(max_attempts);
        Box::pin(async move { Ok(swept) })
    }

    /// Nothing to do: done markers age out with the `_DONE` stream's max age (the duplicate
    /// window).
    fn purge(&self, _retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(async { Ok(0) })
    }

    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>> {
        Box::pin(self.inner.stats())
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>> {
        Box::pin(self.inner.dead_letters(limit))
    }

    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>> {
        Box::pin(async move {
            let subject = self.inner.dead_subject(key);
            Ok(self
                .inner
                .last_of(&self.inner.dead, &subject)
                .await?
                .as_ref()
                .map(dead_letter_of))
        })
    }

    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.inner.requeue(key))
    }

    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.inner.delete(key))
    }
}
