//! The receiver in inbox mode against every backend: a 2xx only for a delivery that is stored
//! (and visible to another connection, so committed), and never a 2xx while the store is down.

#[path = "support/postgres.rs"]
mod postgres_support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{StatusCode, header};
use http_body_util::BodyExt;
use propexo_webhooks::{
    Inbox, MemoryInbox, PostgresInbox, Receiver, SqliteInbox, Verifier, testkit,
};
use tower::ServiceExt;

const SECRET: &str = "propexo-inbox-receiver-secret";
const PATH: &str = "/webhooks/propexo";

fn app(inbox: impl Inbox) -> Router {
    let receiver = Receiver::with_inbox(Verifier::new(SECRET).unwrap(), inbox);
    Router::new().route(PATH, propexo_webhooks::axum::route(receiver))
}

fn body(n: usize) -> String {
    format!(r#"{{"event":"JOB_FAILURE","job_id":"JOB_{n}","integration_id":"INBOX_RECEIVER"}}"#)
}

/// Sends delivery `n`; returns the status and the `Retry-After` header.
async fn send(app: &Router, n: usize) -> (StatusCode, Option<String>) {
    let request = testkit::signed_request(&format!("http://localhost{PATH}"), SECRET, body(n))
        .map(Body::from);
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap().to_owned());
    let _ = response.into_body().collect().await;
    (status, retry_after)
}

/// Sends deliveries one by one; after each 202, `witness` (another handle on the same store)
/// must already count it as pending.
async fn every_acknowledged_delivery_is_stored(app: Router, witness: impl Inbox) {
    for n in 0..40 {
        let (status, _) = send(&app, n).await;
        assert_eq!(status, StatusCode::ACCEPTED, "delivery {n}");
        let stats = witness.stats().await.unwrap();
        assert_eq!(
            stats.pending,
            n as u64 + 1,
            "delivery {n} answered 202 but not stored"
        );
        // A re-send of a stored delivery is acknowledged and not stored twice.
        assert_eq!(send(&app, n).await.0, StatusCode::ACCEPTED);
        assert_eq!(witness.stats().await.unwrap().pending, n as u64 + 1);
    }
}

#[tokio::test]
async fn memory_inbox_acknowledges_only_what_it_holds() {
    let inbox = MemoryInbox::new();
    every_acknowledged_delivery_is_stored(app(inbox.clone()), inbox).await;
}

#[tokio::test]
async fn sqlite_inbox_acknowledges_only_what_another_connection_can_read() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("inbox.sqlite3");
    let receiving = SqliteInbox::open(&path).unwrap();
    // A second inbox on the same file has a connection of its own: it sees committed rows only.
    let witness = SqliteInbox::open(&path).unwrap();
    every_acknowledged_delivery_is_stored(app(receiving), witness).await;
}

#[tokio::test]
async fn postgres_inbox_acknowledges_only_what_another_connection_can_read() {
    let Some(url) = postgres_support::fresh_database().await else {
        return;
    };
    let receiving = PostgresInbox::connect(&url).await.unwrap();
    let witness = PostgresInbox::connect(&url).await.unwrap();
    every_acknowledged_delivery_is_stored(app(receiving), witness).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_every_request_gets_503_and_none_2xx() {
    let cluster = match tokio::task::spawn_blocking(postgres_support::Cluster::start)
        .await
        .unwrap()
    {
        Ok(cluster) => cluster,
        Err(why) => {
            postgres_support::skip(&why);
            return;
        }
    };
    let inbox = PostgresInbox::builder(&cluster.url())
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let app = app(inbox.clone());
    assert_eq!(send(&app, 0).await.0, StatusCode::ACCEPTED);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    let answers = futures_util::future::join_all((1..=20).map(|n| send(&app, n))).await;
    for (n, (status, retry_after)) in answers.iter().enumerate() {
        assert_eq!(
            *status,
            StatusCode::SERVICE_UNAVAILABLE,
            "request {}",
            n + 1
        );
        assert!(
            retry_after.is_some(),
            "request {}: a 503 says when to retry",
            n + 1
        );
    }
    // A re-send of the delivery stored before the outage is not acknowledged either: the
    // receiver cannot know it is stored.
    assert_eq!(send(&app, 0).await.0, StatusCode::SERVICE_UNAVAILABLE);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart().unwrap();
        cluster
    })
    .await
    .unwrap();
    // Back: the pool reconnects, and what was refused is stored on its re-send.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while send(&app, 1).await.0 != StatusCode::ACCEPTED {
        assert!(
            std::time::Instant::now() < deadline,
            "the inbox never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = inbox.stats().await.unwrap();
    assert_eq!(
        stats.pending, 2,
        "the delivery from before the outage, and the re-sent one"
    );
    drop(cluster);
}

#[tokio::test]
async fn sqlite_inbox_is_an_idempotency_store_that_survives_a_restart() {
    use propexo_webhooks::{Claim, DedupPolicy, DeliveryKey, IdempotencyStore};
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("inbox.sqlite3");
    let key = DeliveryKey::from_body(body(1).as_bytes());
    let sync = DeliveryKey::from_body(b"a sync without a job id");
    {
        let store = SqliteInbox::open(&path).unwrap();
        assert_eq!(
            IdempotencyStore::claim(&store, &key).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            IdempotencyStore::claim(&store, &key).await.unwrap(),
            Claim::InProgress
        );
        IdempotencyStore::complete(&store, &key, DedupPolicy::DEFAULT_WINDOW)
            .await
            .unwrap();
        assert_eq!(
            IdempotencyStore::claim(&store, &sync).await.unwrap(),
            Claim::Claimed
        );
        IdempotencyStore::complete(&store, &sync, Duration::ZERO)
            .await
            .unwrap();
    }
    // Another process (here: another connection) after a restart still knows the delivery.
    let store = SqliteInbox::open(&path).unwrap();
    assert_eq!(
        IdempotencyStore::claim(&store, &key).await.unwrap(),
        Claim::Completed
    );
    // A zero window remembers nothing after success.
    assert_eq!(
        IdempotencyStore::claim(&store, &sync).await.unwrap(),
        Claim::Claimed
    );
    IdempotencyStore::release(&store, &sync).await.unwrap();
    assert_eq!(
        IdempotencyStore::claim(&store, &sync).await.unwrap(),
        Claim::Claimed
    );
}
