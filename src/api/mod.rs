//! A client for Propexo's REST API, to fetch the full record an event is about.

mod dispatch;
mod error;
mod limit;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::value::RawValue;
use tokio::sync::OnceCell;

pub use dispatch::FetchedRecord;
pub use error::{ApiError, PropexoError};

use crate::records::{Fetchable, parse_record};
use crate::{AnyRecord, ObjectType, WebhookEvent};
use limit::Limiter;

/// Propexo's production API.
pub const PRODUCTION_API_URL: &str = "https://api.propexo.com";
/// Propexo's sandbox API.
pub const SANDBOX_API_URL: &str = "https://api.sandbox.propexo.com";
/// The environment variable [`ApiClient::from_env`] reads the API key from.
pub const API_KEY_ENV: &str = "PROPEXO_API_KEY";

/// A client for Propexo's REST API: reads the full record an event is about, within the
/// account's rate limit.
///
/// Cheap to clone; clones share one connection pool, one rate-limit budget and one set of
/// requests in flight, so build one per process (per API key) and hand clones to every
/// handler.
///
/// - [`get`](Self::get) reads one record by id as its type, e.g. a [`Lease`](crate::records::Lease);
/// - [`fetch`](Self::fetch) reads the record a data event is about, as an [`AnyRecord`];
/// - [`Delivery::fetch_record`](crate::Delivery::fetch_record) and
///   [`Dispatcher::on_update_fetched`](crate::Dispatcher::on_update_fetched) do it from a
///   handler.
///
/// What it does for every read:
///
/// - **Rate limit.** Every clone draws on one budget, `150` requests per minute unless
///   [`rate_limit`](ApiClientBuilder::rate_limit) says otherwise: no window of that length
///   ever receives more. It also follows Propexo's `x-ratelimit-remaining` (which counts other
///   processes using the key too): with none left it waits for the window to reset, and past
///   80 % of the limit it spreads requests out instead of bursting into Propexo's slowdown.
/// - **Retries.** A 429 waits for the window to reset; a 5xx, a timeout or a failed
///   connection waits with exponential backoff; then the request is sent again, up to
///   [`retries`](ApiClientBuilder::retries) times. Other 4xx answers are never retried.
/// - **Single flight.** Concurrent reads of the same record share one request.
///
/// The API key is sent as `Authorization: Bearer <key>` and appears in no error, log line or
/// `Debug` output.
///
/// # Examples
///
/// ```no_run
/// use propexo_webhooks::ApiClient;
/// use propexo_webhooks::records::Lease;
///
/// # async fn run() -> Result<(), propexo_webhooks::ApiError> {
/// let api = ApiClient::builder(std::env::var("PROPEXO_API_KEY").unwrap_or_default())
///     .sandbox()
///     .build()?;
/// let lease: Lease = api.get("cly301zs1000109jv26hx7hii").await?;
/// println!("{:?}", lease.status_normalized);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    limiter: Limiter,
    requests: u32,
    per: Duration,
    retries: u32,
    backoff: Duration,
    /// The key, to scrub it from anything Propexo sends back.
    key: ApiKey,
    /// Reads in flight, by path: concurrent reads of one record share one request.
    in_flight: Mutex<InFlight>,
}

/// The reads in flight: each path's answer, once the request sending it is over.
type InFlight = HashMap<String, Arc<OnceCell<Result<Bytes, ApiError>>>>;

/// Builds an [`ApiClient`]; see [`ApiClient::builder`].
#[must_use]
pub struct ApiClientBuilder {
    key: ApiKey,
    base_url: String,
    requests: u32,
    per: Duration,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
}

