//! The whole crate at work, with one command and no Propexo account:
//!
//! ```sh
//! cargo run --example quickstart --features axum
//! ```
//!
//! It starts an axum receiver on `POST /webhooks/propexo`, sends itself signed deliveries of
//! every Propexo trigger, plus a tampered one, one signed with the wrong secret, one of a
//! trigger this crate does not know, and one that is not JSON, over real HTTP; prints a table of
//! what happened; and exits (non-zero if any answer was not the expected one). With `--serve`
//! it keeps the receiver running for your own requests.
//!
//! Configuration: `PROPEXO_WEBHOOK_SECRET` (a demo secret otherwise), `BIND` (an address) or
//! `PORT` (default 127.0.0.1:3000; without either and with that port busy, any free port).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use propexo_webhooks::{
    Delivery, Dispatcher, EventType, Field, MalformedDelivery, MemoryIdempotencyStore, RawJson,
    Receiver, Verifier, WebhookEvent, sign,
};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";
const PATH: &str = "/webhooks/propexo";
/// Lets the handlers tell which quickstart delivery they are looking at.
const CASE_HEADER: &str = "x-quickstart-case";

/// One delivery the quickstart sends, and the status it expects back.
struct Case {
    name: &'static str,
    body: String,
    secret: Option<&'static str>,
    tamper: bool,
    expected: StatusCode,
}

fn cases() -> Vec<Case> {
    let fixture = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/events/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap_or_else(|err| panic!("fixture {name}: {err}"))
    };
    let ok = |name, file: &str| Case {
        name,
        body: fixture(file),
        secret: None,
        tamper: false,
        expected: StatusCode::OK,
    };
    vec![
        ok("DATA_NEW (lease)", "data_new.envelope"),
        ok("DATA_UPDATE (lease)", "data_update.envelope"),
        ok("DATA_UPDATE (simplified)", "data_update.simplified"),
        ok("SYNC_COMPLETE", "sync_complete.flat"),
        ok("FIRST_SYNC_COMPLETE", "first_sync_complete.envelope"),
        ok("JOB_FAILURE", "job_failure.flat"),
        ok("JOB_SUCCESS", "job_success.envelope"),
        ok(
            "WRITE_OPERATION_FAILURE",
            "write_operation_failure.envelope",
        ),
        ok("unknown trigger", "unknown_trigger"),
        Case {
            name: "JOB_FAILURE again",
            ..ok("", "job_failure.flat")
        },
        Case {
            name: "tampered body",
            tamper: true,
            expected: StatusCode::UNAUTHORIZED,
            ..ok("", "job_failure.flat")
        },
        Case {
            name: "wrong secret",
            secret: Some("a-secret-that-is-not-ours"),
            expected: StatusCode::UNAUTHORIZED,
            ..ok("", "job_failure.flat")
        },
        Case {
            name: "not JSON (stored)",
            body: "{\"event\": \"JOB_FAILURE\", oops".to_owned(),
            ..ok("", "job_failure.flat")
        },
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_forever = std::env::args().any(|arg| arg == "--serve");
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        println!("PROPEXO_WEBHOOK_SECRET is not set: using the DEMO secret {DEMO_SECRET:?}\n");
        DEMO_SECRET.to_owned()
    });
    let seen = Seen::default();
    let verifier = Verifier::new(&secret)?;
    let app = Router::new().route(
        PATH,
        propexo_webhooks::axum::route(Receiver::new(verifier, dispatcher(&seen))),
    );
    let listener = bind(serve_forever).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("receiver listening on http://{address}{PATH}\n");

    if serve_forever {
        println!("try it:\n  body='{{\"event\":\"JOB_FAILURE\",\"job_id\":\"JOB_1\"}}'");
        println!(
            "  curl -i http://{address}{PATH} -H 'content-type: application/json' \\\n    -H \"propexo-signature: $(printf %s \"$body\" | openssl dgst -sha256 -hmac \"$PROPEXO_WEBHOOK_SECRET\" | cut -d' ' -f2)\" -d \"$body\""
        );
        server.await??;
        return Ok(());
    }

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut all_as_expected = true;
    println!("{:<26} {:>6}  what the handler saw", "delivery", "status");
    println!("{}", "-".repeat(100));
    for case in cases() {
        let signature = sign(case.secret.unwrap_or(&secret), case.body.as_bytes());
        let body = if case.tamper {
            case.body.replace("JOB_ID_002", "JOB_ID_999")
        } else {
            case.body.clone()
        };
        let request = Request::post(format!("http://{address}{PATH}"))
            .header("content-type", "application/json")
            .header("propexo-signature", signature)
            .header(CASE_HEADER, HeaderValue::from_static(case.name))
            .body(Full::new(Bytes::from(body)))?;
        let status = client.request(request).await?.status();
        let saw = seen.take(case.name).unwrap_or_else(|| {
            match status {
                StatusCode::OK => "(a duplicate: acknowledged, handlers not run again)",
                _ => "(rejected before any handler ran)",
            }
            .to_owned()
        });
        let mark = if status == case.expected {
            ""
        } else {
            "  <-- unexpected"
        };
        all_as_expected &= status == case.expected;
        println!("{:<26} {:>6}  {saw}{mark}", case.name, status.as_u16());
    }
    println!(
        "\nA repeated delivery is acknowledged without running its handlers again (idempotency);"
    );
    println!("forged ones never reach a handler. Run with --serve to keep the receiver up.");
    server.abort();
    if all_as_expected {
        Ok(())
    } else {
        Err("some deliveries were not answered as expected".into())
    }
}

