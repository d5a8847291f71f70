//! `replay`: re-send captured requests and an inbox's dead letters.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use propexo_webhooks::{
    DeliveryKey, EventType, ObjectType, SIGNATURE_HEADER, Verifier, WebhookEvent,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::capture::Meta;
use crate::cli::ReplayArgs;
use crate::http::{Connection, Target, is_hop_header};
use crate::input;
use crate::output::{Failure, json_line, outln, progress};

/// One delivery to re-send.
#[derive(Debug)]
struct Item {
    key: String,
    source: String,
    body: Bytes,
    signature: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    received_at: SystemTime,
    trigger: Option<String>,
    object: Option<String>,
    /// A capture whose signature did not verify when it was captured.
    unverified: bool,
}

impl Item {
    fn new(
        source: String,
        body: Bytes,
        signature: Option<String>,
        headers: Vec<(String, Vec<u8>)>,
        received_at: SystemTime,
    ) -> Self {
        let event = WebhookEvent::from_slice(&body).ok();
        Self {
            key: DeliveryKey::from_body(&body).to_string(),
            source,
            trigger: event.as_ref().map(|e| e.event_type().as_str().to_owned()),
            object: event
                .as_ref()
                .and_then(|e| e.object())
                .map(|o| o.as_str().to_owned()),
            body,
            signature,
            headers,
            received_at,
            unverified: false,
        }
    }
}

