//! Persist, then acknowledge, proven by killing the receiver under load.
//!
//! The `durable_receiver` example runs as a child process (built by `cargo test`, which builds
//! the examples). A client sends N distinct signed deliveries over real sockets, many at once,
//! and re-sends every answer that is not a 2xx (and every refused connection) until it is
//! acknowledged, as Propexo does without its 15 minutes between attempts. The receiver's handler
//! fails one run in ten (`FAIL_PERCENT=10`) and appends each success to `EFFECTS_FILE`. At random
//! moments (when the count of acknowledged deliveries crosses thresholds drawn at random) the
//! receiver is killed with SIGKILL and started again at once. In the end every delivery's effect
//! must be present, and the duplicates (effects recorded twice) must be at most the work the
//! killed processes had in flight: one delivery per worker per kill.
//!
//! Scenarios: SQLite; PostgreSQL; PostgreSQL with two replicas sharing the database, one of them
//! killed (the client, like a load balancer, sends to the other when one does not answer).
//!
//! `PROPEXO_CRASH_DELIVERIES` (default 400, so CI stays fast) and `PROPEXO_CRASH_KILLS` (default
//! 3) size the run. The full run:
//!
//! ```sh
//! PROPEXO_CRASH_DELIVERIES=10000 cargo test --release --all-features --test crash -- --nocapture --test-threads 1
//! ```

#[path = "support/postgres.rs"]
mod postgres_support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use propexo_webhooks::{Inbox, PostgresInbox, SqliteInbox, testkit};

const SECRET: &str = "propexo-crash-test-secret";
const PATH: &str = "/webhooks/propexo";
/// The example's worker count: at most this many deliveries are in flight in one process.
const WORKERS: usize = 8;
const CONCURRENCY: usize = 32;

fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}")),
        Err(_) => default,
    }
}