/// The API key: never printed.
#[derive(Clone)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ApiClient {
    /// A builder for a client that authenticates with `api_key`, against production, at 150
    /// requests per minute.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use propexo_webhooks::ApiClient;
    ///
    /// let api = ApiClient::builder("pk_sandbox_123")
    ///     .sandbox()
    ///     .rate_limit(300, Duration::from_secs(60)) // a contract with a higher limit
    ///     .timeout(Duration::from_secs(20))
    ///     .build()?;
    /// assert!(!format!("{api:?}").contains("pk_sandbox_123"));
    /// # Ok::<(), propexo_webhooks::ApiError>(())
    /// ```
    pub fn builder(api_key: impl Into<String>) -> ApiClientBuilder {
        ApiClientBuilder {
            key: ApiKey(api_key.into()),
            base_url: PRODUCTION_API_URL.to_owned(),
            requests: 150,
            per: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 4,
            backoff: Duration::from_millis(250),
        }
    }

    /// A builder with the API key from the `PROPEXO_API_KEY` environment variable.
    ///
    /// # Errors
    ///
    /// [`ApiError::MissingApiKey`] when the variable is not set (or not Unicode).
    pub fn builder_from_env() -> Result<ApiClientBuilder, ApiError> {
        std::env::var(API_KEY_ENV)
            .map(Self::builder)
            .map_err(|_| ApiError::MissingApiKey)
    }

    /// A production client with the API key from `PROPEXO_API_KEY` and default settings.
    ///
    /// # Errors
    ///
    /// [`ApiError::MissingApiKey`] when the variable is not set, and the errors of
    /// [`ApiClientBuilder::build`].
    pub fn from_env() -> Result<Self, ApiError> {
        Self::builder_from_env()?.build()
    }

    /// Reads the record `id` of type `R` from its single-record endpoint, e.g.
    /// `GET /v1/leases/{id}` for a [`Lease`](crate::records::Lease).
    ///
    /// Only records with such an endpoint implement [`Fetchable`].
    ///
    /// # Errors
    ///
    /// [`ApiError::InvalidRecordId`] for an empty, `.` or `..` id; [`ApiError::Status`] for an
    /// error answer (`is_not_found` for a 404); [`ApiError::RateLimited`] and
    /// [`ApiError::Transport`] once retries are spent; [`ApiError::InvalidResponse`] when the
    /// answer is not the record.
    pub async fn get<R: Fetchable>(&self, id: &str) -> Result<R, ApiError> {
        let path = record_path(&R::OBJECT_TYPE, id)?;
        let body = self.read(path).await?;
        let results = results(&body)?;
        parse_record::<R>("results", results.get()).map_err(ApiError::InvalidResponse)
    }

    /// Reads the record a data event (DATA_NEW, DATA_UPDATE) is about: the full, current
    /// record, where the event may hold only part of it or only what changed.
    ///
    /// Propexo has no single-record endpoint for some objects: the link tables
    /// (`residents-to-leases`, `applicants-to-applications`, ...), the CRM models, and the
    /// records read only through another one (`invoice-items`, `lease-services`, `locations`,
    /// ...). [`ObjectType::record_path`] is `None` for them, and this returns
    /// [`ApiError::NoRecordEndpoint`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use propexo_webhooks::{AnyRecord, ApiClient, WebhookEvent};
    ///
    /// # async fn run(api: ApiClient, body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let event = WebhookEvent::from_slice(body)?;
    /// if let AnyRecord::Lease(lease) = api.fetch(&event).await? {
    ///     println!("{:?}", lease.status_normalized);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ApiError::NotARecordEvent`] for job, sync and write events;
    /// [`ApiError::NoRecordEndpoint`]; and the errors of [`get`](Self::get).
    pub async fn fetch(&self, event: &WebhookEvent) -> Result<AnyRecord, ApiError> {
        let (object, id) = about(event)?;
        self.fetch_object(object, id).await
    }

    /// Reads the record `id` of object type `object`, as an [`AnyRecord`].
    ///
    /// # Errors
    ///
    /// As [`fetch`](Self::fetch).
    pub async fn fetch_object(&self, object: &ObjectType, id: &str) -> Result<AnyRecord, ApiError> {
        let path = record_path(object, id)?;
        let body = self.read(path).await?;
        let results = results(&body)?;
        AnyRecord::parse(object, results.get())
            .map_err(ApiError::InvalidResponse)?
            .ok_or_else(|| ApiError::NoRecordEndpoint(object.clone()))
    }

    /// Reads the record a data event is about, as `R`.
    ///
    /// # Errors
    ///
    /// [`ApiError::ObjectMismatch`] when the event is about another object type; otherwise as
    /// [`fetch`](Self::fetch).
    pub async fn fetch_as<R: Fetchable>(&self, event: &WebhookEvent) -> Result<R, ApiError> {
        let (object, id) = about(event)?;
        if *object != R::OBJECT_TYPE {
            return Err(ApiError::ObjectMismatch {
                expected: R::OBJECT_TYPE,
                found: object.clone(),
            });
        }
        self.get::<R>(id).await
    }

    /// The base URL requests go to, e.g. [`PRODUCTION_API_URL`].
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// GETs `path`, sharing the request with concurrent reads of the same path.
    async fn read(&self, path: String) -> Result<Bytes, ApiError> {
        let cell = {
            let mut in_flight = self.in_flight();
            Arc::clone(in_flight.entry(path.clone()).or_default())
        };
        // If the task sending the request is cancelled, another waiter sends it.
        let result = cell.get_or_init(|| self.send(&path)).await.clone();
        let mut in_flight = self.in_flight();
        if in_flight
            .get(&path)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            in_flight.remove(&path);
        }
        result
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// GETs `path` within the rate limit, retrying what may succeed later.
    async fn send(&self, path: &str) -> Result<Bytes, ApiError> {
        let inner = &*self.inner;
        let url = format!("{}{path}", inner.base_url);
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let retry_left = attempt <= inner.retries;
            let slot = inner.limiter.acquire().await;
            let answer = match inner.http.get(&url).send().await {
                Ok(response) => {
                    inner.limiter.observe(
                        header_u32(response.headers(), "x-ratelimit-limit"),
                        header_u32(response.headers(), "x-ratelimit-remaining"),
                    );
                    let status = response.status();
                    response.bytes().await.map(|body| (status, body))
                }
                Err(err) => Err(err),
            };
            drop(slot);
            let error = match answer {
                Ok((status, body)) if status.is_success() => return Ok(body),
                Ok((StatusCode::TOO_MANY_REQUESTS, _)) => {
                    inner.limiter.rate_limited();
                    if !retry_left {
                        return Err(ApiError::RateLimited { attempts: attempt });
                    }
                    log(format_args!(
                        "Propexo answered 429 for GET {path}: waiting {:?} for the rate limit's window, then retrying (attempt {attempt} of {})",
                        inner.per,
                        inner.retries.saturating_add(1),
                    ));
                    continue;
                }
                Ok((status, body)) => {
                    let error = ApiError::Status {
                        status,
                        error: PropexoError::from_body(&body).map(|e| inner.key.scrub(e)),
                    };
                    if !status.is_server_error() {
                        return Err(error);
                    }
                    error
                }
                Err(err) => ApiError::transport(err.without_url()),
            };
            if !retry_left {
                return Err(error);
            }
            let wait = backoff(inner.backoff, attempt);
            log(format_args!(
                "GET {path} failed ({error}): retrying in {wait:?} (attempt {attempt} of {})",
                inner.retries.saturating_add(1),
            ));
            tokio::time::sleep(wait).await;
        }
    }
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.inner.base_url)
            .field("rate_limit", &(self.inner.requests, self.inner.per))
            .field("retries", &self.inner.retries)
            .field("api_key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl ApiClientBuilder {
    /// Sends requests to Propexo's sandbox ([`SANDBOX_API_URL`]). An API key belongs to one
    /// environment.
    pub fn sandbox(self) -> Self {
        self.base_url(SANDBOX_API_URL)
    }

    /// Sends requests to `url` (scheme and host, e.g. a proxy or a local mock; paths start
    /// with `/v1/`). A trailing `/` is ignored.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        while url.ends_with('/') {
            url.pop();
        }
        self.base_url = url;
        self
    }

    /// The account's rate limit: at most `requests` per `per` (default 150 per minute, as
    /// Propexo's default contract). Every clone of the client shares it; run one client per
    /// process, or give each process its share.
    pub fn rate_limit(mut self, requests: u32, per: Duration) -> Self {
        self.requests = requests;
        self.per = per;
        self
    }

    /// The most a request may take, from sending to the end of the answer (default 30 s;
    /// Propexo delays answers by 2 s past 80 % of the rate limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a request is sent again after a 429, a 5xx, a timeout or a failed
    /// connection (default 4).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The wait before the first retry after a 5xx or a transport failure; it doubles with
    /// each further one, up to 30 s (default 250 ms). A 429 waits for the rate limit's window
    /// instead.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`ApiError::InvalidApiKey`] for an empty key or one an HTTP header cannot carry;
    /// [`ApiError::InvalidConfig`] for a rate limit of 0 requests or a zero period, or a base
    /// URL that is not `http://` or `https://`; [`ApiError::Transport`] if the HTTP client
    /// cannot be set up.
    pub fn build(self) -> Result<ApiClient, ApiError> {
        if self.key.0.trim().is_empty() {
            return Err(ApiError::InvalidApiKey("it is empty"));
        }
        if self.requests == 0 || self.per.is_zero() {
            return Err(ApiError::InvalidConfig(
                "the rate limit must allow at least one request per non-zero period",
            ));
        }
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err(ApiError::InvalidConfig(
                "the base URL must start with https:// or http://",
            ));
        }
        let mut auth = HeaderValue::try_from(format!("Bearer {}", self.key.0))
            .map_err(|_| ApiError::InvalidApiKey("it holds characters a header cannot carry"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("propexo-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|err| ApiError::transport(err.without_url()))?;
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http,
                base_url: self.base_url,
                limiter: Limiter::new(self.requests, self.per),
                requests: self.requests,
                per: self.per,
                retries: self.retries,
                backoff: self.backoff,
                key: self.key,
                in_flight: Mutex::default(),
            }),
        })
    }
}

