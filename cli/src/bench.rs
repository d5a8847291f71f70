//! `bench`: distinct signed deliveries, as fast as answered (or at a rate), over keep-alive
//! connections; throughput, latency percentiles and a status histogram.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use propexo_webhooks::{SIGNATURE_HEADER, Verifier};
use serde_json::json;

use crate::cli::BenchArgs;
use crate::http::{Connection, Target};
use crate::input;
use crate::output::{Failure, json_line, outln, progress};

pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// A realistic lease DATA_UPDATE (envelope shape); `{n}` makes each delivery distinct: job id,
/// record id and timestamps.
const TEMPLATE: &str = r#"{"trigger":"DATA_UPDATE","data":{"event":"DATA_UPDATE","job_id":"clbenchjob{n}","root_job_id":"clbenchroot{n}","integration_id":"cly301lrc000009jvbp6vaz7i","job_type":"READ_LEASES","vendor":"ENTRATA","record_id":"clbenchlease{n}","object":"leases","diff":{"new":{"status_normalized":"ACTIVE","status_raw":"Current","last_seen":"2024-10-01T06:00:00.{ms}Z","unit_id":null},"previous":{"status_normalized":"PENDING","status_raw":"Applicant","last_seen":"2024-09-30T06:00:00.{ms}Z","unit_id":"clz8unit0001"}},"context":{"property_id":"clz8prop0001"}},"meta":{"object":"leases","integration_id":"cly301lrc000009jvbp6vaz7i"}}"#;

/// The body of delivery number `n`, distinct for every `n` of one run (and across runs: `run`
/// is the run's start time).
fn body(run: u64, n: u64) -> Bytes {
    let id = format!("{run:x}x{n:08}");
    let ms = format!("{:03}", n % 1000);
    Bytes::from(TEMPLATE.replace("{n}", &id).replace("{ms}", &ms))
}

struct Shared {
    verifier: Verifier,
    run: u64,
    next: AtomicU64,
    count: Option<u64>,
    /// `None`: no time limit (a count, or a duration too long to represent).
    deadline: Option<Instant>,
    started: Instant,
    rate: Option<f64>,
    stop: AtomicBool,
    bar: indicatif::ProgressBar,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

pub(crate) async fn run(args: BenchArgs) -> Result<(), Failure> {
    let target = Target::parse(&args.url)?;
    let verifier = input::required_verifier(&args.secret)?;
    if args.connections == 0 {
        return Err(Failure::usage("--connections must be at least 1"));
    }
    if args
        .rate
        .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
    {
        return Err(Failure::usage(
            "--rate must be a positive number of deliveries a second",
        ));
    }
    if args.count.is_none() && args.duration.is_zero() {
        return Err(Failure::usage("--duration must be more than 0"));
    }
    let started = Instant::now();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let bar = progress(args.count, args.json);
    let shared = Arc::new(Shared {
        verifier,
        run,
        next: AtomicU64::new(0),
        count: args.count,
        deadline: if args.count.is_some() {
            None
        } else {
            started.checked_add(args.duration)
        },
        started,
        rate: args.rate,
        stop: AtomicBool::new(false),
        bar: bar.clone(),
    });
    let mut tasks = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let connection = Connection::new(target.clone(), args.timeout);
        tasks.push(tokio::spawn(connection_loop(shared.clone(), connection)));
    }
    let stopper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                shared.stop.store(true, Ordering::Relaxed);
            }
        })
    };
    let mut tally = Tally::default();
    for task in tasks {
        if let Ok(part) = task.await {
            tally.latencies_us.extend(part.latencies_us);
            for (status, n) in part.statuses {
                *tally.statuses.entry(status).or_default() += n;
            }
            for (error, n) in part.errors {
                *tally.errors.entry(error).or_default() += n;
            }
        }
    }
    stopper.abort();
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    report(&args, &tally, elapsed)
}

async fn connection_loop(shared: Arc<Shared>, mut connection: Connection) -> Tally {
    let mut tally = Tally::default();
    loop {
        if shared.stop.load(Ordering::Relaxed)
            || shared.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.count.is_some_and(|count| n >= count) {
            break;
        }
        if let Some(rate) = shared.rate {
            let Some(due) = due(shared.started, n, rate) else {
                break;
            };
            if shared.deadline.is_some_and(|deadline| due >= deadline) {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let body = body(shared.run, n);
        let mut headers = HeaderMap::with_capacity(1);
        if let Ok(value) = HeaderValue::from_str(&shared.verifier.sign(&body)) {
            headers.insert(SIGNATURE_HEADER, value);
        }
        match connection.post(&headers, body).await {
            Ok(answer) => {
                tally
                    .latencies_us
                    .push(u64::try_from(answer.latency.as_micros()).unwrap_or(u64::MAX));
                *tally.statuses.entry(answer.status.as_u16()).or_default() += 1;
            }
            Err(error) => {
                *tally.errors.entry(error).or_default() += 1;
                // A refused connection fails at once: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        shared.bar.inc(1);
    }
    tally
}

/// When request `n` may start at `rate` a second; `None` when that is beyond representable time.
pub(crate) fn due(started: Instant, n: u64, rate: f64) -> Option<Instant> {
    let offset = Duration::try_from_secs_f64(n as f64 / rate).ok()?;
    started.checked_add(offset)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied().unwrap_or_default() as f64 / 1000.0
}

fn report(args: &BenchArgs, tally: &Tally, elapsed: Duration) -> Result<(), Failure> {
    let mut latencies = tally.latencies_us.clone();
    latencies.sort_unstable();
    let answered = latencies.len() as u64;
    let errors: u64 = tally.errors.values().sum();
    let ok: u64 = tally
        .statuses
        .iter()
        .filter(|(status, _)| (200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let (p50, p90, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default() as f64 / 1000.0,
    );
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64 / 1000.0
    };
    if args.json {
        json_line(&json!({
            "url": args.url,
            "connections": args.connections,
            "seconds": seconds,
            "requests": answered + errors,
            "answered": answered,
            "ok": ok,
            "errors": errors,
            "throughput_per_s": answered as f64 / seconds,
            "latency_ms": {"mean": mean, "p50": p50, "p90": p90, "p99": p99, "max": max},
            "statuses": tally.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "error_kinds": tally.errors,
        }));
    } else {
        outln!(
            "{} connections, {:.2} s, {} requests",
            args.connections,
            seconds,
            answered + errors
        );
        outln!(
            "throughput    {:.1} answers/s ({} answered, {ok} 2xx, {errors} errors)",
            answered as f64 / seconds,
            answered
        );
        outln!(
            "latency (ms)  mean {mean:.3}  p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  max {max:.3}"
        );
        outln!("statuses");
        for (status, n) in &tally.statuses {
            outln!("  {status}  {n}");
        }
        for (error, n) in &tally.errors {
            outln!("  error  {n}  {error}");
        }
    }
    if answered + errors == 0 {
        Err(Failure::failed("no delivery was sent"))
    } else if ok == answered + errors {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{} of {} deliveries were not answered 2xx",
            answered + errors - ok,
            answered + errors
        )))
    }
}
