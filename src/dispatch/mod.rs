//! Routing verified deliveries to handlers, and deciding what to answer Propexo.

mod delivery;
mod handler;
mod idempotency;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

pub use delivery::{Delivery, MalformedDelivery, VerifiedBody};
pub use handler::{BoxError, BoxFuture, Handler, IsAsync, IsSync};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use idempotency::MemoryIdempotencyStore;
pub use idempotency::{Claim, DedupPolicy, DeliveryKey, IdempotencyStore};

use handler::{CatchUnwind, JoinAll, call_catching};

use crate::{Error, EventType, ObjectType, Record, WebhookEvent};

type ErasedHandler<T> = Arc<dyn Fn(T) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;
type ErrorObserver = Arc<dyn Fn(&HandlerError) + Send + Sync>;

/// Prepares a route's handler future for a delivery, or says the delivery does not fit the
/// route's typed input (which makes the delivery malformed).
type Prepare =
    Arc<dyn Fn(&Delivery) -> Result<BoxFuture<'static, Result<(), BoxError>>, Error> + Send + Sync>;

/// Routes verified Propexo deliveries to async handlers, and says whether to acknowledge them.
///
/// Build it once, like an axum `Router`, and share it (it is `Send + Sync`; wrap it in an `Arc`
/// or clone it):
///
/// - [`on`](Self::on) runs a handler for every event of a trigger;
/// - [`on_object`](Self::on_object) for a trigger on one object type (leases, residents, ...);
/// - [`on_new`](Self::on_new) and [`on_update`](Self::on_update) for new and changed records
///   of one type, parsed into that type ([`records`](crate::records));
/// - [`fallback`](Self::fallback) for events no route matched (unknown triggers land here);
/// - [`on_malformed`](Self::on_malformed) for a verified body that is not a valid event;
/// - [`on_error`](Self::on_error) to observe handler failures;
/// - [`idempotency`](Self::idempotency) to run the handlers of a re-sent delivery only once,
///   and [`dedup`](Self::dedup) to say for how long, per kind of event.
///
/// Every matching route runs, **concurrently** on the dispatching task (not spawned: the core
/// needs no runtime), and all of them run even when one fails. The delivery is acknowledged only
/// when all succeed; a failure or a panic in any handler makes [`Outcome`] ask Propexo to send
/// the delivery again (every 15 minutes, at most 10 times), and every error is reported.
///
/// # Examples
///
/// ```
/// use propexo_webhooks::{Dispatcher, EventType, ObjectType, Delivery, WebhookEvent};
///
/// async fn on_lease_update(delivery: Delivery) -> Result<(), std::io::Error> {
///     if let WebhookEvent::DataUpdate(update) = delivery.event() {
///         if update.diff.changed_from_to("status", &"pending".to_owned(), &"approved".to_owned()) {
///             // Email the tenant.
///         }
///     }
///     Ok(())
/// }
///
/// let dispatcher = Dispatcher::new()
///     .on_object(ObjectType::Leases, EventType::DataUpdate, on_lease_update)
///     .on(EventType::JobFailure, |delivery: Delivery| {
///         eprintln!("job failed: {:?}", delivery.event().job_id());
///         Ok::<_, std::convert::Infallible>(())
///     })
///     .fallback(|_| Ok::<_, std::convert::Infallible>(()));
/// ```
#[derive(Clone, Default)]
pub struct Dispatcher {
    routes: Vec<Route>,
    fallback: Option<ErasedHandler<Delivery>>,
    on_malformed: Option<ErasedHandler<MalformedDelivery>>,
    on_error: Option<ErrorObserver>,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    dedup: DedupPolicy,
}

#[derive(Clone)]
struct Route {
    filter: Filter,
    /// The filter, written once: it names the route in failure reports.
    label: Arc<str>,
    prepare: Prepare,
}

impl Route {
    fn new(filter: Filter, prepare: Prepare) -> Self {
        Self {
            label: filter.to_string().into(),
            filter,
            prepare,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    trigger: EventType,
    object: Option<ObjectType>,
}

impl Filter {
    fn matches(&self, event: &WebhookEvent) -> bool {
        self.trigger == event.event_type()
            && self
                .object
                .as_ref()
                .is_none_or(|object| event.object() == Some(object))
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{} {object}", self.trigger),
            None => write!(f, "{}", self.trigger),
        }
    }
}

impl Dispatcher {
    /// A dispatcher with no routes: it acknowledges every valid event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `handler` for every event of `trigger`.
    ///
    /// `handler` is an async function or closure taking a [`Delivery`] and returning
    /// `Result<(), E>`, or a plain closure returning `Result<(), E>` directly.
    #[must_use]
    pub fn on<H, M>(self, trigger: EventType, handler: H) -> Self
    where
        H: Handler<Delivery, M>,
    {
        self.route(
            Filter {
                trigger,
                object: None,
            },
            handler,
        )
    }

