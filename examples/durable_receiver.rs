//! A receiver that never loses an acknowledged delivery: persist, then acknowledge.
//!
//! ```sh
//! cargo run --example durable_receiver --features axum,sqlite
//! INBOX_URL=/var/lib/propexo/inbox.sqlite3 cargo run --example durable_receiver --features axum,sqlite
//! INBOX_URL=postgres://user@127.0.0.1/db cargo run --example durable_receiver --features axum,sqlite,postgres
//! ```
//!
//! `POST /webhooks/propexo` on 127.0.0.1:3000 (or `BIND`, or `PORT`). Each verified delivery is
//! stored in the inbox and answered 202 once it is stored; workers in the same process run the
//! handler, retry failures with backoff, and keep what keeps failing as a dead letter. Run it
//! twice against one PostgreSQL database and the two replicas share the work.
//!
//! Configuration:
//! - `INBOX_URL`: unset, a file `propexo-inbox.sqlite3` in the working directory; a file path,
//!   that SQLite file; `postgres://...`, a PostgreSQL database (feature `postgres`).
//! - `PROPEXO_WEBHOOK_SECRET` (a demo secret otherwise), `BIND` or `PORT`.
//! - `EFFECTS_FILE`: when set, each successful handler run appends one line
//!   `<record_id or trigger> <delivery key hex>` to it, flushed before the handler returns.
//! - `FAIL_PERCENT`: that share of handler runs fail, at random (default 0).
//! - `LEASE_SECS`: how long a delivery is a worker's before another may take it over, e.g.
//!   after this process was killed (default 30).
//!
//! SIGINT or SIGTERM stop it gracefully: the server stops taking requests, the workers settle
//! what they hold. A kill loses nothing that was acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use propexo_webhooks::{
    Delivery, DeliveryKey, Dispatcher, Inbox, Receiver, SqliteInbox, Verifier, WorkerConfig,
    Workers,
};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        eprintln!(
            "WARNING: PROPEXO_WEBHOOK_SECRET is not set; using the DEMO secret {DEMO_SECRET:?}"
        );
        DEMO_SECRET.to_owned()
    });
    let verifier = Verifier::new(secret)?;
    let fail_percent: u32 = env_number("FAIL_PERCENT", 0)?;
    if fail_percent > 100 {
        return Err(format!("FAIL_PERCENT must be 0 to 100, not {fail_percent}").into());
    }
    let lease = Duration::from_secs(u64::from(env_number("LEASE_SECS", 30)?.max(1)));
    let effects = match std::env::var_os("EFFECTS_FILE") {
        Some(path) => Some(Arc::new(Mutex::new(
            OpenOptions::new().create(true).append(true).open(path)?,
        ))),
        None => None,
    };
    let dispatcher = dispatcher(effects, fail_percent);
    let config = WorkerConfig::default()
        .workers(8)
        .max_attempts(10)
        .backoff(Duration::from_millis(100), Duration::from_secs(5))
        .lease(lease, lease / 3)
        .poll_interval(Duration::from_millis(200))
        .sweep_interval(Duration::from_secs(1));

    let inbox_url = std::env::var("INBOX_URL").unwrap_or_else(|_| "propexo-inbox.sqlite3".into());
    if inbox_url.starts_with("postgres://") || inbox_url.starts_with("postgresql://") {
        serve_postgres(&inbox_url, verifier, dispatcher, config).await
    } else {
        let inbox = SqliteInbox::open(&inbox_url)?;
        eprintln!("inbox: SQLite file {inbox_url}");
        serve(inbox, verifier, dispatcher, config).await
    }
}

#[cfg(feature = "postgres")]
async fn serve_postgres(
    url: &str,
    verifier: Verifier,
    dispatcher: Dispatcher,
    config: WorkerConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let inbox = propexo_webhooks::PostgresInbox::connect(url).await?;
    eprintln!("inbox: PostgreSQL");
    serve(inbox, verifier, dispatcher, config).await
}

#[cfg(not(feature = "postgres"))]
async fn serve_postgres(
    _: &str,
    _: Verifier,
    _: Dispatcher,
    _: WorkerConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    Err("INBOX_URL is a PostgreSQL URL: build with --features axum,sqlite,postgres".into())
}

async fn serve<I: Inbox + Clone>(
    inbox: I,
    verifier: Verifier,
    dispatcher: Dispatcher,
    config: WorkerConfig,
) -> Result<(), Box<dyn std::error::Error>> {
    let workers = Workers::start(inbox.clone(), dispatcher, config);
    let receiver = Receiver::with_inbox(verifier, inbox.clone());
    let app = Router::new().route("/webhooks/propexo", propexo_webhooks::axum::route(receiver));
    let address = std::env::var("BIND").unwrap_or_else(|_| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        format!("127.0.0.1:{port}")
    });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!(
        "listening on http://{}/webhooks/propexo",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await?;
    eprintln!("stopping: letting the workers settle what they hold...");
    workers.shutdown().await;
    let stats = inbox.stats().await?;
    eprintln!(
        "inbox: {} pending, {} in flight, {} done, {} dead",
        stats.pending, stats.in_flight, stats.done, stats.dead
    );
    Ok(())
}

/// One handler for every event: fails `fail_percent` % of runs, and records each success.
fn dispatcher(effects: Option<Arc<Mutex<File>>>, fail_percent: u32) -> Dispatcher {
    Dispatcher::new().fallback(move |delivery: Delivery| {
        let effects = effects.clone();
        async move {
            if fastrand::u32(0..100) < fail_percent {
                return Err("injected failure (FAIL_PERCENT)".to_owned());
            }
            if let Some(effects) = effects {
                let event = delivery.event();
                let subject = event
                    .record_id()
                    .map_or_else(|| event.event_type().to_string(), str::to_owned);
                let line = format!("{subject} {}\n", DeliveryKey::from_body(delivery.body()));
                // One write of the whole line on a file opened for appending: lines from
                // concurrent handlers never interleave, and a kill after it loses nothing.
                let mut file = effects.lock().map_err(|_| "effects file lock poisoned")?;
                file.write_all(line.as_bytes())
                    .and_then(|()| file.flush())
                    .map_err(|error| format!("EFFECTS_FILE: {error}"))?;
            }
            Ok::<_, String>(())
        }
    })
}

fn env_number(name: &str, default: u32) -> Result<u32, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {value:?}").into()),
        Err(_) => Ok(default),
    }
}

async fn stop_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
