//! Acknowledged deliveries per second through the receiver into each durable inbox, at 1, 16
//! and 64 concurrent requests, beside the engine's floor in the same run: a bare
//! `INSERT ...; COMMIT` of the same row with the same durability settings.
//!
//! - receiver: signed 1 KiB lease DATA_UPDATEs, each distinct, through the axum route in process
//!   (verify, store, answer 202), from `concurrency` tasks;
//! - SQLite floor: `concurrency` threads, each with its own connection (WAL,
//!   `synchronous=FULL`), each running `BEGIN IMMEDIATE; INSERT; COMMIT` of the same row;
//! - PostgreSQL floor: `concurrency` connections, each running an autocommit `INSERT` of the
//!   same row into a table of the same columns.
//!
//! The PostgreSQL server is a throw-away cluster on 127.0.0.1 (`fsync=on`, default
//! `synchronous_commit`), started like the tests' (or `PROPEXO_TEST_DATABASE_URL`). Each
//! measurement runs for `PROPEXO_INBOX_BENCH_SECS` seconds (default 3), the two sides
//! alternating. The results go to stdout and to `target/inbox-bench.json`, which
//! `scripts/bench-report.py` puts in BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench inbox --features axum,sqlite,postgres,testkit
//! ```

#[path = "../tests/support/postgres.rs"]
mod postgres_support;

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use propexo_webhooks::{
    DeliveryKey, Inbox, PostgresInbox, Receiver, SqliteInbox, Verifier, testkit,
};
use tower::ServiceExt;

const SECRET: &str = "propexo-inbox-bench-secret";
const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Body `n`: the 1 KiB lease update of the other benches with its job id made unique.
fn body(template: &str, n: u64) -> String {
    template.replacen(
        r#""job_id":"clz8job"#,
        &format!(r#""job_id":"bench{n:012}x"#),
        1,
    )
}

fn seconds() -> Duration {
    let secs = std::env::var("PROPEXO_INBOX_BENCH_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Runs `task` on `concurrency` tasks for `duration`; returns completions per second.
async fn rate<F, Fut>(concurrency: usize, duration: Duration, task: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (task, done, stop) = (task.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if task(NEXT.fetch_add(1, Ordering::Relaxed)).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a bench task panicked");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Deliveries/s through the receiver into `inbox`.
async fn through_receiver(inbox: impl Inbox, concurrency: usize, template: Arc<str>) -> f64 {
    let receiver = Receiver::with_inbox(Verifier::new(SECRET).expect("a secret"), inbox);
    let app = Router::new().route("/webhooks", propexo_webhooks::axum::route(receiver));
    rate(concurrency, seconds(), move |n| {
        let (app, template) = (app.clone(), template.clone());
        async move {
            let request =
                testkit::signed_request("http://localhost/webhooks", SECRET, body(&template, n))
                    .map(Body::from);
            let response = app.oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::ACCEPTED, "stored");
            true
        }
    })
    .await
}

fn sqlite_floor_connection(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("open the floor's file");
    connection
        .busy_timeout(Duration::from_secs(30))
        .expect("busy timeout");
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("synchronous=FULL");
    connection
}

/// Rows/s of `BEGIN IMMEDIATE; INSERT; COMMIT`, one connection per thread.
async fn sqlite_floor(path: PathBuf, concurrency: usize, template: Arc<str>) -> f64 {
    sqlite_floor_connection(&path)
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS floor (key BLOB PRIMARY KEY, body BLOB NOT NULL,
                 signature TEXT NOT NULL, headers TEXT NOT NULL, state INTEGER NOT NULL,
                 due_at INTEGER NOT NULL)",
        )
        .expect("the floor's table");
    let connections: Vec<_> = (0..concurrency)
        .map(|_| Arc::new(std::sync::Mutex::new(sqlite_floor_connection(&path))))
        .collect();
    let next_connection = Arc::new(AtomicU64::new(0));
    rate(concurrency, seconds(), move |n| {
        let index = next_connection.fetch_add(1, Ordering::Relaxed) as usize % connections.len();
        let (connection, template) = (connections[index].clone(), template.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let body = body(&template, n);
                let key = DeliveryKey::from_body(body.as_bytes());
                let signature = propexo_webhooks::sign(SECRET, body.as_bytes());
                let mut connection = connection.lock().expect("a connection");
                let transaction = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .expect("BEGIN IMMEDIATE");
                transaction
                    .execute(
                        "INSERT INTO floor VALUES (?1, ?2, ?3, '', 0, 0)",
                        rusqlite::params![&key.as_bytes()[..], body.as_bytes(), signature],
                    )
                    .expect("INSERT");
                transaction.commit().expect("COMMIT");
                true
            })
            .await
            .expect("the insert's thread")
        }
    })
    .await
}

/// Rows/s of an autocommit `INSERT`, `concurrency` connections.
async fn postgres_floor(url: &str, concurrency: usize, template: Arc<str>) -> f64 {
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect for the floor");
        tokio::spawn(connection);
        clients.push(Arc::new(client));
    }
    clients[0]
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS floor (key BYTEA PRIMARY KEY, body BYTEA NOT NULL,
                 signature TEXT NOT NULL, headers TEXT NOT NULL, state SMALLINT NOT NULL,
                 due_at TIMESTAMPTZ NOT NULL)",
        )
        .await
        .expect("the floor's table");
    let next_client = Arc::new(AtomicU64::new(0));
    rate(concurrency, seconds(), move |n| {
        let index = next_client.fetch_add(1, Ordering::Relaxed) as usize % clients.len();
        let (client, template) = (clients[index].clone(), template.clone());
        async move {
            let body = body(&template, n);
            let key = DeliveryKey::from_body(body.as_bytes());
            let signature = propexo_webhooks::sign(SECRET, body.as_bytes());
            client
                .execute(
                    "INSERT INTO floor VALUES ($1, $2, $3, '', 0, now())",
                    &[&&key.as_bytes()[..], &body.as_bytes(), &signature],
                )
                .await
                .expect("INSERT");
            true
        }
    })
    .await
}

