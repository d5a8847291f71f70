//! A realistic axum receiver for Propexo webhooks.
//!
//! ```sh
//! PROPEXO_WEBHOOK_SECRET=your-webhook-secret cargo run --example axum_receiver --features axum
//! cargo run --example axum_receiver --features axum -- --inbox   # answer 202, handle after
//! ```
//!
//! `POST /webhooks/propexo` on 127.0.0.1:3000 (or `BIND`, or `PORT`). Handlers: lease status
//! changes, new records, sync reports, job and write failures, unknown triggers; a malformed
//! body is stored under `MALFORMED_DIR` (default: a `propexo-malformed` folder in the temp
//! directory) instead of being lost. Re-sent deliveries run once within the default
//! de-duplication windows (3 hours for events with a job id, none for the others), or within
//! `IDEMPOTENCY_TTL_MS` for every event when it is set (the load benchmark sets 0 so that its
//! repeated body is handled in full every time). Ctrl-C stops it gracefully.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use propexo_webhooks::{
    DedupPolicy, Delivery, DeliveryKey, Dispatcher, EventType, MalformedDelivery,
    MemoryIdempotencyStore, MemoryInbox, ObjectType, Receiver, Verifier, WebhookEvent,
    WorkerConfig, Workers,
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
    let counts = Arc::new(Counts::default());
    let dispatcher = dispatcher(counts.clone());

    // `--inbox`: answer 202 once the delivery is in an in-memory inbox, and let workers run
    // the handlers (see `durable_receiver` for an inbox that survives a crash).
    let (receiver, workers) = if std::env::args().any(|arg| arg == "--inbox") {
        let inbox = MemoryInbox::new();
        let workers = Workers::start(inbox.clone(), dispatcher, WorkerConfig::default());
        (Receiver::with_inbox(verifier, inbox), Some(workers))
    } else {
        (Receiver::new(verifier, dispatcher), None)
    };
    let app = Router::new().route("/webhooks/propexo", propexo_webhooks::axum::route(receiver));

    let address = std::env::var("BIND").unwrap_or_else(|_| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        format!("127.0.0.1:{port}")
    });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!(
        "listening on http://{}/webhooks/propexo{}",
        listener.local_addr()?,
        if workers.is_some() {
            " (inbox mode)"
        } else {
            ""
        }
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(workers) = workers {
        eprintln!("letting the workers finish what they hold...");
        workers.shutdown().await;
    }
    eprintln!(
        "handled {} new records, {} updates, {} other events",
        counts.new.load(Ordering::Relaxed),
        counts.updates.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed)
    );
    Ok(())
}

#[derive(Default)]
struct Counts {
    new: AtomicU64,
    updates: AtomicU64,
    other: AtomicU64,
}

fn dispatcher(counts: Arc<Counts>) -> Dispatcher {
    let (new, updates, other) = (counts.clone(), counts.clone(), counts);
    let policy = match std::env::var("IDEMPOTENCY_TTL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
    {
        Some(ms) => DedupPolicy::uniform(std::time::Duration::from_millis(ms)),
        None => DedupPolicy::new(),
    };
    Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .dedup(policy)
        .on_object(ObjectType::Leases, EventType::DataUpdate, on_lease_update)
        .on(EventType::DataUpdate, move |_: Delivery| {
            updates.updates.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(())
        })
        .on(EventType::DataNew, move |delivery: Delivery| {
            new.new.fetch_add(1, Ordering::Relaxed);
            // Propexo recommends fetching the full record: a DATA_NEW payload can be partial.
            let event = delivery.event();
            if let (Some(object), Some(id)) = (event.object(), event.record_id()) {
                let _fetch_later = object.record_path(id);
            }
            Ok::<_, Infallible>(())
        })
        .on(EventType::SyncComplete, on_sync)
        .on(EventType::FirstSyncComplete, on_sync)
        .on(EventType::JobFailure, |delivery: Delivery| {
            let event = delivery.event();
            eprintln!(
                "ALERT: Propexo job {} failed for integration {} ({})",
                event.job_id().unwrap_or("?"),
                event.integration_id().unwrap_or("?"),
                event.vendor().map(ToString::to_string).unwrap_or_default()
            );
            Ok::<_, Infallible>(())
        })
        .on(EventType::WriteOperationFailure, |delivery: Delivery| {
            if let WebhookEvent::WriteOperationFailure(write) = delivery.event() {
                eprintln!(
                    "ALERT: write {} ended {}: {}",
                    write.root_job_id.as_deref().unwrap_or("?"),
                    write
                        .write_status
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    write.errors.join("; ")
                );
            }
            Ok::<_, Infallible>(())
        })
        .fallback(move |delivery: Delivery| {
            other.other.fetch_add(1, Ordering::Relaxed);
            if let WebhookEvent::Unknown(unknown) = delivery.event() {
                eprintln!("unknown trigger {}: kept as raw JSON", unknown.trigger);
            }
            Ok::<_, Infallible>(())
        })
        .on_malformed(store_malformed)
        .on_error(|error| eprintln!("handler failed (Propexo will retry): {error}"))
}

async fn on_lease_update(delivery: Delivery) -> Result<(), Infallible> {
    let WebhookEvent::DataUpdate(update) = delivery.event() else {
        return Ok(());
    };
    let approved =
        update
            .diff
            .changed_from_to("status", &"pending".to_owned(), &"approved".to_owned())
            || update.diff.changed_from_to(
                "status_normalized",
                &"PENDING".to_owned(),
                &"ACTIVE".to_owned(),
            );
    if approved {
        eprintln!(
            "lease {} approved: emailing the tenant",
            delivery.event().record_id().unwrap_or("?")
        );
    }
    Ok(())
}

fn on_sync(delivery: Delivery) -> Result<(), Infallible> {
    if let WebhookEvent::SyncComplete(sync) | WebhookEvent::FirstSyncComplete(sync) =
        delivery.event()
        && sync.failed_job_count.unwrap_or_default() > 0
    {
        eprintln!(
            "{} for {}: {} jobs failed",
            delivery.event().event_type(),
            sync.integration_id.as_deref().unwrap_or("?"),
            sync.failed_job_count.unwrap_or_default()
        );
    }
    Ok(())
}

/// Keeps a body that does not parse, so it can be replayed once the receiver understands it.
async fn store_malformed(delivery: MalformedDelivery) -> Result<(), std::io::Error> {
    let directory = std::env::var_os("MALFORMED_DIR").map_or_else(
        || std::env::temp_dir().join("propexo-malformed"),
        PathBuf::from,
    );
    tokio::fs::create_dir_all(&directory).await?;
    let path = directory.join(format!("{}.json", DeliveryKey::from_body(delivery.body())));
    tokio::fs::write(&path, delivery.body()).await?;
    eprintln!(
        "stored a malformed delivery at {} ({})",
        path.display(),
        delivery.error()
    );
    Ok(())
}