impl fmt::Debug for ApiClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClientBuilder")
            .field("base_url", &self.base_url)
            .field("rate_limit", &(self.requests, self.per))
            .field("api_key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// Replaces the key wherever Propexo's error body quotes it.
    fn scrub(&self, mut error: PropexoError) -> PropexoError {
        let key = self.0.as_str();
        for text in [&mut error.code, &mut error.message].into_iter().flatten() {
            if text.contains(key) {
                *text = text.replace(key, "[redacted]");
            }
        }
        if let Some(details) = &mut error.details
            && details.to_string().contains(key)
        {
            error.details = Some(serde_json::Value::String("[redacted]".to_owned()));
        }
        error
    }
}

/// The object and record id a data event is about.
fn about(event: &WebhookEvent) -> Result<(&ObjectType, &str), ApiError> {
    match (event.object(), event.record_id()) {
        (Some(object), Some(id)) => Ok((object, id)),
        _ => Err(ApiError::NotARecordEvent(event.event_type())),
    }
}

fn record_path(object: &ObjectType, id: &str) -> Result<String, ApiError> {
    object.record_path(id).ok_or_else(|| {
        if object.record_path("id").is_some() {
            ApiError::InvalidRecordId(id.to_owned())
        } else {
            ApiError::NoRecordEndpoint(object.clone())
        }
    })
}