pub(crate) async fn run(args: ReplayArgs) -> Result<(), Failure> {
    let target = Target::parse(&args.url)?;
    let verifier = input::verifier(&args.secret)?;
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let triggers: Vec<EventType> = args
        .trigger
        .iter()
        .map(|t| EventType::parse(&t.to_uppercase()))
        .collect();
    let objects: Vec<ObjectType> = args.object.iter().map(|o| ObjectType::parse(o)).collect();
    if args.concurrency == 0 {
        return Err(Failure::usage("--concurrency must be at least 1"));
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        return Err(Failure::usage(
            "--rate must be a positive number of deliveries a second",
        ));
    }

    let mut items = Vec::new();
    for source in &args.sources {
        items.extend(load(source, args.max_dead_letters).await?);
    }
    let done: HashSet<String> = match &args.checkpoint {
        Some(path) => read_checkpoint(path)?,
        None => HashSet::new(),
    };
    let total = items.len();
    items.retain(|item| {
        (args.include_unverified || !item.unverified)
            && (triggers.is_empty()
                || item
                    .trigger
                    .as_deref()
                    .is_some_and(|t| triggers.iter().any(|f| f.as_str() == t)))
            && (objects.is_empty()
                || item
                    .object
                    .as_deref()
                    .is_some_and(|o| objects.iter().any(|f| f.as_str() == o)))
            && since.is_none_or(|since| item.received_at >= since)
            && until.is_none_or(|until| item.received_at < until)
    });
    let filtered = total - items.len();
    let before = items.len();
    items.retain(|item| !done.contains(&item.key));
    let skipped = before - items.len();
    items.sort_by_key(|item| item.received_at);

    if args.dry_run {
        for item in &items {
            if args.json {
                json_line(&json!({
                    "dry_run": true, "key": item.key, "source": item.source,
                    "trigger": item.trigger, "object": item.object, "bytes": item.body.len(),
                    "received_at": humantime::format_rfc3339_millis(item.received_at).to_string(),
                }));
            } else {
                outln!(
                    "would send {}  {:<24} {:<28} {:>7} B  {}",
                    humantime::format_rfc3339_seconds(item.received_at),
                    item.trigger.as_deref().unwrap_or("(unparsable)"),
                    item.object.as_deref().unwrap_or("-"),
                    item.body.len(),
                    item.source
                );
            }
        }
        summary(args.json, items.len(), 0, 0, filtered, skipped, true);
        return Ok(());
    }

    let checkpoint = match &args.checkpoint {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| {
                    Failure::usage(format!(
                        "cannot open the checkpoint {}: {error}",
                        path.display()
                    ))
                })?,
        )),
        None => None,
    };
    let count = items.len();
    let bar = progress(Some(count as u64), args.json);
    let shared = Arc::new(Shared {
        items: Mutex::new(items.into_iter()),
        verifier,
        checkpoint,
        delivered: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        started: Instant::now(),
        issued: AtomicUsize::new(0),
        rate: args.rate,
        json: args.json,
        bar: bar.clone(),
    });
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.min(count.max(1)) {
        let shared = shared.clone();
        let connection = Connection::new(target.clone(), args.timeout);
        tasks.push(tokio::spawn(worker(shared, connection)));
    }
    for task in tasks {
        let _ = task.await;
    }
    bar.finish_and_clear();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    summary(
        args.json, count, delivered, failed, filtered, skipped, false,
    );
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} of {count} deliveries were not answered 2xx{}",
            if args.checkpoint.is_some() {
                "; run the same command again to retry them"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

struct Shared {
    items: Mutex<std::vec::IntoIter<Item>>,
    verifier: Option<Verifier>,
    checkpoint: Option<Mutex<std::fs::File>>,
    delivered: AtomicUsize,
    failed: AtomicUsize,
    started: Instant,
    issued: AtomicUsize,
    rate: Option<f64>,
    json: bool,
    bar: indicatif::ProgressBar,
}

async fn worker(shared: Arc<Shared>, mut connection: Connection) {
    loop {
        let Some(item) = shared.items.lock().await.next() else {
            return;
        };
        if let Some(rate) = shared.rate {
            let slot = shared.issued.fetch_add(1, Ordering::Relaxed);
            let Some(due) = crate::bench::due(shared.started, slot as u64, rate) else {
                // Beyond representable time at this rate: nothing more will be sent.
                return;
            };
            tokio::time::sleep_until(due.into()).await;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &item.headers {
            if is_hop_header(name) || name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        let signature = match &shared.verifier {
            Some(verifier) => Some(verifier.sign(&item.body)),
            None => item.signature.clone(),
        };
        if let Some(value) = signature.and_then(|s| HeaderValue::from_str(&s).ok()) {
            headers.insert(SIGNATURE_HEADER, value);
        }
        let result = connection.post(&headers, item.body.clone()).await;
        shared.bar.inc(1);
        let (ok, status, latency, error) = match &result {
            Ok(answer) => (
                answer.status.is_success(),
                Some(answer.status.as_u16()),
                Some(answer.latency),
                None,
            ),
            Err(error) => (false, None, None, Some(error.clone())),
        };
        if ok {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(checkpoint) = &shared.checkpoint {
                let mut file = checkpoint.lock().await;
                if let Err(error) = writeln!(file, "{}", item.key).and_then(|()| file.flush()) {
                    eprintln!("warning: cannot write the checkpoint: {error}");
                }
            }
        } else {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        if shared.json {
            json_line(&json!({
                "key": item.key, "source": item.source, "trigger": item.trigger,
                "status": status, "latency_ms": latency.map(|l| l.as_secs_f64() * 1000.0),
                "error": error,
            }));
        } else {
            shared.bar.suspend(|| {
                outln!(
                    "{} {:>4}  {:<24} {}  {}",
                    if ok { "ok  " } else { "FAIL" },
                    status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    item.trigger.as_deref().unwrap_or("(unparsable)"),
                    item.source,
                    error.unwrap_or_default()
                );
            });
        }
    }
}

fn summary(
    json: bool,
    count: usize,
    delivered: usize,
    failed: usize,
    filtered: usize,
    skipped: usize,
    dry_run: bool,
) {
    if json {
        json_line(&json!({
            "summary": true, "dry_run": dry_run, "selected": count, "delivered": delivered,
            "failed": failed, "filtered_out": filtered, "already_in_checkpoint": skipped,
        }));
    } else if dry_run {
        eprintln!(
            "{count} deliveries would be sent ({filtered} filtered out, {skipped} already in the checkpoint)"
        );
    } else {
        eprintln!(
            "{delivered} delivered, {failed} failed, of {count} ({filtered} filtered out, {skipped} already in the checkpoint)"
        );
    }
}

/// `--since` / `--until`: an RFC 3339 time, or a duration ago.
fn parse_time(text: &str) -> Result<SystemTime, Failure> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| Failure::usage(format!("{text:?} is too long ago")));
    }
    Err(Failure::usage(format!(
        "{text:?} is not a time: give an RFC 3339 time (2024-10-01T06:00:00Z) or a duration ago (2h, 3days)"
    )))
}

fn read_checkpoint(path: &Path) -> Result<HashSet<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(error) => Err(Failure::usage(format!(
            "cannot read the checkpoint {}: {error}",
            path.display()
        ))),
    }
}