#[derive(Debug)]
struct Row {
    backend: &'static str,
    concurrency: usize,
    receiver: f64,
    floor: f64,
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` is not supported here.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let template: Arc<str> = String::from_utf8(common::lease_update(1 << 10))
        .expect("UTF-8")
        .into();
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut rows = Vec::new();

    for concurrency in CONCURRENCY {
        let sqlite = directory
            .path()
            .join(format!("inbox-{concurrency}.sqlite3"));
        let inbox = SqliteInbox::open(&sqlite).expect("open the SQLite inbox");
        let floor_path = directory
            .path()
            .join(format!("floor-{concurrency}.sqlite3"));
        let floor = sqlite_floor(floor_path, concurrency, template.clone()).await;
        let receiver = through_receiver(inbox, concurrency, template.clone()).await;
        rows.push(Row {
            backend: "SQLite",
            concurrency,
            receiver,
            floor,
        });
        println!("{:?}", rows.last().expect("a row"));
    }

    match tokio::task::spawn_blocking(postgres_support::database)
        .await
        .expect("the harness")
    {
        Some(db) => {
            for concurrency in CONCURRENCY {
                let url = postgres_support::fresh_database()
                    .await
                    .expect("a database");
                let floor = postgres_floor(&url, concurrency, template.clone()).await;
                let inbox = PostgresInbox::builder(&url)
                    .expect("a URL")
                    .pool_size(concurrency.max(1))
                    .connect()
                    .await
                    .expect("connect the PostgreSQL inbox");
                let receiver = through_receiver(inbox, concurrency, template.clone()).await;
                rows.push(Row {
                    backend: "PostgreSQL",
                    concurrency,
                    receiver,
                    floor,
                });
                println!("{:?}", rows.last().expect("a row"));
            }
            drop(db);
        }
        None => println!("SKIPPED: PostgreSQL: no server could be started"),
    }

    println!(
        "\n| backend | concurrent requests | receiver, acknowledged/s | floor, INSERT+COMMIT/s | ratio |"
    );
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2}× |",
            row.backend,
            row.concurrency,
            row.receiver,
            row.floor,
            row.receiver / row.floor
        );
    }
    let json: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                r#"{{"backend":"{}","concurrency":{},"receiver_per_s":{:.1},"floor_per_s":{:.1}}}"#,
                row.backend, row.concurrency, row.receiver, row.floor
            )
        })
        .collect();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    let text = format!(
        r#"{{"date":"{}","seconds":{},"rows":[{}]}}"#,
        date.trim(),
        seconds().as_secs_f64(),
        json.join(",")
    );
    std::fs::write(target.join("inbox-bench.json"), text).expect("write target/inbox-bench.json");
}