/// The `results` of Propexo's `{"meta": {...}, "results": {record}}` envelope.
fn results(body: &[u8]) -> Result<&RawValue, ApiError> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        results: &'a RawValue,
    }
    let text = std::str::from_utf8(body).unwrap_or_default();
    crate::ParseError::parse_str::<Envelope<'_>>(
        || "Propexo's {meta, results} envelope".to_owned(),
        "",
        text,
    )
    .map(|envelope| envelope.results)
    .map_err(|err| ApiError::InvalidResponse(crate::Error::InvalidRecord(err)))
}

fn header_u32(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `base`, doubled for each retry after the first, at most 30 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings)
        .min(Duration::from_secs(30))
}

/// A retry, logged through `tracing` when the feature is on. Never holds the key.
fn log(message: fmt::Arguments<'_>) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "propexo_webhooks::api", "{message}");
    #[cfg(not(feature = "tracing"))]
    let _ = message;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_send_sync_and_clone() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<ApiClient>();
        assert_send_sync::<ApiError>();
    }

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        let base = Duration::from_millis(250);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 3), Duration::from_secs(1));
        assert_eq!(backoff(base, 40), Duration::from_secs(30));
    }

    #[test]
    fn the_key_is_scrubbed_from_propexo_errors() {
        let key = ApiKey("sk_live_secret".to_owned());
        let error = PropexoError::from_body(
            br#"{"error":{"code":"unauthorized","message":"bad key sk_live_secret","details":{"key":"sk_live_secret"}}}"#,
        )
        .unwrap();
        let scrubbed = key.scrub(error);
        assert_eq!(scrubbed.message.as_deref(), Some("bad key [redacted]"));
        assert!(!format!("{scrubbed:?}").contains("sk_live_secret"));
    }
}
