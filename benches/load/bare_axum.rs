//! The baseline of the HTTP load benchmark (`scripts/load.sh`): a bare axum server that reads
//! the body as `Bytes` and answers 200, with no verification, parsing or dispatch. The same
//! load on it and on `examples/axum_receiver.rs` shows what the receiver costs per request.
//!
//! Listens on `BIND` (default 127.0.0.1:3001), route `POST /webhooks/propexo`.

use axum::Router;
use axum::routing::post;
use bytes::Bytes;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let app = Router::new().route(
        "/webhooks/propexo",
        post(|body: Bytes| async move { if body.is_empty() { "empty" } else { "ok" } }),
    );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("bare axum listening on http://{address}/webhooks/propexo");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
