//! A thin Propexo receiver that hands verified deliveries to NATS JetStream, and the workers
//! that handle them.
//!
//! ```sh
//! nats-server -js -sd /tmp/nats &                 # or any JetStream server: NATS_URL
//! cargo run --example nats_receiver --features nats,axum                # the receiver
//! cargo run --example nats_receiver --features nats,axum -- --worker    # a worker (run two)
//! ```
//!
//! The receiver answers `POST /webhooks/propexo` on 127.0.0.1:3000 (or `BIND`, or `PORT`) with
//! 202 once JetStream has acknowledged the delivery, 200 for a re-send already handled, and 503
//! with `Retry-After` when JetStream cannot be reached. Workers pull from the shared durable
//! consumer, run the handlers, retry failures with backoff and make dead letters after
//! `MAX_ATTEMPTS` (default 5).
//!
//! Environment: `NATS_URL` (default `nats://127.0.0.1:4222`), `PROPEXO_WEBHOOK_SECRET` (a demo
//! secret with a warning when unset), `BIND`/`PORT`; for demonstrations and tests,
//! `EFFECTS_FILE` (each successful handler run appends `<record_id or trigger> <delivery key>`
//! and flushes it before returning), `FAIL_PERCENT` (that share of handler runs fail),
//! `HANDLER_MS` (each handler run takes that long), `ACK_WAIT_MS` (the consumer's ack wait:
//! the lease, default 60 000), `BACKOFF_MS` (first retry delay, default 1 000) and
//! `MAX_ATTEMPTS`.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use propexo_webhooks::{
    Delivery, DeliveryKey, Dispatcher, NatsInbox, Receiver, Verifier, WorkerConfig, Workers,
};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let worker = std::env::args().any(|arg| arg == "--worker");
    let ack_wait = Duration::from_millis(env_u64("ACK_WAIT_MS", 60_000));
    let max_attempts = u32::try_from(env_u64("MAX_ATTEMPTS", 5)).unwrap_or(5);

    // The streams and the consumer are created on first use, or checked; retry while the
    // server is not there yet.
    let inbox = loop {
        let opened = async {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(&url)
                .await?;
            NatsInbox::builder(client)
                .ack_wait(ack_wait)
                .max_attempts(max_attempts)
                .open()
                .await
                .map_err(Box::<dyn std::error::Error>::from)
        };
        match opened.await {
            Ok(inbox) => break inbox,
            Err(error) => {
                eprintln!("cannot open the JetStream inbox at {url} yet: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };

    if worker {
        let config = WorkerConfig::default()
            .workers(4)
            .max_attempts(max_attempts)
            .lease(ack_wait, ack_wait / 3)
            .backoff(
                Duration::from_millis(env_u64("BACKOFF_MS", 1_000)),
                Duration::from_secs(15 * 60),
            )
            .poll_interval(Duration::from_millis(100));
        let workers = Workers::start(inbox, dispatcher()?, config);
        eprintln!("worker: taking deliveries from JetStream at {url}");
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("letting the workers finish what they hold...");
        workers.shutdown().await;
        return Ok(());
    }

    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        eprintln!(
            "WARNING: PROPEXO_WEBHOOK_SECRET is not set; using the DEMO secret {DEMO_SECRET:?}"
        );
        DEMO_SECRET.to_owned()
    });
    let receiver = Receiver::with_inbox(Verifier::new(secret)?, inbox);
    let app = Router::new().route("/webhooks/propexo", propexo_webhooks::axum::route(receiver));
    let address = std::env::var("BIND").unwrap_or_else(|_| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        format!("127.0.0.1:{port}")
    });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!(
        "listening on http://{}/webhooks/propexo, storing into JetStream at {url}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// One handler for every event: it may fail (`FAIL_PERCENT`), takes `HANDLER_MS`, and records
/// its effect in `EFFECTS_FILE`. A body that does not parse becomes a dead letter.
fn dispatcher() -> Result<Dispatcher, std::io::Error> {
    let effects = match std::env::var_os("EFFECTS_FILE") {
        Some(path) => Some(Arc::new(Mutex::new(
            File::options().create(true).append(true).open(path)?,
        ))),
        None => None,
    };
    let fail_percent = env_u64("FAIL_PERCENT", 0);
    let handler_time = Duration::from_millis(env_u64("HANDLER_MS", 0));
    Ok(Dispatcher::new()
        .fallback(move |delivery: Delivery| {
            let effects = effects.clone();
            async move {
                if !handler_time.is_zero() {
                    tokio::time::sleep(handler_time).await;
                }
                if fastrand::u64(0..100) < fail_percent {
                    return Err(std::io::Error::other("injected failure (FAIL_PERCENT)"));
                }
                let event = delivery.event();
                let what = event
                    .record_id()
                    .map_or_else(|| event.event_type().to_string(), str::to_owned);
                let key = DeliveryKey::from_body(delivery.body());
                eprintln!("handled {what} ({key})");
                if let Some(effects) = effects {
                    let line = format!("{what} {key}\n");
                    let mut file = effects.lock().unwrap_or_else(|e| e.into_inner());
                    // One write of the whole line: appends from several workers do not mix.
                    file.write_all(line.as_bytes())?;
                    file.flush()?;
                }
                Ok(())
            }
        })
        .on_error(|error| eprintln!("handler failed (it will be retried): {error}")))
}
