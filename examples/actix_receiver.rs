//! A complete Propexo webhook receiver on actix-web 4: `POST /webhooks/propexo`.
//!
//! ```sh
//! PROPEXO_WEBHOOK_SECRET=your-webhook-secret cargo run --example actix_receiver --features actix-web
//! ```
//!
//! Configuration, all optional:
//!
//! - `PROPEXO_WEBHOOK_SECRET`: the webhook's secret, from Propexo. Without it a demo secret is
//!   used, with a warning: never run that in production.
//! - `BIND`: the full address to listen on (`0.0.0.0:8080`, `[::1]:3000`); else `PORT` on
//!   127.0.0.1; else 127.0.0.1:3000.
//! - `MALFORMED_DIR`: where verified deliveries that do not parse are kept (default
//!   `malformed-webhooks`), so none is lost while the receiver learns to read them.
//!
//! Send it a signed delivery:
//!
//! ```sh
//! body='{"event":"JOB_FAILURE","integration_id":"INTEGRATION_ID_002","job_id":"JOB_ID_002","job_type":"READ_RESIDENT_TRANSACTIONS","vendor":"RESMAN"}'
//! signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac 'demo-secret-not-for-production' | sed 's/^.*= //')
//! curl -i http://127.0.0.1:3000/webhooks/propexo \
//!   -H 'content-type: application/json' -H "propexo-signature: $signature" --data-raw "$body"
//! ```
//!
//! Ctrl-C (or SIGTERM) stops accepting connections and lets deliveries in progress finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::{App, HttpServer};
use propexo_webhooks::{
    Delivery, DeliveryKey, Dispatcher, EventType, HandlerError, MalformedDelivery,
    MemoryIdempotencyStore, ObjectType, Receiver, Verifier, WebhookEvent,
};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";

const PATH: &str = "/webhooks/propexo";

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        eprintln!(
            "WARNING: PROPEXO_WEBHOOK_SECRET is not set: using the DEMO secret {DEMO_SECRET:?}. \
             Anyone can forge deliveries to this receiver; never run it like this in production."
        );
        DEMO_SECRET.to_owned()
    });
    // Refuses an empty, truncated or whitespace-padded secret with an error naming the mistake.
    let verifier =
        Verifier::new(secret).map_err(|error| format!("PROPEXO_WEBHOOK_SECRET: {error}"))?;
    let address = bind_address()?;
    let malformed_dir = PathBuf::from(
        std::env::var_os("MALFORMED_DIR").unwrap_or_else(|| "malformed-webhooks".into()),
    );

    let dispatcher = Dispatcher::new()
        .on_object(ObjectType::Leases, EventType::DataUpdate, lease_updated)
        .on(EventType::JobFailure, job_failed)
        .on(EventType::WriteOperationFailure, write_failed)
        .fallback(anything_else)
        .on_malformed(move |malformed| store_malformed(malformed, malformed_dir.clone()))
        .on_error(|error: &HandlerError| eprintln!("propexo webhook: {error}"))
        // Propexo re-sends a delivery until it gets a 2xx: run each one's handlers once. Use a
        // shared store (a database table) when several processes receive webhooks.
        .idempotency(MemoryIdempotencyStore::new());
    let receiver = Receiver::new(verifier, dispatcher);

    let server = HttpServer::new(move || {
        App::new().configure(propexo_webhooks::actix::service(PATH, receiver.clone()))
    })
    .bind(address)
    .map_err(|error| format!("cannot listen on {address}: {error}"))?
    // actix-web stops at once on SIGINT; Ctrl-C is handled below, gracefully.
    .disable_signals()
    .shutdown_timeout(30)
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        println!("shutting down: finishing the deliveries in progress");
        handle.stop(true).await;
    });
    println!("receiving Propexo webhooks on http://{address}{PATH}");
    server.await?;
    println!("stopped");
    Ok(())
}

/// `BIND`, else 127.0.0.1:`PORT`, else 127.0.0.1:3000.
fn bind_address() -> Result<SocketAddr, String> {
    if let Ok(bind) = std::env::var("BIND") {
        return bind.parse().map_err(|error| {
            format!("BIND={bind:?} is not an address like 0.0.0.0:8080: {error}")
        });
    }
    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|error| format!("PORT={port:?} is not a port number: {error}"))?,
        Err(_) => 3000,
    };
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A lease changed: act on its status.
async fn lease_updated(delivery: Delivery) -> Result<(), propexo_webhooks::Error> {
    let WebhookEvent::DataUpdate(update) = delivery.event() else {
        return Ok(());
    };
    let lease = delivery.event().record_id().unwrap_or("?");
    // A side that does not parse as a string is an error: Propexo retries, the logs say why.
    let Some(status) = update.diff.change_as::<String>("status_normalized")? else {
        return Ok(());
    };
    println!(
        "lease {lease}: status {} -> {}",
        status.previous.value().map_or("(none)", String::as_str),
        status.new.value().map_or("(none)", String::as_str),
    );
    if status.is_from_to(&"PENDING".to_owned(), &"ACTIVE".to_owned()) {
        println!("lease {lease} approved: sending the welcome email");
    }
    Ok(())
}

/// A Propexo job failed: page someone.
async fn job_failed(delivery: Delivery) -> Result<(), std::convert::Infallible> {
    if let WebhookEvent::JobFailure(job) = delivery.event() {
        eprintln!(
            "ALERT: Propexo job {} ({}) failed for integration {} on {}",
            job.job_id.as_deref().unwrap_or("?"),
            job.job_type.as_deref().unwrap_or("unknown type"),
            job.integration_id.as_deref().unwrap_or("?"),
            job.vendor
                .as_ref()
                .map_or("an unknown vendor", |vendor| vendor.as_str()),
        );
    }
    Ok(())
}

/// A write to the property management system did not (fully) go through.
async fn write_failed(delivery: Delivery) -> Result<(), std::convert::Infallible> {
    if let WebhookEvent::WriteOperationFailure(failure) = delivery.event() {
        eprintln!(
            "write operation {} on integration {}: {}",
            failure.root_job_id.as_deref().unwrap_or("?"),
            failure.integration_id.as_deref().unwrap_or("?"),
            failure
                .write_status
                .as_ref()
                .map_or("no status", |status| status.as_str()),
        );
        for error in &failure.errors {
            eprintln!("  - {error}");
        }
    }
    Ok(())
}

/// Every other event (unknown triggers included) is acknowledged and logged.
async fn anything_else(delivery: Delivery) -> Result<(), std::convert::Infallible> {
    let event = delivery.event();
    println!(
        "{} for {} {}",
        event.event_type(),
        event
            .object()
            .map_or("-".to_owned(), |object| object.to_string()),
        event.record_id().unwrap_or("-"),
    );
    Ok(())
}

/// Keeps a verified delivery that does not parse, named after its content hash (so a re-send
/// overwrites it), with the reason beside it. Failing to store it answers 500: Propexo retries.
async fn store_malformed(malformed: MalformedDelivery, dir: PathBuf) -> Result<(), std::io::Error> {
    let key = DeliveryKey::from_body(malformed.body());
    let body = malformed.body().clone();
    let reason = malformed.error().to_string();
    eprintln!("propexo webhook: storing unparseable delivery {key}: {reason}");
    // Off the server's threads: file I/O blocks.
    actix_web::web::block(move || {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{key}.body")), &body)?;
        std::fs::write(dir.join(format!("{key}.reason.txt")), reason)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Ctrl-C, or SIGTERM (what container runtimes send) on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = actix_web::rt::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({error}); stop the process another way");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
