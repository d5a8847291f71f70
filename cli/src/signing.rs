//! `sign` and `verify`.

use propexo_webhooks::{Diagnosis, SIGNATURE_HEADER, diagnose, verify_signature};
use serde_json::json;

use crate::cli::{SignArgs, VerifyArgs};
use crate::input;
use crate::output::{Failure, json_line, outln};

pub(crate) fn sign(args: &SignArgs) -> Result<(), Failure> {
    let verifier = input::required_verifier(&args.secret)?;
    let body = input::body(&args.body)?;
    let signature = verifier.sign(&body);
    if args.header {
        outln!("{SIGNATURE_HEADER}: {signature}");
    } else if let Some(url) = &args.curl {
        let data = match &args.body.file {
            Some(path) if path.as_os_str() != "-" => {
                format!("@{}", shell_quote(&path.display().to_string()))
            }
            _ => {
                let text = std::str::from_utf8(&body).map_err(|_| {
                    Failure::usage("the body is not UTF-8: pass it as a file to get a curl command")
                })?;
                shell_quote(text)
            }
        };
        outln!(
            "curl -sS -X POST {} -H 'content-type: application/json' -H '{SIGNATURE_HEADER}: {signature}' --data-binary {data}",
            shell_quote(url)
        );
    } else {
        outln!("{signature}");
    }
    Ok(())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub(crate) fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    if args.secret.secrets.is_empty() {
        return Err(Failure::usage(
            "no secret: pass --secret SECRET (repeatable) or set PROPEXO_WEBHOOK_SECRET",
        ));
    }
    let body = input::body(&args.body)?;
    // Accept a whole header line, as copied from a log.
    let signature = args.signature.trim();
    let signature = signature
        .split_once(':')
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case(SIGNATURE_HEADER))
        .map_or(signature, |(_, value)| value.trim());

    let matched = args
        .secret
        .secrets
        .iter()
        .position(|secret| verify_signature(secret, &body, signature).is_ok());
    if let Some(index) = matched {
        if args.json {
            json_line(&json!({"valid": true, "secret": index + 1}));
        } else {
            outln!("valid: secret #{} matches", index + 1);
        }
        return Ok(());
    }
    let diagnoses: Vec<Diagnosis> = args
        .secret
        .secrets
        .iter()
        .map(|secret| diagnose(secret, &body, signature))
        .collect();
    if args.json {
        let list: Vec<_> = diagnoses
            .iter()
            .enumerate()
            .map(|(index, diagnosis)| {
                json!({"secret": index + 1, "kind": kind(diagnosis), "diagnosis": diagnosis.to_string()})
            })
            .collect();
        json_line(&json!({"valid": false, "diagnoses": list}));
    } else {
        outln!("invalid: no secret matches");
        for (index, diagnosis) in diagnoses.iter().enumerate() {
            outln!("  secret #{}: {diagnosis}", index + 1);
        }
    }
    Err(Failure::failed(""))
}

fn kind(diagnosis: &Diagnosis) -> &'static str {
    match diagnosis {
        Diagnosis::Valid => "valid",
        Diagnosis::MalformedSignature(_) => "malformed_signature",
        Diagnosis::EmptyBody => "empty_body",
        Diagnosis::Base64Signature => "base64_signature",
        Diagnosis::SecretWhitespace => "secret_whitespace",
        Diagnosis::BodyReserialized { .. } => "body_reserialized",
        Diagnosis::WrongSecret => "wrong_secret",
        _ => "other",
    }
}
