//! Bodies as raw bytes (a file, stdin or an argument) and secrets.

use std::io::Read;
use std::path::Path;

use propexo_webhooks::{Secret, Verifier};

use crate::cli::{BodyArgs, SecretArgs};
use crate::output::Failure;

/// The body's bytes, exactly as in the file, on stdin or in `--data`.
pub(crate) fn body(args: &BodyArgs) -> Result<Vec<u8>, Failure> {
    if let Some(data) = &args.data {
        return Ok(data.clone().into_bytes());
    }
    match &args.file {
        Some(path) => read_path(path),
        None => read_stdin(),
    }
}

/// A file's bytes, or stdin's for `-`.
pub(crate) fn read_path(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        return read_stdin();
    }
    std::fs::read(path)
        .map_err(|error| Failure::usage(format!("cannot read {}: {error}", path.display())))
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut body)
        .map_err(|error| Failure::usage(format!("cannot read the body from stdin: {error}")))?;
    Ok(body)
}

/// A verifier of every secret given, labelled by position; `None` when none was given.
pub(crate) fn verifier(args: &SecretArgs) -> Result<Option<Verifier>, Failure> {
    if args.secrets.is_empty() {
        return Ok(None);
    }
    let secrets = args
        .secrets
        .iter()
        .enumerate()
        .map(|(index, secret)| {
            Secret::new(secret)
                .map(|secret| secret.with_label(format!("secret #{}", index + 1)))
                .map_err(|error| Failure::usage(format!("secret #{}: {error}", index + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Verifier::from_secrets(secrets)
        .map(Some)
        .map_err(|error| Failure::usage(error.to_string()))
}

/// Like [`verifier`], but a secret is required.
pub(crate) fn required_verifier(args: &SecretArgs) -> Result<Verifier, Failure> {
    verifier(args)?.ok_or_else(|| {
        Failure::usage(
            "no secret: pass --secret SECRET or set PROPEXO_WEBHOOK_SECRET \
             (the webhook's secret, shown in Propexo's dashboard)",
        )
    })
}
