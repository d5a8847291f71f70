//! `capture`: a local receiver that stores each request exactly as received, and the format
//! `replay` reads back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use propexo_webhooks::{DeliveryKey, Verifier};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify};

use crate::cli::CaptureArgs;
use crate::http::{Connection, Target, is_hop_header};
use crate::input;
use crate::output::{Failure, json_line};

/// The largest body stored: Propexo's bodies are far smaller.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// One header as stored: `[name, value]`, or `[name, {"hex": ...}]` for a value that is not
/// UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum HeaderText {
    Text(String),
    Hex { hex: String },
}

/// `meta.json` of one capture.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) format: u32,
    pub(crate) received_at: String,
    pub(crate) received_at_unix_ms: u64,
    pub(crate) method: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) peer: Option<String>,
    pub(crate) headers: Vec<(String, HeaderText)>,
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) verified: Option<bool>,
    #[serde(default)]
    pub(crate) forward_status: Option<u16>,
}

impl HeaderText {
    pub(crate) fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Self::Text(text) => Some(text.clone().into_bytes()),
            Self::Hex { hex } => decode_hex(hex),
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

struct State {
    dir: PathBuf,
    verifier: Option<Verifier>,
    forward: Option<Mutex<Vec<Connection>>>,
    forward_target: Option<Target>,
    sequence: AtomicU64,
    captured: AtomicU64,
    count: Option<u64>,
    done: Notify,
    json: bool,
}

pub(crate) async fn run(args: CaptureArgs) -> Result<(), Failure> {
    let verifier = input::verifier(&args.secret)?;
    let forward_target = args.forward.as_deref().map(Target::parse).transpose()?;
    std::fs::create_dir_all(&args.dir).map_err(|error| {
        Failure::usage(format!("cannot create {}: {error}", args.dir.display()))
    })?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|error| Failure::usage(format!("cannot listen on {}: {error}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|error| Failure::failed(error.to_string()))?;
    let url = format!("http://{address}/");
    if args.json {
        json_line(&json!({"listening": url, "dir": args.dir.display().to_string()}));
    } else {
        eprintln!(
            "capturing on {url} (any path) into {}{}{}; Ctrl-C stops",
            args.dir.display(),
            if verifier.is_some() {
                ", verifying"
            } else {
                ""
            },
            forward_target
                .as_ref()
                .map(|t| format!(", forwarding to {}", t.url()))
                .unwrap_or_default()
        );
    }
    let state = Arc::new(State {
        dir: args.dir.clone(),
        verifier,
        forward: forward_target.as_ref().map(|_| Mutex::new(Vec::new())),
        forward_target,
        sequence: AtomicU64::new(0),
        captured: AtomicU64::new(0),
        count: args.count,
        done: Notify::new(),
        json: args.json,
    });
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&state, peer, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            () = state.done.notified() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Let the last answer go out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if !args.json {
        eprintln!(
            "captured {} request(s) in {}",
            state.captured.load(Ordering::Relaxed),
            args.dir.display()
        );
    }
    Ok(())
}

async fn handle(
    state: &State,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let received = SystemTime::now();
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return respond(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}"),
            );
        }
    };
    let verified = state
        .verifier
        .as_ref()
        .map(|verifier| verifier.verify_headers(&parts.headers, &body).is_ok());
    let mut meta = Meta {
        format: 1,
        received_at: humantime::format_rfc3339_millis(received).to_string(),
        received_at_unix_ms: unix_ms(received),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string),
        peer: Some(peer.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let text = match std::str::from_utf8(value.as_bytes()) {
                    Ok(text) => HeaderText::Text(text.to_owned()),
                    Err(_) => HeaderText::Hex {
                        hex: value
                            .as_bytes()
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect(),
                    },
                };
                (name.as_str().to_owned(), text)
            })
            .collect(),
        key: DeliveryKey::from_body(&body).to_string(),
        verified,
        forward_status: None,
    };

    let mut answer = if verified == Some(false) {
        respond(
            StatusCode::UNAUTHORIZED,
            "signature does not verify".to_owned(),
        )
    } else {
        respond(StatusCode::OK, "captured".to_owned())
    };
    if verified != Some(false)
        && let (Some(pool), Some(target)) = (&state.forward, &state.forward_target)
    {
        let connection = pool.lock().await.pop();
        let mut connection =
            connection.unwrap_or_else(|| Connection::new(target.clone(), Duration::from_secs(30)));
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if !is_hop_header(name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
        answer = match connection.post(&headers, body.clone()).await {
            Ok(forwarded) => {
                meta.forward_status = Some(forwarded.status.as_u16());
                let mut response = Response::new(Full::new(forwarded.body));
                *response.status_mut() = forwarded.status;
                response
            }
            Err(error) => respond(
                StatusCode::BAD_GATEWAY,
                format!("forwarding failed: {error}"),
            ),
        };
        pool.lock().await.push(connection);
    }

    let sequence = state.sequence.fetch_add(1, Ordering::Relaxed);
    let name = format!("{:013}-{sequence:06}", meta.received_at_unix_ms);
    match store(&state.dir, &name, &body, &meta).await {
        Ok(path) => {
            if state.json {
                json_line(&json!({
                    "captured": path.display().to_string(),
                    "key": meta.key,
                    "bytes": body.len(),
                    "verified": meta.verified,
                    "forward_status": meta.forward_status,
                }));
            } else {
                eprintln!(
                    "{} {} {} bytes -> {}",
                    meta.received_at,
                    meta.path,
                    body.len(),
                    path.display()
                );
            }
        }
        Err(error) => {
            eprintln!("error: cannot store the request: {error}");
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "cannot store".to_owned());
        }
    }
    let captured = state.captured.fetch_add(1, Ordering::Relaxed) + 1;
    if state.count.is_some_and(|count| captured >= count) {
        state.done.notify_one();
    }
    answer
}

/// Writes the capture aside, then renames it into place: `replay` never sees half of one.
async fn store(dir: &Path, name: &str, body: &[u8], meta: &Meta) -> std::io::Result<PathBuf> {
    let partial = dir.join(format!(".partial-{name}"));
    tokio::fs::create_dir_all(&partial).await?;
    tokio::fs::write(partial.join("body.bin"), body).await?;
    let meta = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    tokio::fs::write(partial.join("meta.json"), meta).await?;
    let path = dir.join(name);
    tokio::fs::rename(&partial, &path).await?;
    Ok(path)
}

fn respond(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response
}

pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |duration| {
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
    })
}