/// The `durable_receiver` example beside this test binary (`target/<profile>/examples`).
fn receiver_binary() -> PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = profile.join("examples").join("durable_receiver");
    assert!(
        binary.exists(),
        "{} is missing: `cargo test --features axum,sqlite` builds it (or run \
         `cargo build --example durable_receiver --features axum,sqlite,postgres`)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One receiver process, restartable on the same port.
struct Replica {
    port: u16,
    inbox_url: String,
    effects: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Replica {
    fn new(inbox_url: &str, effects: &Path, log: PathBuf) -> Self {
        Self {
            port: free_port(),
            inbox_url: inbox_url.to_owned(),
            effects: effects.to_owned(),
            child: None,
            log,
        }
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the replica's log file");
        let child = Command::new(receiver_binary())
            .env("PROPEXO_WEBHOOK_SECRET", SECRET)
            .env("PORT", self.port.to_string())
            .env("INBOX_URL", &self.inbox_url)
            .env("EFFECTS_FILE", &self.effects)
            .env("FAIL_PERCENT", "10")
            .env("LEASE_SECS", "2")
            .env_remove("BIND")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the durable receiver");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect_timeout(&self.address(), Duration::from_millis(100)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the receiver did not listen within 30 s; see {}",
                self.log.display()
            );
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the receiver exited with {status}; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no flush, nothing settled.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the receiver");
            child.wait().expect("reap the receiver");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Delivery `n`: a lease update with its own record and job id.
fn body(n: usize) -> String {
    format!(
        r#"{{"event":"DATA_UPDATE","integration_id":"CRASH","job_id":"JOB_{n}","root_job_id":"ROOT_{n}","vendor":"YARDI","record_id":"REC_{n}","object":"leases","diff":{{"previous":{{"status_normalized":"PENDING"}},"new":{{"status_normalized":"ACTIVE"}}}},"meta":{{"object":"leases","integration_id":"CRASH"}}}}"#
    )
}

#[derive(Default)]
struct Counts {
    acknowledged: AtomicUsize,
    requests: AtomicUsize,
    refused: AtomicUsize,
    unanswered: AtomicUsize,
}

async fn send(client: &Client, address: SocketAddr, body: &str, counts: &Counts) -> bool {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let request =
        testkit::signed_request(&format!("http://{address}{PATH}"), SECRET, body.to_owned())
            .map(Full::new);
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => true,
        Ok(Ok(_)) => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            false
        }
        Ok(Err(_)) | Err(_) => {
            counts.unanswered.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// The effects recorded so far: record id → how many times.
fn effects(path: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut seen = HashMap::new();
    for line in text.lines() {
        let (record, key) = line.split_once(' ').expect("`<record_id> <key>` lines");
        assert_eq!(key.len(), 64, "a delivery key in hex: {line}");
        *seen.entry(record.to_owned()).or_insert(0) += 1;
    }
    seen
}

/// Runs one crash scenario: `replicas` receivers on `inbox_url`, the first of them killed.
/// `inbox` is the same inbox, opened by the test to read its counts.
async fn crash_run(
    name: &str,
    inbox_url: &str,
    inbox: impl Inbox,
    replicas: usize,
    directory: &Path,
) {
    let deliveries = env_or("PROPEXO_CRASH_DELIVERIES", 400);
    let kills = env_or("PROPEXO_CRASH_KILLS", 3).max(1);
    let effects_path = directory.join("effects.txt");
    let mut processes: Vec<Replica> = (0..replicas)
        .map(|n| {
            Replica::new(
                inbox_url,
                &effects_path,
                directory.join(format!("replica-{n}.log")),
            )
        })
        .collect();
    processes.iter_mut().for_each(Replica::start);
    let addresses: Arc<Vec<SocketAddr>> =
        Arc::new(processes.iter().map(Replica::address).collect());
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_millis(500))
            .build_http();
    let counts = Arc::new(Counts::default());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let senders: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, counts, next, addresses) = (
                client.clone(),
                counts.clone(),
                next.clone(),
                addresses.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= deliveries {
                        break;
                    }
                    let body = body(n);
                    // Like a load balancer: the next attempt goes to the next replica.
                    let mut target = n;
                    while !send(&client, addresses[target % addresses.len()], &body, &counts).await
                    {
                        target += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Kill the first replica when the acknowledged count crosses random thresholds.
    let mut thresholds: Vec<usize> = (0..kills)
        .map(|_| fastrand::usize(deliveries / 10..deliveries * 9 / 10))
        .collect();
    thresholds.sort_unstable();
    let mut kill_times = Vec::new();
    for threshold in &thresholds {
        while counts.acknowledged.load(Ordering::Relaxed) < *threshold {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        processes[0].kill();
        kill_times.push(started.elapsed());
        processes[0].start();
    }
    for sender in senders {
        sender.await.expect("a sender panicked");
    }
    let sent_in = started.elapsed();

    // Deliveries the killed processes held return when their leases expire; wait until the
    // inbox holds nothing pending or in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stats = inbox.stats().await.expect("the inbox's counts");
    while (stats.pending, stats.in_flight) != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = inbox.stats().await.expect("the inbox's counts");
    }
    let settled_in = started.elapsed();
    drop(processes);
    let seen = effects(&effects_path);

    let missing: Vec<usize> = (0..deliveries)
        .filter(|n| !seen.contains_key(&format!("REC_{n}")))
        .collect();
    let duplicates: usize = seen.values().map(|count| count - 1).sum();
    let strangers = seen
        .keys()
        .filter(|record| {
            record
                .strip_prefix("REC_")
                .and_then(|n| n.parse::<usize>().ok())
                .is_none_or(|n| n >= deliveries)
        })
        .count();
    println!(
        "crash/{name}: {deliveries} deliveries, {replicas} replica(s), {kills} SIGKILLs at {:?}; \
         {} requests ({} refused, {} unanswered), all acknowledged in {sent_in:.2?}, inbox \
         settled after {settled_in:.2?} ({stats:?}); {} missing, {duplicates} duplicate effects \
         (bound {})",
        kill_times,
        counts.requests.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.unanswered.load(Ordering::Relaxed),
        missing.len(),
        kills * WORKERS,
    );
    assert_eq!(
        counts.acknowledged.load(Ordering::Relaxed),
        deliveries,
        "every delivery acknowledged"
    );
    assert!(
        missing.is_empty(),
        "{name}: {} acknowledged deliveries never handled, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(strangers, 0, "effects of deliveries nobody sent");
    assert_eq!(
        (stats.pending, stats.in_flight, stats.dead, stats.done),
        (0, 0, 0, deliveries as u64),
        "{name}: every delivery done in the inbox"
    );
    assert!(
        duplicates <= kills * WORKERS,
        "{name}: {duplicates} duplicate effects, more than the {} deliveries in flight at the kills",
        kills * WORKERS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_inbox_loses_nothing_when_the_receiver_is_killed() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("inbox.sqlite3");
    let inbox = SqliteInbox::open(&path).expect("open the inbox");
    let url = path.to_str().expect("a UTF-8 path");
    crash_run("sqlite", url, inbox, 1, directory.path()).await;
}

/// The PostgreSQL scenario with `replicas` receivers on a fresh database of the test cluster.
async fn postgres_crash_run(name: &str, replicas: usize) {
    let Some(url) = postgres_support::fresh_database().await else {
        return;
    };
    let directory = tempfile::tempdir().expect("a temporary directory");
    let inbox = PostgresInbox::connect(&url)
        .await
        .expect("connect to the inbox");
    crash_run(name, &url, inbox, replicas, directory.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_loses_nothing_when_the_receiver_is_killed() {
    postgres_crash_run("postgres", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_shared_by_two_replicas_loses_nothing_when_one_is_killed() {
    postgres_crash_run("postgres-2-replicas", 2).await;
}