    /// Runs `handler` for every event of `trigger` about records of `object`, e.g. leases and
    /// DATA_UPDATE.
    #[must_use]
    pub fn on_object<H, M>(self, object: ObjectType, trigger: EventType, handler: H) -> Self
    where
        H: Handler<Delivery, M>,
    {
        self.route(
            Filter {
                trigger,
                object: Some(object),
            },
            handler,
        )
    }

    /// Runs `handler` for every new record of type `R` (DATA_NEW of `R`'s object type), handing
    /// it the payload parsed as `R`.
    ///
    /// A payload that does not fit `R` makes the delivery malformed: it goes to
    /// [`on_malformed`](Self::on_malformed), and no handler runs for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::{Dispatcher, NewRecord};
    /// use propexo_webhooks::records::Resident;
    ///
    /// let dispatcher = Dispatcher::new().on_new(|new: NewRecord<Resident>| async move {
    ///     println!("welcome, {:?}", new.record.first_name);
    ///     Ok::<_, std::convert::Infallible>(())
    /// });
    /// ```
    #[must_use]
    pub fn on_new<R, H, M>(mut self, handler: H) -> Self
    where
        R: Record,
        H: Handler<NewRecord<R>, M>,
    {
        let handler = Arc::new(handler);
        self.routes.push(Route::new(
            Filter {
                trigger: EventType::DataNew,
                object: Some(R::OBJECT_TYPE),
            },
            Arc::new(move |delivery: &Delivery| {
                let record = match delivery.event() {
                    WebhookEvent::DataNew(new) => new.payload_as::<R>()?,
                    other => return Err(mismatch::<R>(other)),
                };
                Ok(handler.call(NewRecord {
                    delivery: delivery.clone(),
                    record,
                }))
            }),
        ));
        self
    }

    /// Runs `handler` for every change to a record of type `R` (DATA_UPDATE of `R`'s object
    /// type), handing it both sides of the diff parsed as `R`: the changed fields set, every
    /// other field `None`.
    ///
    /// A side that does not fit `R` makes the delivery malformed: it goes to
    /// [`on_malformed`](Self::on_malformed), and no handler runs for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::{Dispatcher, UpdatedRecord};
    /// use propexo_webhooks::records::{Lease, LeaseStatus};
    ///
    /// let dispatcher = Dispatcher::new().on_update(|lease: UpdatedRecord<Lease>| async move {
    ///     if lease.previous.status_normalized == Some(Some(LeaseStatus::Pending))
    ///         && lease.new.status_normalized == Some(Some(LeaseStatus::Active))
    ///     {
    ///         // The lease was approved: email the tenant.
    ///     }
    ///     Ok::<_, std::convert::Infallible>(())
    /// });
    /// ```
    #[must_use]
    pub fn on_update<R, H, M>(mut self, handler: H) -> Self
    where
        R: Record,
        H: Handler<UpdatedRecord<R>, M>,
    {
        let handler = Arc::new(handler);
        self.routes.push(Route::new(
            Filter {
                trigger: EventType::DataUpdate,
                object: Some(R::OBJECT_TYPE),
            },
            Arc::new(move |delivery: &Delivery| {
                let (previous, new) = match delivery.event() {
                    WebhookEvent::DataUpdate(update) => {
                        (update.diff.previous_as::<R>()?, update.diff.new_as::<R>()?)
                    }
                    other => return Err(mismatch::<R>(other)),
                };
                Ok(handler.call(UpdatedRecord {
                    delivery: delivery.clone(),
                    previous,
                    new,
                }))
            }),
        ));
        self
    }

    fn route<H, M>(mut self, filter: Filter, handler: H) -> Self
    where
        H: Handler<Delivery, M>,
    {
        let handler = Arc::new(handler);
        self.routes.push(Route::new(
            filter,
            Arc::new(move |delivery: &Delivery| Ok(handler.call(delivery.clone()))),
        ));
        self
    }