/// What the handlers saw, by quickstart case.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, String>>>);

impl Seen {
    fn note(&self, headers: Option<&http::HeaderMap>, line: String) {
        let case = headers
            .and_then(|headers| headers.get(CASE_HEADER))
            .and_then(|value| value.to_str().ok())
            .unwrap_or("(your request)")
            .to_owned();
        if case == "(your request)" {
            println!("handler: {line}");
        }
        if let Ok(mut seen) = self.0.lock() {
            seen.insert(case, line);
        }
    }

    fn take(&self, case: &str) -> Option<String> {
        self.0.lock().ok()?.remove(case)
    }
}

/// One route per known trigger, a fallback for the others, and a place for malformed bodies.
fn dispatcher(seen: &Seen) -> Dispatcher {
    let mut dispatcher = Dispatcher::new().idempotency(MemoryIdempotencyStore::new());
    for trigger in EventType::KNOWN {
        let seen = seen.clone();
        dispatcher = dispatcher.on(trigger.clone(), move |delivery: Delivery| {
            seen.note(delivery.headers(), describe(delivery.event()));
            Ok::<_, Infallible>(())
        });
    }
    let (fallback, malformed) = (seen.clone(), seen.clone());
    dispatcher
        .fallback(move |delivery: Delivery| {
            let line = format!(
                "fallback: {} is not a trigger this version knows; raw JSON kept",
                delivery.event().event_type()
            );
            fallback.note(delivery.headers(), line);
            Ok::<_, Infallible>(())
        })
        .on_malformed(move |delivery: MalformedDelivery| {
            let line = format!(
                "on_malformed: stored {} raw bytes ({})",
                delivery.body().len(),
                delivery.error()
            );
            malformed.note(delivery.headers(), line);
            Ok::<_, Infallible>(())
        })
}

/// One line about an event, the way a handler would look at it.
fn describe(event: &WebhookEvent) -> String {
    let vendor = event.vendor().map(ToString::to_string).unwrap_or_default();
    let object = event.object().map(ToString::to_string).unwrap_or_default();
    let record = event.record_id().unwrap_or("?");
    match event {
        WebhookEvent::DataNew(new) => format!(
            "new {object} {record} ({} fields); full record at {}",
            new.payload.len(),
            event
                .object()
                .and_then(|object| object.record_path(record))
                .unwrap_or_default()
        ),
        WebhookEvent::DataUpdate(update) => {
            let changes: Vec<String> = update
                .diff
                .changes()
                .map(|(field, change)| {
                    format!("{field}: {} -> {}", show(change.previous), show(change.new))
                })
                .collect();
            format!("{object} {record} changed: {}", changes.join(", "))
        }
        WebhookEvent::SyncComplete(sync) | WebhookEvent::FirstSyncComplete(sync) => format!(
            "{} from {vendor}: {} jobs ok, {} failed",
            event.event_type(),
            sync.successful_job_count.unwrap_or_default(),
            sync.failed_job_count.unwrap_or_default()
        ),
        WebhookEvent::JobFailure(job) | WebhookEvent::JobSuccess(job) => format!(
            "{} {} ({}) at {vendor}",
            event.event_type(),
            event.job_id().unwrap_or("?"),
            job.job_type.as_deref().unwrap_or("?")
        ),
        WebhookEvent::WriteOperationFailure(write) => format!(
            "write to {vendor} ended {}: {}",
            write
                .write_status
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            write.errors.join("; ")
        ),
        other => format!("{}", other.event_type()),
    }
}

fn show(side: Field<RawJson<'_>>) -> String {
    match side {
        Field::Value(value) => value.to_string(),
        Field::Null => "null".to_owned(),
        Field::Absent => "-".to_owned(),
    }
}

/// `BIND`, else `127.0.0.1:$PORT`, else 127.0.0.1:3000 — or any free port when that one is
/// taken and no address was asked for (not with `--serve`, where the address matters).
async fn bind(serve_forever: bool) -> std::io::Result<tokio::net::TcpListener> {
    let asked = std::env::var("BIND").ok().or_else(|| {
        std::env::var("PORT")
            .ok()
            .map(|port| format!("127.0.0.1:{port}"))
    });
    let address = asked.clone().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    match tokio::net::TcpListener::bind(&address).await {
        Err(err) if asked.is_none() && !serve_forever => {
            println!("{address} is busy ({err}); using a free port instead");
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
        }
        result => result,
    }
}
