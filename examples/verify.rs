//! Signs a Propexo delivery the way Propexo does, verifies it, and shows what failing looks like.
//!
//! ```sh
//! cargo run --example verify
//! PROPEXO_WEBHOOK_SECRET=your-webhook-secret cargo run --example verify
//! ```

use propexo_webhooks::{Error, Verifier, sign};

/// Used when `PROPEXO_WEBHOOK_SECRET` is not set. A demo value: never use it in production.
const DEMO_SECRET: &str = "demo-secret-not-for-production";

/// A SYNC_COMPLETE delivery, exactly as Propexo documents it.
const BODY: &str = r#"{"event":"SYNC_COMPLETE","failed_job_count":0,"integration_id":"INTEGRATION_ID_003","is_sync_finished":true,"job_schedule_id":"JOB_SCHEDULE_ID_001","successful_job_count":49,"vendor":"YARDI"}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("PROPEXO_WEBHOOK_SECRET").unwrap_or_else(|_| {
        println!("PROPEXO_WEBHOOK_SECRET is not set: using the demo secret {DEMO_SECRET:?}\n");
        DEMO_SECRET.to_owned()
    });
    let verifier = Verifier::new(&secret)?;
    let body = BODY.as_bytes();

    // What Propexo puts in the `propexo-signature` header.
    let signature = sign(&secret, body);
    println!("body:      {BODY}");
    println!("signature: {signature}\n");

    report("authentic delivery", verifier.verify(body, &signature));

    let tampered = BODY.replace(r#""failed_job_count":0"#, r#""failed_job_count":1"#);
    report(
        "tampered body",
        verifier.verify(tampered.as_bytes(), &signature),
    );

    let forged = sign("a-secret-that-is-not-ours", body);
    report("signed with a wrong secret", verifier.verify(body, &forged));

    report(
        "truncated signature header",
        verifier.verify(body, &signature[..40]),
    );

    // The classic bug: a framework parses the JSON and the handler verifies a re-encoding.
    let value: serde_json::Value = serde_json::from_str(BODY)?;
    let reserialized = serde_json::to_vec_pretty(&value)?;
    let result = verifier.verify(&reserialized, &signature);
    report("re-serialized body", result);
    println!(
        "\ndiagnosis for the re-serialized body (for logs, never for the response):\n  {}",
        verifier.diagnose(&reserialized, &signature)
    );
    Ok(())
}

fn report(case: &str, result: Result<propexo_webhooks::Verified, Error>) {
    match result {
        Ok(verified) => println!("{case:<28} -> accepted (secret #{})", verified.index()),
        Err(err) => println!("{case:<28} -> rejected: {err}"),
    }
}