    /// Runs `handler` for events that no route matched, unknown triggers included.
    ///
    /// Without a fallback such events are acknowledged without running anything.
    #[must_use]
    pub fn fallback<H, M>(mut self, handler: H) -> Self
    where
        H: Handler<Delivery, M>,
    {
        self.fallback = Some(erase(handler));
        self
    }

    /// Runs `handler` for a verified body that is not a valid event: not JSON, or a known
    /// trigger whose fields do not have the documented types. It receives the raw bytes and
    /// the parse error, so it can store them instead of losing them.
    ///
    /// Its result decides the answer: `Ok` acknowledges the delivery (it is stored, Propexo
    /// need not send it again), `Err` asks Propexo to retry. Without this handler a malformed
    /// delivery is answered `422 Unprocessable Entity`, so Propexo retries it for about 2.5
    /// hours: time to deploy a version of the receiver that understands it.
    #[must_use]
    pub fn on_malformed<H, M>(mut self, handler: H) -> Self
    where
        H: Handler<MalformedDelivery, M>,
    {
        self.on_malformed = Some(erase(handler));
        self
    }

    /// Calls `observer` for every handler failure (an error or a panic), e.g. to log it.
    #[must_use]
    pub fn on_error(mut self, observer: impl Fn(&HandlerError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(observer));
        self
    }

    /// Remembers handled deliveries in `store`, so that a re-sent delivery whose handlers all
    /// succeeded is acknowledged without running them again (within its [`DedupPolicy`]
    /// window), and two concurrent copies of one delivery do not both run them. See
    /// [`IdempotencyStore`] and [`MemoryIdempotencyStore`].
    #[must_use]
    pub fn idempotency(mut self, store: impl IdempotencyStore) -> Self {
        self.idempotency = Some(Arc::new(store));
        self
    }

    /// How long the idempotency store remembers a handled delivery, per kind of event (default:
    /// [`DedupPolicy::new`]: 3 hours for events with a job id, none for the others).
    ///
    /// `Dispatcher::new().dedup(DedupPolicy::uniform(window))` gives every event one window.
    #[must_use]
    pub fn dedup(mut self, policy: DedupPolicy) -> Self {
        self.dedup = policy;
        self
    }

    /// The de-duplication policy in use.
    pub fn dedup_policy(&self) -> &DedupPolicy {
        &self.dedup
    }

