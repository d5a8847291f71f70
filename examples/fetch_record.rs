//! "When a lease changes, fetch the whole lease": a DATA_UPDATE says only what changed, so
//! the handler reads the full record from Propexo's API, within the account's rate limit.
//!
//! ```sh
//! # No Propexo account needed: a mock of Propexo's API runs in process, and the receiver is
//! # sent one signed DATA_UPDATE.
//! cargo run --example fetch_record --features api,axum,testkit -- --demo
//!
//! # For real: PROPEXO_API_KEY (add --sandbox for a sandbox key) and PROPEXO_WEBHOOK_SECRET.
//! cargo run --example fetch_record --features api,axum,testkit -- --sandbox
//! ```
//!
//! `BIND` or `PORT` (default 127.0.0.1:3000), route `POST /webhooks/propexo`.

use std::convert::Infallible;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use propexo_webhooks::records::Lease;
use propexo_webhooks::{ApiClient, Dispatcher, FetchedRecord, Receiver, Verifier, testkit};

const PATH: &str = "/webhooks/propexo";
const DEMO_SECRET: &str = "demo-secret-not-for-production";
const DEMO_KEY: &str = "demo-api-key";
const JSON: [(axum::http::HeaderName, &str); 1] =
    [(axum::http::header::CONTENT_TYPE, "application/json")];

/// A lease went from PENDING to ACTIVE: the diff holds that one field.
const DATA_UPDATE: &str = r#"{"trigger":"DATA_UPDATE","data":{"event":"DATA_UPDATE","integration_id":"cly301lrc000009jvbp6vaz7i","vendor":"ENTRATA","record_id":"clz8lease0001","object":"leases","diff":{"previous":{"status_normalized":"PENDING"},"new":{"status_normalized":"ACTIVE"}}},"meta":{"object":"leases","integration_id":"cly301lrc000009jvbp6vaz7i"}}"#;

async fn on_lease_change(lease: FetchedRecord<Lease>) -> Result<(), Infallible> {
    let record = &lease.record;
    println!(
        "lease {}: status {:?}, rent {:?} cents, {} resident(s), from {:?} to {:?}",
        record.id.as_deref().unwrap_or("?"),
        record.status_normalized.clone().flatten(),
        record.rent_amount_in_cents.flatten(),
        record.residents_meta_data.as_ref().map_or(0, Vec::len),
        record.start_date.clone().flatten(),
        record.end_date.clone().flatten(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let demo = std::env::args().any(|arg| arg == "--demo");
    let (api, secret) = if demo {
        let base_url = serve_mock_propexo().await?;
        println!("demo: a mock of Propexo's API at {base_url}");
        let api = ApiClient::builder(DEMO_KEY).base_url(base_url).build()?;
        (api, DEMO_SECRET.to_owned())
    } else {
        let mut builder = ApiClient::builder_from_env()?;
        if std::env::args().any(|arg| arg == "--sandbox") {
            builder = builder.sandbox();
        }
        let secret = std::env::var("PROPEXO_WEBHOOK_SECRET")
            .map_err(|_| "set PROPEXO_WEBHOOK_SECRET (or run with --demo)")?;
        (builder.build()?, secret)
    };

    // The handler gets the whole lease; a failed read (rate limit, 5xx) fails the delivery,
    // so Propexo sends it again.
    let dispatcher = Dispatcher::new()
        .on_update_fetched(&api, on_lease_change)
        .on_error(|error| eprintln!("handler failed: {error}"));
    let app = Router::new().route(
        PATH,
        propexo_webhooks::axum::route(Receiver::new(Verifier::new(&secret)?, dispatcher)),
    );

    if demo {
        use tower::ServiceExt;
        let request =
            testkit::signed_request(PATH, &secret, DATA_UPDATE).map(axum::body::Body::from);
        let response = app.oneshot(request).await?;
        println!("the receiver answered {}", response.status());
        return Ok(());
    }

    let address = std::env::var("BIND").unwrap_or_else(|_| {
        let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
        format!("127.0.0.1:{port}")
    });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on http://{}{PATH}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Serves `GET /v1/leases/{id}` as Propexo documents it (bearer auth, the `{meta, results}`
/// envelope, the rate-limit headers) on a free port of 127.0.0.1, and returns its base URL.
async fn serve_mock_propexo() -> std::io::Result<String> {
    async fn lease(Path(id): Path<String>, headers: HeaderMap) -> Response {
        let mut response = if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {DEMO_KEY}"))
        {
            let error = serde_json::json!({"error": {"code": "unauthorized", "message": "Invalid API key", "details": {}}});
            (StatusCode::UNAUTHORIZED, JSON, error.to_string()).into_response()
        } else {
            let lease = serde_json::json!({"meta": {}, "results": {
                "id": id, "x_id": "L-1042", "status_normalized": "ACTIVE", "status_raw": "Current",
                "rent_amount_in_cents": 185000, "start_date": "2026-01-01", "end_date": "2026-12-31",
                "residents_meta_data": [{"resident_id": "clz8resident01", "resident_type_normalized": "PRIMARY"}]
            }});
            (JSON, lease.to_string()).into_response()
        };
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", 150.into());
        headers.insert("x-ratelimit-remaining", 149.into());
        response
    }
    let app = Router::new().route("/v1/leases/{id}", axum::routing::get(lease));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}"))
}
