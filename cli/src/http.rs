//! A lean HTTP/1.1 client: one keep-alive connection per task, no pool, no TLS. A load tool
//! must not be the bottleneck, and every use here (send, forward, replay, bench) talks to one
//! receiver.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::output::Failure;

/// Where requests go: a parsed `http://` URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    address: String,
    host: HeaderValue,
    path: Uri,
    url: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, Failure> {
        let uri: Uri = url.parse().map_err(|error| {
            Failure::usage(format!(
                "{url:?} is not a URL ({error}): expected e.g. http://127.0.0.1:3000/webhooks/propexo"
            ))
        })?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(Failure::usage(format!(
                    "{url}: https is not supported by this command (it speaks plain HTTP/1.1 to \
                     local or internal receivers); use http://, or a TLS-terminating proxy"
                )));
            }
            _ => {
                return Err(Failure::usage(format!(
                    "{url:?}: expected an http:// URL, e.g. http://127.0.0.1:3000/webhooks/propexo"
                )));
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| Failure::usage(format!("{url}: the URL has no host")))?;
        let port = authority.port_u16().unwrap_or(80);
        let address = format!("{}:{port}", authority.host());
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| Failure::usage(format!("{url}: the host is not a valid header")))?;
        let path = uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .parse()
            .map_err(|_| Failure::usage(format!("{url}: the path is not valid")))?;
        Ok(Self {
            address,
            host,
            path,
            url: url.to_owned(),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) latency: Duration,
}

/// One keep-alive connection to a target, reconnected when the server closes it.
pub(crate) struct Connection {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Connection {
    pub(crate) fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            sender: None,
            timeout,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(&self.target.address)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", self.target.address))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("HTTP handshake with {} failed: {error}", self.target.url))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// POSTs `body` with `headers` (plus `host` and `content-type: application/json` unless
    /// given). Retries once on a fresh connection when a kept-alive one turns out closed.
    pub(crate) async fn post(
        &mut self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, String> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.post_inner(headers, body)).await;
        match result {
            Ok(Ok((status, body))) => Ok(Answer {
                status,
                body,
                latency: started.elapsed(),
            }),
            Ok(Err(error)) => {
                self.sender = None;
                Err(error)
            }
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {:?}", self.timeout))
            }
        }
    }

    async fn post_inner(
        &mut self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        for attempt in 0..2 {
            let mut sender = match self.sender.take() {
                Some(sender) if !sender.is_closed() => sender,
                _ => self.connect().await?,
            };
            if sender.ready().await.is_err() {
                continue;
            }
            let request = self.request(headers, body.clone())?;
            match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response
                        .into_body()
                        .collect()
                        .await
                        .map_err(|error| format!("reading the answer failed: {error}"))?
                        .to_bytes();
                    self.sender = Some(sender);
                    return Ok((status, body));
                }
                // A kept-alive connection the server had closed: once more on a new one.
                Err(error)
                    if attempt == 0 && (error.is_canceled() || error.is_incomplete_message()) => {}
                Err(error) => {
                    return Err(format!("request to {} failed: {error}", self.target.url));
                }
            }
        }
        Err(format!("{} keeps closing the connection", self.target.url))
    }

    fn request(&self, headers: &HeaderMap, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.path.clone();
        let map = request.headers_mut();
        map.insert(HOST, self.target.host.clone());
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            if name != HOST && name != CONTENT_TYPE {
                map.append(name.clone(), value.clone());
            }
        }
        if let Some(content_type) = headers.get(CONTENT_TYPE) {
            map.insert(CONTENT_TYPE, content_type.clone());
        }
        Ok(request)
    }
}

/// Parses `Name: value`.
pub(crate) fn header_line(line: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| Failure::usage(format!("header {line:?}: expected `Name: value`")))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Failure::usage(format!("header {line:?}: invalid name")))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| Failure::usage(format!("header {line:?}: invalid value")))?;
    Ok((name, value))
}

/// Headers that belong to a connection, not to a delivery: never copied when re-sending.
pub(crate) fn is_hop_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "content-length"
            | "connection"
            | "transfer-encoding"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-connection"
            | "expect"
    )
}
