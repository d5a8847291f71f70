//! `replay` of a PostgreSQL inbox's dead letters: a throw-away cluster (the library's test
//! harness), or the database in `PROPEXO_TEST_DATABASE_URL`; `SKIPPED:` where there is neither.

use std::convert::Infallible;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use propexo_webhooks::{
    Delivery, Dispatcher, Inbox, PostgresInbox, Receiver, Retry, VerifiedBody, Verifier, sign,
};
use serde_json::Value;

#[path = "../../tests/support/postgres.rs"]
mod postgres_support;

const SECRET: &str = "cli-test-secret-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_propexo-webhooks");

fn fixture(name: &str) -> Vec<u8> {
    let output = Command::new(BIN)
        .args(["fixtures", "show", name])
        .output()
        .unwrap();
    assert!(output.status.success(), "{name}");
    output.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_postgres_inbox_reruns_its_dead_letters() {
    let Some(url) = postgres_support::fresh_database().await else {
        return;
    };
    let names = ["data_update.leases", "write_operation_failure.envelope"];
    let verifier = Verifier::new(SECRET).unwrap();
    let inbox = PostgresInbox::connect(&url).await.unwrap();
    for name in names {
        let body = fixture(name);
        let signature = sign(SECRET, &body);
        let delivery = VerifiedBody::verify_signature(&verifier, body, &signature).unwrap();
        inbox.store(&delivery).await.unwrap();
    }
    for leased in inbox.claim(10, Duration::from_secs(60)).await.unwrap() {
        let dead = Retry::Dead {
            reason: "handler failed".into(),
        };
        assert!(inbox.fail(&leased.lease, dead).await.unwrap());
    }
    assert_eq!(inbox.stats().await.unwrap().dead, 2);

    let handled = Arc::new(AtomicU64::new(0));
    let bodies = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let (count, kept) = (handled.clone(), bodies.clone());
    let dispatcher = Dispatcher::new().fallback(move |delivery: Delivery| {
        count.fetch_add(1, Ordering::SeqCst);
        kept.lock().unwrap().push(delivery.body().clone());
        Ok::<_, Infallible>(())
    });
    let receiver = Receiver::new(verifier, dispatcher);
    let app = axum::Router::new().route("/hook", propexo_webhooks::axum::route(receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut command = Command::new(BIN);
    command
        .args(["replay", &target, &url, "--json"])
        .env_remove("PROPEXO_WEBHOOK_SECRET");
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["delivered"], 2, "{summary}");
    assert_eq!(handled.load(Ordering::SeqCst), 2);
    let bodies = bodies.lock().unwrap().clone();
    for name in names {
        assert!(
            bodies
                .iter()
                .any(|body| body.as_ref() == fixture(name).as_slice()),
            "{name}"
        );
    }
}
