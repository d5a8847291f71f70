//! Handlers: async functions, async closures and plain closures, behind one trait; and the two
//! small futures the dispatcher needs without a runtime (catching panics, joining).

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The error type handlers' errors are turned into: any `std::error::Error` (or `anyhow::Error`,
/// or a `String`) fits.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed, `Send` future, as stored by the dispatcher and returned by [`IdempotencyStore`]s.
///
/// [`IdempotencyStore`]: crate::IdempotencyStore
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something the [`Dispatcher`](crate::Dispatcher) can run for an input `T` (a
/// [`Delivery`](crate::Delivery), a typed record event, a malformed delivery).
///
/// Implemented for:
/// - async functions and closures `Fn(T) -> impl Future<Output = Result<(), E>>`;
/// - plain closures `Fn(T) -> Result<(), E>`,
///
/// for any error `E` that converts into [`BoxError`]. The marker `M` tells the two apart; you
/// never name it.
pub trait Handler<T, M>: Send + Sync + 'static {
    /// Runs the handler.
    fn call(&self, input: T) -> BoxFuture<'static, Result<(), BoxError>>;
}

/// Marks handlers that return a future.
#[derive(Debug)]
#[non_exhaustive]
pub struct IsAsync;

/// Marks handlers that return a `Result` directly.
#[derive(Debug)]
#[non_exhaustive]
pub struct IsSync;

impl<F, Fut, E, T> Handler<T, IsAsync> for F
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn call(&self, input: T) -> BoxFuture<'static, Result<(), BoxError>> {
        let future = self(input);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

impl<F, E, T> Handler<T, IsSync> for F
where
    F: Fn(T) -> Result<(), E> + Send + Sync + 'static,
    E: Into<BoxError>,
{
    fn call(&self, input: T) -> BoxFuture<'static, Result<(), BoxError>> {
        let result = self(input).map_err(Into::into);
        Box::pin(std::future::ready(result))
    }
}

/// A future that turns a panic while polling `F` into `Err(message)`.
pub(crate) struct CatchUnwind<F> {
    future: Pin<Box<F>>,
}

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(future: F) -> Self {
        Self {
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.future.as_mut();
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// Calls `f`, turning a panic into `Err(message)`.
pub(crate) fn call_catching<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}

/// Polls every future on the caller's task until all are done; outputs in input order.
pub(crate) struct JoinAll<F: Future> {
    slots: Vec<Slot<F>>,
}

enum Slot<F: Future> {
    Running(Pin<Box<F>>),
    Done(F::Output),
    Taken,
}

impl<F: Future> JoinAll<F> {
    pub(crate) fn new(futures: impl IntoIterator<Item = F>) -> Self {
        Self {
            slots: futures
                .into_iter()
                .map(|future| Slot::Running(Box::pin(future)))
                .collect(),
        }
    }
}

impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut pending = false;
        for slot in &mut self.slots {
            if let Slot::Running(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(output) => *slot = Slot::Done(output),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        let outputs = self
            .slots
            .iter_mut()
            .filter_map(|slot| match std::mem::replace(slot, Slot::Taken) {
                Slot::Done(output) => Some(output),
                Slot::Running(_) | Slot::Taken => None,
            })
            .collect();
        Poll::Ready(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls a future that never waits on anything external.
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    #[test]
    fn a_panicking_future_becomes_an_error() {
        let result = block_on(CatchUnwind::new(async { panic!("boom") }));
        assert_eq!(result, Err::<(), _>("boom".to_owned()));
        let result = block_on(CatchUnwind::new(async { 7 }));
        assert_eq!(result, Ok(7));
    }

    #[test]
    fn join_all_keeps_input_order() {
        let outputs = block_on(JoinAll::new((0..5).map(|n| async move { n * 2 })));
        assert_eq!(outputs, [0, 2, 4, 6, 8]);
    }
}