    /// Parses a verified body, runs the handlers that match it, and says what to answer.
    pub async fn dispatch(&self, body: VerifiedBody) -> Outcome {
        let Some(store) = &self.idempotency else {
            return self.run(body).await.0;
        };
        let key = DeliveryKey::from_body(&body.body);
        match store.claim(&key).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Completed) => return Outcome::Duplicate,
            Ok(Claim::InProgress) => return Outcome::InProgress,
            Err(error) => return Outcome::StoreUnavailable(error),
        }
        // If this future is dropped before the claim is settled, give the claim up.
        let mut guard = ClaimGuard {
            store: store.as_ref(),
            key: &key,
            settled: false,
        };
        let (outcome, window) = self.run(body).await;
        let acknowledged = window.is_some();
        let settled = match window {
            Some(window) => store.complete(&key, window).await,
            None => store.release(&key).await,
        };
        guard.settled = true;
        match settled {
            Ok(()) => outcome,
            // Handlers succeeded but cannot be remembered: acknowledging is still right (a
            // retry would run them again), but say so.
            Err(error) if acknowledged => {
                self.observe(&HandlerError::new(
                    "idempotency store".to_owned(),
                    Failure::Error(error),
                ));
                outcome
            }
            Err(error) => Outcome::StoreUnavailable(error),
        }
    }

    /// Runs the handlers. `Some(window)` when the outcome acknowledges the delivery: how long
    /// to remember it, per the de-duplication policy.
    pub(crate) async fn run(&self, body: VerifiedBody) -> (Outcome, Option<Duration>) {
        let event = match WebhookEvent::from_slice(&body.body) {
            Ok(event) => event,
            Err(error) => return self.malformed(body, error).await,
        };
        let delivery = Delivery::new(event, body);
        // A handler may panic as soon as it is called (a plain closure runs right then), or
        // while its future is polled: both are caught and count as that handler's failure.
        let mut started = Vec::new();
        for route in &self.routes {
            if route.filter.matches(delivery.event()) {
                match call_catching(|| (route.prepare)(&delivery)) {
                    Ok(Ok(future)) => started.push((&*route.label, Ok(future))),
                    Ok(Err(error)) => {
                        return self.malformed(delivery.source().clone(), error).await;
                    }
                    Err(panic) => started.push((&*route.label, Err(panic))),
                }
            }
        }
        if started.is_empty()
            && let Some(fallback) = &self.fallback
        {
            let future = call_catching(|| fallback(delivery.clone()));
            started.push(("fallback", future));
        }
        let handlers = started.len();
        let results = JoinAll::new(started.into_iter().map(|(route, started)| async move {
            let result = match started {
                Ok(future) => CatchUnwind::new(future).await,
                Err(panic) => Err(panic),
            };
            (route, result)
        }))
        .await;
        let errors: Vec<HandlerError> = results
            .into_iter()
            .filter_map(|(route, result)| match result {
                Ok(Ok(())) => None,
                Ok(Err(error)) => Some(HandlerError::new(route.to_owned(), Failure::Error(error))),
                Err(panic) => Some(HandlerError::new(route.to_owned(), Failure::Panic(panic))),
            })
            .collect();
        errors.iter().for_each(|error| self.observe(error));
        if errors.is_empty() {
            let window = self.dedup.window(delivery.event());
            (Outcome::Handled { handlers }, Some(window))
        } else {
            (Outcome::Failed(HandlerErrors(errors)), None)
        }
    }

    async fn malformed(&self, source: VerifiedBody, error: Error) -> (Outcome, Option<Duration>) {
        let Some(handler) = &self.on_malformed else {
            return (
                Outcome::Malformed(Malformed {
                    error,
                    stored: None,
                }),
                None,
            );
        };
        let delivery = MalformedDelivery {
            source,
            error: error.clone(),
        };
        let result = match call_catching(|| handler(delivery)) {
            Ok(future) => CatchUnwind::new(future).await,
            Err(panic) => Err(panic),
        };
        let stored = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) => Err(HandlerError::new(
                "on_malformed".to_owned(),
                Failure::Error(failure),
            )),
            Err(panic) => Err(HandlerError::new(
                "on_malformed".to_owned(),
                Failure::Panic(panic),
            )),
        };
        if let Err(failure) = &stored {
            self.observe(failure);
        }
        let window = stored.is_ok().then(|| self.dedup.malformed_window());
        (
            Outcome::Malformed(Malformed {
                error,
                stored: Some(stored),
            }),
            window,
        )
    }

    fn observe(&self, error: &HandlerError) {
        if let Some(observer) = &self.on_error {
            // An observer that panics must not turn a handled failure into a crash.
            let _ = call_catching(|| observer(error));
        }
    }
}

/// The error for a typed route given an event its filter should have kept out.
fn mismatch<R: Record>(event: &WebhookEvent) -> Error {
    Error::ObjectMismatch {
        expected: R::OBJECT_TYPE,
        found: event.object().cloned(),
    }
}

/// A new record, parsed as `R`: what an [`on_new`](Dispatcher::on_new) handler receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewRecord<R> {
    /// The whole delivery: the event, the raw body, which secret verified it.
    pub delivery: Delivery,
    /// The payload, possibly partial (absent keys are `None`).
    pub record: R,
}

/// A changed record, both sides parsed as `R`: what an [`on_update`](Dispatcher::on_update)
/// handler receives. Only the fields that changed are set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpdatedRecord<R> {
    /// The whole delivery: the event, the raw body, which secret verified it.
    pub delivery: Delivery,
    /// The changed fields before the change.
    pub previous: R,
    /// The changed fields after the change.
    pub new: R,
}

fn erase<T, H, M>(handler: H) -> ErasedHandler<T>
where
    H: Handler<T, M>,
{
    Arc::new(move |input: T| handler.call(input))
}

/// Gives up an idempotency claim if the dispatch is dropped before it settled it.
struct ClaimGuard<'a> {
    store: &'a dyn IdempotencyStore,
    key: &'a DeliveryKey,
    settled: bool,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.store.abandon(self.key);
        }
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|route| route.label.to_string())
            .collect();
        f.debug_struct("Dispatcher")
            .field("routes", &routes)
            .field("fallback", &self.fallback.is_some())
            .field("on_malformed", &self.on_malformed.is_some())
            .field("on_error", &self.on_error.is_some())
            .field("idempotency", &self.idempotency.is_some())
            .field("dedup", &self.dedup)
            .finish()
    }
}

