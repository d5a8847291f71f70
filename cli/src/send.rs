//! `send`: POST signed fixtures or files, report each answer.

use bytes::Bytes;
use http::HeaderMap;
use http::header::HeaderValue;
use propexo_webhooks::SIGNATURE_HEADER;
use serde_json::{Value, json};

use crate::cli::SendArgs;
use crate::fixtures::{self, DEFAULT_FIXTURE};
use crate::http::{Connection, Target, header_line};
use crate::input;
use crate::output::{Failure, json_line, outln, progress};

pub(crate) async fn run(args: SendArgs) -> Result<(), Failure> {
    let target = Target::parse(&args.url)?;
    let verifier = if args.no_signature {
        None
    } else {
        Some(input::required_verifier(&args.secret)?)
    };
    let mut extra = HeaderMap::new();
    for line in &args.header {
        let (name, value) = header_line(line)?;
        extra.append(name, value);
    }

    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    if args.all_fixtures {
        bodies.extend(
            fixtures::all()
                .into_iter()
                .map(|f| (f.name, f.body.into_bytes())),
        );
    } else if let Some(path) = &args.body {
        bodies.push((path.display().to_string(), input::read_path(path)?));
    } else if let Some(data) = &args.data {
        bodies.push(("--data".to_owned(), data.clone().into_bytes()));
    } else {
        let names = if args.fixture.is_empty() {
            vec![DEFAULT_FIXTURE.to_owned()]
        } else {
            args.fixture.clone()
        };
        for name in names {
            let fixture = fixtures::find(&name).ok_or_else(|| {
                Failure::usage(format!(
                    "no fixture named {name:?}: `propexo-webhooks fixtures list` shows their names"
                ))
            })?;
            bodies.push((fixture.name, fixture.body.into_bytes()));
        }
    }
    let overrides = args
        .set
        .iter()
        .map(|set| parse_set(set))
        .collect::<Result<Vec<_>, _>>()?;

    let bar = progress((bodies.len() > 1).then_some(bodies.len() as u64), args.json);
    let mut connection = Connection::new(target.clone(), args.timeout);
    let mut failed = 0usize;
    for (name, body) in bodies {
        let body = apply_sets(&name, body, &overrides)?;
        let mut headers = extra.clone();
        if let Some(verifier) = &verifier {
            let mut signature = verifier.sign(&body);
            if args.bad_signature {
                signature = corrupt(&signature);
            }
            if let Ok(value) = HeaderValue::from_str(&signature) {
                headers.insert(SIGNATURE_HEADER, value);
            }
        }
        let result = connection.post(&headers, Bytes::from(body)).await;
        bar.inc(1);
        match result {
            Ok(answer) => {
                let ok = answer.status.is_success();
                failed += usize::from(!ok);
                let text = String::from_utf8_lossy(&answer.body);
                if args.json {
                    json_line(&json!({
                        "body": name,
                        "status": answer.status.as_u16(),
                        "latency_ms": answer.latency.as_secs_f64() * 1000.0,
                        "response": text,
                    }));
                } else {
                    bar.suspend(|| {
                        outln!(
                            "{} {:>4} {:>8.2} ms  {}  {}",
                            if ok { "ok  " } else { "FAIL" },
                            answer.status.as_u16(),
                            answer.latency.as_secs_f64() * 1000.0,
                            name,
                            text.trim()
                        );
                    });
                }
            }
            Err(error) => {
                failed += 1;
                if args.json {
                    json_line(&json!({"body": name, "error": error}));
                } else {
                    bar.suspend(|| outln!("FAIL    -          -     {name}  {error}"));
                }
            }
        }
    }
    bar.finish_and_clear();
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} deliver{} not answered 2xx by {}",
            if failed == 1 { "y was" } else { "ies were" },
            target.url()
        )));
    }
    Ok(())
}

/// A well-formed signature that does not match: the first hex digit changed.
fn corrupt(signature: &str) -> String {
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(first) = chars.first_mut() {
        *first = if *first == '0' { '1' } else { '0' };
    }
    chars.into_iter().collect()
}

fn parse_set(set: &str) -> Result<(Vec<String>, Value), Failure> {
    let (path, value) = set.split_once('=').ok_or_else(|| {
        Failure::usage(format!(
            "--set {set:?}: expected PATH=JSON, e.g. data.diff.new.status='\"approved\"'"
        ))
    })?;
    let value: Value = serde_json::from_str(value).map_err(|error| {
        Failure::usage(format!(
            "--set {set:?}: the value is not JSON ({error}); quote strings as JSON, e.g. {path}='\"approved\"'"
        ))
    })?;
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(Failure::usage(format!(
            "--set {set:?}: empty key in the path"
        )));
    }
    Ok((path, value))
}

/// Applies `--set` overrides; the body is then written compactly (it is no longer the original).
fn apply_sets(
    name: &str,
    body: Vec<u8>,
    sets: &[(Vec<String>, Value)],
) -> Result<Vec<u8>, Failure> {
    if sets.is_empty() {
        return Ok(body);
    }
    let mut root: Value = serde_json::from_slice(&body).map_err(|error| {
        Failure::usage(format!(
            "--set needs a JSON body, and {name} is not JSON: {error}"
        ))
    })?;
    for (path, value) in sets {
        let mut node = &mut root;
        for key in path {
            let Value::Object(map) = node else {
                return Err(Failure::usage(format!(
                    "--set {}: {key:?} is inside a value that is not a JSON object in {name}",
                    path.join(".")
                )));
            };
            node = map.entry(key.clone()).or_insert_with(|| json!({}));
        }
        *node = value.clone();
    }
    serde_json::to_vec(&root).map_err(|error| Failure::failed(error.to_string()))
}
