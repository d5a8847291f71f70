//! Fetching from handlers: a delivery's record in one call, and routes that hand their
//! handler the full record instead of the event's partial one.

use std::sync::Arc;

use super::{ApiClient, ApiError};
use crate::records::Fetchable;
use crate::{AnyRecord, Delivery, Dispatcher, EventType, Handler};

/// A record read from Propexo's API after an event about it: what an
/// [`on_new_fetched`](Dispatcher::on_new_fetched) or
/// [`on_update_fetched`](Dispatcher::on_update_fetched) handler receives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchedRecord<R> {
    /// The whole delivery: the event (with its payload or diff), the raw body, which secret
    /// verified it.
    pub delivery: Delivery,
    /// The full, current record, as Propexo's API answered it.
    pub record: R,
}

impl Delivery {
    /// Reads the full record this delivery's event is about from Propexo's API; see
    /// [`ApiClient::fetch`].
    ///
    /// Return its error from the handler (`?`): the delivery is then not acknowledged, so a
    /// fetch that failed on the rate limit or a 5xx is retried with the delivery, not lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::{AnyRecord, ApiClient, Delivery, Dispatcher, EventType};
    ///
    /// let api = ApiClient::builder("pk_123").build()?;
    /// let dispatcher = Dispatcher::new().on(EventType::DataUpdate, move |delivery: Delivery| {
    ///     let api = api.clone();
    ///     async move {
    ///         if let AnyRecord::Resident(resident) = delivery.fetch_record(&api).await? {
    ///             println!("{:?} changed", resident.email_1);
    ///         }
    ///         Ok::<_, propexo_webhooks::ApiError>(())
    ///     }
    /// });
    /// # Ok::<(), propexo_webhooks::ApiError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ApiClient::fetch`].
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    pub async fn fetch_record(&self, api: &ApiClient) -> Result<AnyRecord, ApiError> {
        api.fetch(self.event()).await
    }
}

impl Dispatcher {
    /// Runs `handler` for every new record of type `R` (DATA_NEW), handing it the full record
    /// read from Propexo's API rather than the payload, which may be partial.
    ///
    /// A failed read (the rate limit after retries, a 5xx, a 404) is a failure of this route:
    /// the delivery is not acknowledged and Propexo sends it again.
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    #[must_use]
    pub fn on_new_fetched<R, H, M>(self, api: &ApiClient, handler: H) -> Self
    where
        R: Fetchable,
        H: Handler<FetchedRecord<R>, M>,
    {
        self.on_fetched(EventType::DataNew, api, handler)
    }

    /// Runs `handler` for every change to a record of type `R` (DATA_UPDATE), handing it the
    /// full record read from Propexo's API after the change, rather than the diff's changed
    /// fields (the diff is still in `delivery`).
    ///
    /// A failed read (the rate limit after retries, a 5xx, a 404) is a failure of this route:
    /// the delivery is not acknowledged and Propexo sends it again.
    ///
    /// # Examples
    ///
    /// ```
    /// use propexo_webhooks::records::Lease;
    /// use propexo_webhooks::{ApiClient, Dispatcher, FetchedRecord};
    ///
    /// let api = ApiClient::builder("pk_123").build()?;
    /// let dispatcher = Dispatcher::new().on_update_fetched(&api, |lease: FetchedRecord<Lease>| async move {
    ///     println!("lease {:?} is now {:?}", lease.record.id, lease.record.status_normalized);
    ///     Ok::<_, std::convert::Infallible>(())
    /// });
    /// # Ok::<(), propexo_webhooks::ApiError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    #[must_use]
    pub fn on_update_fetched<R, H, M>(self, api: &ApiClient, handler: H) -> Self
    where
        R: Fetchable,
        H: Handler<FetchedRecord<R>, M>,
    {
        self.on_fetched(EventType::DataUpdate, api, handler)
    }

    fn on_fetched<R, H, M>(self, trigger: EventType, api: &ApiClient, handler: H) -> Self
    where
        R: Fetchable,
        H: Handler<FetchedRecord<R>, M>,
    {
        let api = api.clone();
        let handler = Arc::new(handler);
        self.on_object(R::OBJECT_TYPE, trigger, move |delivery: Delivery| {
            let api = api.clone();
            let handler = Arc::clone(&handler);
            async move {
                let record = api.fetch_as::<R>(delivery.event()).await?;
                handler.call(FetchedRecord { delivery, record }).await
            }
        })
    }
}
