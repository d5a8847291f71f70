//! "When a lease goes from pending to approved, email the tenant."
//!
//! ```sh
//! cargo run --example lease_approved --features axum,testkit            # sends itself two deliveries
//! cargo run --example lease_approved --features axum,testkit -- --serve # keeps the receiver up
//! ```
//!
//! One typed route: every DATA_UPDATE of a lease reaches the handler as two partial
//! [`Lease`]s, the changed fields before and after. Propexo's simplified example changes the
//! PMS's own `status` (`pending` → `approved`); its normalized form is `status_normalized`
//! (`PENDING` → `ACTIVE`). Either one sends the (logged) email.
//!
//! `PROPEXO_WEBHOOK_SECRET` (a demo secret otherwise), `BIND` or `PORT` (default
//! 127.0.0.1:3000), route `POST /webhooks/propexo`.

use std::convert::Infallible;

use axum::Router;
use propexo_webhooks::records::{Lease, LeaseStatus};
use propexo_webhooks::{Dispatcher, Receiver, UpdatedRecord, Verifier, testkit};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";
const PATH: &str = "/webhooks/propexo";

/// Propexo's simplified example, as documented.
const SEED_EXAMPLE: &str = r#"{"meta": {"object": "leases", "integration_id": "cuid_1234567890"}, "record_id": "cuid_1234567890", "diff": {"previous": {"status": "pending"}, "new": {"status": "approved"}}}"#;
/// The same change in the envelope form, with the normalized status.
const NORMALIZED: &str = r#"{"trigger":"DATA_UPDATE","data":{"event":"DATA_UPDATE","integration_id":"cly301lrc000009jvbp6vaz7i","vendor":"ENTRATA","record_id":"clz8lease0001","object":"leases","diff":{"previous":{"status_normalized":"PENDING"},"new":{"status_normalized":"ACTIVE"}}},"meta":{"object":"leases","integration_id":"cly301lrc000009jvbp6vaz7i"}}"#;

async fn email_tenant_when_approved(lease: UpdatedRecord<Lease>) -> Result<(), Infallible> {
    let raw = |side: &Lease| side.status.clone().flatten();
    let approved = (raw(&lease.previous).as_deref() == Some("pending")
        && raw(&lease.new).as_deref() == Some("approved"))
        || (lease.previous.status_normalized == Some(Some(LeaseStatus::Pending))
            && lease.new.status_normalized == Some(Some(LeaseStatus::Active)));
    if approved {
        let id = lease.delivery.event().record_id().unwrap_or("?");
        // A real receiver would fetch the lease (see `ObjectType::record_path`) for the
        // tenant's address, and send the email from a queue.
        println!("lease {id}: pending -> approved; emailing the tenant");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        eprintln!("PROPEXO_WEBHOOK_SECRET is not set: using the DEMO secret {DEMO_SECRET:?}");
        DEMO_SECRET.to_owned()
    });
    let dispatcher = Dispatcher::new().on_update(email_tenant_when_approved);
    let app = Router::new().route(
        PATH,
        propexo_webhooks::axum::route(Receiver::new(Verifier::new(&secret)?, dispatcher)),
    );
    let address = std::env::var("BIND").unwrap_or_else(|_| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        format!("127.0.0.1:{port}")
    });

    if std::env::args().any(|arg| arg == "--serve") {
        let listener = tokio::net::TcpListener::bind(&address).await?;
        println!("listening on http://{}{PATH}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        return Ok(());
    }

    // Without --serve: hand the receiver the two deliveries in process, as Propexo would send
    // them, and show the answers.
    use tower::ServiceExt;
    for (name, body) in [
        ("Propexo's example", SEED_EXAMPLE),
        ("normalized", NORMALIZED),
    ] {
        let request = testkit::signed_request(PATH, &secret, body).map(axum::body::Body::from);
        let response = app.clone().oneshot(request).await?;
        println!("{name}: answered {}", response.status());
    }
    Ok(())
}