/// What dispatching a delivery came to, and so what to answer Propexo.
///
/// [`is_acknowledged`](Self::is_acknowledged) says whether to answer 2xx (Propexo is done with
/// the delivery) or not (Propexo sends it again in 15 minutes, at most 10 times);
/// [`status`](Self::status) gives the status code the adapters use.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Every matching handler succeeded (`handlers` may be 0: nothing needed to run).
    Handled {
        /// How many handlers ran.
        handlers: usize,
    },
    /// The delivery was handled successfully before; the handlers did not run again.
    Duplicate,
    /// At least one handler failed or panicked; every failure is listed.
    Failed(HandlerErrors),
    /// Another copy of the same delivery is being handled right now.
    InProgress,
    /// The verified body is not a valid event.
    Malformed(Malformed),
    /// The idempotency store could not be reached.
    StoreUnavailable(BoxError),
}

impl Outcome {
    /// Whether Propexo should consider the delivery done (a 2xx answer).
    pub fn is_acknowledged(&self) -> bool {
        match self {
            Self::Handled { .. } | Self::Duplicate => true,
            Self::Malformed(malformed) => malformed.is_stored(),
            Self::Failed(_) | Self::InProgress | Self::StoreUnavailable(_) => false,
        }
    }

    /// The HTTP status to answer with:
    ///
    /// | outcome | status |
    /// |---|---|
    /// | handled, duplicate, malformed and stored | 200 OK |
    /// | a handler failed or panicked, `on_malformed` failed | 500 Internal Server Error |
    /// | malformed, no `on_malformed` handler | 422 Unprocessable Entity |
    /// | another copy in progress | 409 Conflict |
    /// | idempotency store unavailable | 503 Service Unavailable |
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Handled { .. } | Self::Duplicate => StatusCode::OK,
            Self::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InProgress => StatusCode::CONFLICT,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Malformed(malformed) => match &malformed.stored {
                Some(Ok(())) => StatusCode::OK,
                Some(Err(_)) => StatusCode::INTERNAL_SERVER_ERROR,
                None => StatusCode::UNPROCESSABLE_ENTITY,
            },
        }
    }
}

/// A verified body that did not parse, and what `on_malformed` made of it.
#[derive(Debug)]
pub struct Malformed {
    error: Error,
    stored: Option<Result<(), HandlerError>>,
}

impl Malformed {
    /// Why the body is not a valid event.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Whether the `on_malformed` handler ran and succeeded.
    pub fn is_stored(&self) -> bool {
        matches!(self.stored, Some(Ok(())))
    }

    /// The `on_malformed` handler's failure, if it failed.
    pub fn handler_error(&self) -> Option<&HandlerError> {
        self.stored
            .as_ref()
            .and_then(|stored| stored.as_ref().err())
    }
}

/// Every handler failure of one delivery.
#[derive(Debug)]
pub struct HandlerErrors(Vec<HandlerError>);

impl HandlerErrors {
    /// The failures, in route order.
    pub fn iter(&self) -> impl Iterator<Item = &HandlerError> {
        self.0.iter()
    }

    /// Number of failures.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never, in an [`Outcome::Failed`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for HandlerErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} handler(s) failed", self.0.len())?;
        for error in &self.0 {
            write!(f, "; {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandlerErrors {}

/// A handler that returned an error or panicked.
#[derive(Debug)]
pub struct HandlerError {
    route: String,
    failure: Failure,
}

#[derive(Debug)]
enum Failure {
    Error(BoxError),
    Panic(String),
}

impl HandlerError {
    fn new(route: String, failure: Failure) -> Self {
        Self { route, failure }
    }

    /// The route whose handler failed, e.g. `DATA_UPDATE leases`, `fallback`, `on_malformed`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Whether the handler panicked (rather than returning an error).
    pub fn is_panic(&self) -> bool {
        matches!(self.failure, Failure::Panic(_))
    }

    /// The error the handler returned, if it returned one.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.failure {
            Failure::Error(error) => Some(error.as_ref()),
            Failure::Panic(_) => None,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Error(error) => write!(f, "handler for {} failed: {error}", self.route),
            Failure::Panic(message) => {
                write!(f, "handler for {} panicked: {message}", self.route)
            }
        }
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            Failure::Error(error) => Some(error.as_ref()),
            Failure::Panic(_) => None,
        }
    }
}