async fn load(source: &str, max_dead_letters: usize) -> Result<Vec<Item>, Failure> {
    if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        return load_postgres(source, max_dead_letters).await;
    }
    let path = PathBuf::from(source);
    let metadata = std::fs::metadata(&path).map_err(|error| {
        Failure::usage(format!(
            "{source}: {error}; a SOURCE is a capture directory, a SQLite inbox file or a postgres:// URL"
        ))
    })?;
    if metadata.is_dir() {
        load_captures(&path)
    } else {
        load_sqlite(&path, max_dead_letters).await
    }
}

fn load_captures(dir: &Path) -> Result<Vec<Item>, Failure> {
    // One capture, or a directory of them.
    if dir.join("meta.json").is_file() {
        return load_capture(dir).map(|item| vec![item]);
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|error| Failure::usage(format!("cannot read {}: {error}", dir.display())))?;
    let mut items = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.join("meta.json").is_file() {
            items.push(load_capture(&path)?);
        }
    }
    Ok(items)
}

fn load_capture(dir: &Path) -> Result<Item, Failure> {
    let bad = |what: String| Failure::usage(format!("{}: {what}", dir.display()));
    let meta = std::fs::read(dir.join("meta.json")).map_err(|e| bad(format!("meta.json: {e}")))?;
    let meta: Meta = serde_json::from_slice(&meta)
        .map_err(|e| bad(format!("meta.json is not a capture's (format 1): {e}")))?;
    let body = std::fs::read(dir.join("body.bin")).map_err(|e| bad(format!("body.bin: {e}")))?;
    let mut signature = None;
    let mut headers = Vec::new();
    for (name, value) in &meta.headers {
        let Some(bytes) = value.bytes() else { continue };
        if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
            signature = String::from_utf8(bytes).ok();
        } else {
            headers.push((name.clone(), bytes));
        }
    }
    let received_at = UNIX_EPOCH
        .checked_add(Duration::from_millis(meta.received_at_unix_ms))
        .unwrap_or(UNIX_EPOCH);
    let mut item = Item::new(
        dir.display().to_string(),
        Bytes::from(body),
        signature,
        headers,
        received_at,
    );
    item.unverified = meta.verified == Some(false);
    Ok(item)
}

#[cfg(feature = "sqlite")]
async fn load_sqlite(path: &Path, max: usize) -> Result<Vec<Item>, Failure> {
    let inbox = propexo_webhooks::SqliteInbox::open(path).map_err(|error| {
        Failure::usage(format!(
            "{}: not a capture directory, and not a SQLite inbox: {error}",
            path.display()
        ))
    })?;
    dead_letters(&inbox, &format!("sqlite:{}", path.display()), max).await
}

#[cfg(not(feature = "sqlite"))]
async fn load_sqlite(path: &Path, _max: usize) -> Result<Vec<Item>, Failure> {
    Err(Failure::usage(format!(
        "{}: reading a SQLite inbox needs the `sqlite` feature of propexo-webhooks-cli",
        path.display()
    )))
}

#[cfg(feature = "postgres")]
async fn load_postgres(url: &str, max: usize) -> Result<Vec<Item>, Failure> {
    let inbox = propexo_webhooks::PostgresInbox::builder(url)
        .map_err(|error| Failure::usage(format!("the Postgres URL: {error}")))?
        .listen(false)
        .connect()
        .await
        .map_err(|error| Failure::failed(format!("cannot open the Postgres inbox: {error}")))?;
    dead_letters(&inbox, "postgres", max).await
}

#[cfg(not(feature = "postgres"))]
async fn load_postgres(_url: &str, _max: usize) -> Result<Vec<Item>, Failure> {
    Err(Failure::usage(
        "reading a Postgres inbox needs the `postgres` feature of propexo-webhooks-cli",
    ))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn dead_letters(
    inbox: &impl propexo_webhooks::Inbox,
    source: &str,
    max: usize,
) -> Result<Vec<Item>, Failure> {
    let letters = inbox.dead_letters(max).await.map_err(|error| {
        Failure::failed(format!("{source}: cannot read the dead letters: {error}"))
    })?;
    Ok(letters
        .into_iter()
        .map(|letter| {
            let headers = letter
                .delivery
                .headers
                .lines()
                .filter_map(|line| line.split_once(": "))
                .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
                .collect();
            Item::new(
                format!("{source} dead letter {} ({})", letter.key, letter.reason),
                letter.delivery.body,
                Some(letter.delivery.signature),
                headers,
                letter.received_at,
            )
        })
        .collect())
}
