//! What only `PostgresInbox` does: replicas sharing one database, the `IdempotencyStore` across
//! them, migrations racing at start, and a database that goes away and comes back.
//!
//! The conformance cases every inbox passes are in `inbox_conformance.rs`.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use propexo_webhooks::{
    Claim, DeliveryKey, IdempotencyStore, Inbox, InboxError, PostgresInbox, SIGNATURE_HEADER,
    Stored, VerifiedBody, Verifier,
};

#[path = "support/postgres.rs"]
mod postgres_support;

use postgres_support::{Cluster, TestDb};

const SECRET: &str = "secret-of-the-postgres-inbox-tests";

fn delivery(n: u32) -> VerifiedBody {
    let body = format!(r#"{{"event_type":"JOB_SUCCESS","job_id":"pg-{n}"}}"#);
    let verifier = Verifier::new(SECRET).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&verifier.sign(body.as_bytes())).unwrap(),
    );
    VerifiedBody::verify(&verifier, headers, body).unwrap()
}

fn key(n: u32) -> DeliveryKey {
    DeliveryKey::from_body(delivery(n).body())
}

async fn database() -> Option<TestDb> {
    tokio::task::spawn_blocking(postgres_support::database)
        .await
        .unwrap()
}

async fn replica(db: &TestDb) -> PostgresInbox {
    PostgresInbox::builder(&db.url)
        .unwrap()
        .table_prefix(&db.prefix)
        .unwrap()
        .pool_size(8)
        .connect()
        .await
        .unwrap()
}

fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, InboxError>) -> bool {
    matches!(result, Err(InboxError::Unavailable(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_stopped_fails_fast_then_recovers() {
    // A cluster of its own, even with PROPEXO_TEST_DATABASE_URL: stopping a shared one would
    // fail the other tests.
    let cluster = match tokio::task::spawn_blocking(Cluster::start).await.unwrap() {
        Ok(cluster) => std::sync::Arc::new(cluster),
        Err(why) => return postgres_support::skip(&why),
    };
    let inbox = PostgresInbox::builder(&cluster.url())
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    assert_eq!(inbox.store(&delivery(1)).await.unwrap(), Stored::New);

    let stopping = std::sync::Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    for n in 2..4 {
        let started = Instant::now();
        let stored = inbox.store(&delivery(n)).await;
        assert!(is_unavailable(&stored), "store while stopped: {stored:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failed after {:?}, not promptly",
            started.elapsed()
        );
    }
    let started = Instant::now();
    assert!(is_unavailable(
        &Inbox::claim(&inbox, 10, Duration::from_secs(30)).await
    ));
    assert!(is_unavailable(&inbox.stats().await));
    assert!(is_unavailable(&inbox.sweep(5).await));
    assert!(IdempotencyStore::claim(&inbox, &key(9)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(20));
    let unreachable = PostgresInbox::builder(&cluster.url())
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(is_unavailable(&unreachable));

    let restarting = std::sync::Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        match inbox.store(&delivery(2)).await {
            Ok(stored) => break stored,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no recovery after the restart: {error}"),
        }
    };
    assert_eq!(stored, Stored::New);
    let claimed = Inbox::claim(&inbox, 10, Duration::from_secs(30))
        .await
        .unwrap();
    let mut keys: Vec<_> = claimed.iter().map(|leased| leased.lease.key).collect();
    keys.sort();
    let mut expected = vec![key(1), key(2)];
    expected.sort();
    assert_eq!(
        keys, expected,
        "what was stored before the stop is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_listening_fails_promptly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let inbox = PostgresInbox::builder(&format!("postgres://postgres@127.0.0.1:{port}/postgres"))
        .unwrap()
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(is_unavailable(&inbox));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(is_unavailable(
        &PostgresInbox::connect("postgres://[bad").await
    ));
    assert!(is_unavailable(
        &PostgresInbox::builder("postgres://localhost/db")
            .unwrap()
            .table_prefix("drop table x;")
            .map(|_| ())
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_the_inbox() {
    let Some(db) = database().await else { return };
    let a = replica(&db).await;
    let b = replica(&db).await;

    // The same deliveries stored by both at once: each is new exactly once.
    let mut stores = Vec::new();
    for n in 0..20 {
        for inbox in [a.clone(), b.clone()] {
            stores.push(tokio::spawn(async move {
                inbox.store(&delivery(n)).await.unwrap()
            }));
        }
    }
    let mut new = 0;
    for store in stores {
        match store.await.unwrap() {
            Stored::New => new += 1,
            Stored::AlreadyStored => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new, 20);

    // Stored through one replica, claimed through the other.
    let mut claimed = Inbox::claim(&b, 100, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 20);
    assert!(
        Inbox::claim(&a, 100, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let leased = claimed.remove(0);
    assert!(
        Inbox::complete(&a, &leased.lease, Duration::from_secs(3600))
            .await
            .unwrap()
    );
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.in_flight, stats.done), (19, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_wakes_the_other_replicas_workers() {
    let Some(db) = database().await else { return };
    let a = replica(&db).await;
    let b = replica(&db).await;
    // The listener connects in the background: try a few deliveries.
    for n in 0..10 {
        let woken = b.notified();
        a.store(&delivery(n)).await.unwrap();
        if tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("no NOTIFY reached the other replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_store_shared_by_two_replicas() {
    let Some(db) = database().await else { return };
    let a = PostgresInbox::builder(&db.url)
        .unwrap()
        .table_prefix(&db.prefix)
        .unwrap()
        .idempotency_claim_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let b = replica(&db).await;
    let window = Duration::from_secs(3600);

    let k = key(1);
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::InProgress
    );
    IdempotencyStore::release(&a, &k).await.unwrap();
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::Claimed
    );
    IdempotencyStore::complete(&b, &k, window).await.unwrap();
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Completed
    );
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::Completed
    );
    // A release does not forget another copy's success.
    IdempotencyStore::release(&a, &k).await.unwrap();
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Completed
    );

    // A zero window forgets at once; a short one ends.
    let k = key(2);
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Claimed
    );
    IdempotencyStore::complete(&a, &k, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::Claimed
    );
    IdempotencyStore::complete(&b, &k, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Completed
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Claimed
    );

    // A claim in progress expires after the claim timeout (a's: 300 ms).
    let k = key(3);
    assert_eq!(
        IdempotencyStore::claim(&a, &k).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::InProgress
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::Claimed
    );

    // An abandoned claim is released in the background.
    let k = key(4);
    assert_eq!(
        IdempotencyStore::claim(&b, &k).await.unwrap(),
        Claim::Claimed
    );
    b.abandon(&k);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match IdempotencyStore::claim(&a, &k).await.unwrap() {
            Claim::Claimed => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("abandoned claim still held: {other:?}"),
        }
    }

    // Concurrent claims of one key from both replicas: exactly one wins.
    let k = key(5);
    let mut claims = Vec::new();
    for i in 0..16 {
        let inbox = if i % 2 == 0 { a.clone() } else { b.clone() };
        claims.push(tokio::spawn(async move {
            IdempotencyStore::claim(&inbox, &k).await.unwrap()
        }));
    }
    let mut claimed = 0;
    for claim in claims {
        match claim.await.unwrap() {
            Claim::Claimed => claimed += 1,
            Claim::InProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_migrate_at_once() {
    let Some(db) = database().await else { return };
    let mut connects = Vec::new();
    for _ in 0..6 {
        let db = db.clone();
        connects.push(tokio::spawn(async move { replica(&db).await }));
    }
    let mut replicas = Vec::new();
    for connect in connects {
        replicas.push(connect.await.unwrap());
    }
    assert_eq!(replicas[0].store(&delivery(1)).await.unwrap(), Stored::New);
    assert_eq!(
        replicas[5].store(&delivery(1)).await.unwrap(),
        Stored::AlreadyStored
    );

    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(&format!("SELECT version FROM {}_schema", db.prefix), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1]);

    // A schema written by a newer version of the crate is refused, not misused.
    client
        .execute(
            &format!("INSERT INTO {}_schema (version) VALUES (99)", db.prefix),
            &[],
        )
        .await
        .unwrap();
    let refused = PostgresInbox::builder(&db.url)
        .unwrap()
        .table_prefix(&db.prefix)
        .unwrap()
        .connect()
        .await;
    match refused {
        Err(InboxError::Unavailable(error)) => assert!(error.to_string().contains("newer")),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_tables_in_a_database_of_its_own() {
    let Some(url) = postgres_support::fresh_database().await else {
        return;
    };
    let inbox = PostgresInbox::connect(&url).await.unwrap();
    assert_eq!(inbox.store(&delivery(1)).await.unwrap(), Stored::New);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query("SELECT count(*) FROM propexo_inbox", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
}

/// Acknowledged stores per second at 1, 16 and 64 concurrent stores, beside a bare autocommit
/// `INSERT` of the same row on as many connections. A rough guide in a debug build; run with
/// `cargo test --features postgres --test inbox_postgres -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn store_throughput() {
    let Some(db) = database().await else { return };
    let inbox = PostgresInbox::builder(&db.url)
        .unwrap()
        .table_prefix(&db.prefix)
        .unwrap()
        .pool_size(64)
        .connect()
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE TABLE {p}_floor (key BYTEA PRIMARY KEY, body BYTEA NOT NULL)",
            p = db.prefix
        ))
        .await
        .unwrap();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1_000_000));
    for concurrency in [1usize, 16, 64] {
        let run_for = Duration::from_secs(3);
        // The inbox.
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (inbox, next) = (inbox.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let mut stored = 0u64;
                while started.elapsed() < run_for {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    assert_eq!(inbox.store(&delivery(n)).await.unwrap(), Stored::New);
                    stored += 1;
                }
                stored
            }));
        }
        let mut inbox_total = 0;
        for task in tasks {
            inbox_total += task.await.unwrap();
        }
        // The floor: the same row, a bare INSERT, one connection per task.
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (url, prefix, next) = (db.url.clone(), db.prefix.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let insert = client
                    .prepare(&format!(
                        "INSERT INTO {prefix}_floor (key, body) VALUES ($1, $2)"
                    ))
                    .await
                    .unwrap();
                let started = Instant::now();
                let mut stored = 0u64;
                while started.elapsed() < run_for {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let delivery = delivery(n);
                    let key = DeliveryKey::from_body(delivery.body());
                    client
                        .execute(
                            &insert,
                            &[&key.as_bytes().as_slice(), &delivery.body().as_ref()],
                        )
                        .await
                        .unwrap();
                    stored += 1;
                }
                stored
            }));
        }
        let mut floor_total = 0;
        for task in tasks {
            floor_total += task.await.unwrap();
        }
        let seconds = run_for.as_secs_f64();
        eprintln!(
            "concurrency {concurrency:>2}: inbox {:>7.0}/s, floor {:>7.0}/s, ratio {:.2}",
            inbox_total as f64 / seconds,
            floor_total as f64 / seconds,
            inbox_total as f64 / floor_total as f64
        );
    }
}
