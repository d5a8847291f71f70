//! The command line: every command, its arguments and its `--help` examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const SECRET_ENV: &str = "PROPEXO_WEBHOOK_SECRET";

#[derive(Debug, Parser)]
#[command(
    name = "propexo-webhooks",
    version,
    about = "Sign, verify, inspect, send, capture, replay and load-test Propexo webhooks",
    long_about = "Sign, verify, inspect, send, capture, replay and load-test Propexo webhooks.\n\n\
Propexo POSTs JSON events signed with the header `propexo-signature`: the lowercase hex \
HMAC-SHA256 of the raw body under the webhook's secret. Secrets come from --secret or \
PROPEXO_WEBHOOK_SECRET and are never printed.\n\n\
Exit codes: 0 all good, 1 a delivery failed or a signature did not verify, 2 usage error.",
    after_help = "Examples:\n  \
propexo-webhooks fixtures list\n  \
propexo-webhooks fixtures show data_update.envelope | propexo-webhooks sign\n  \
propexo-webhooks send http://127.0.0.1:3000/webhooks/propexo\n  \
propexo-webhooks capture --dir captures --forward http://127.0.0.1:3000/webhooks/propexo\n  \
propexo-webhooks replay http://127.0.0.1:3000/webhooks/propexo inbox.sqlite --dry-run\n  \
propexo-webhooks bench http://127.0.0.1:3000/webhooks/propexo -c 64 -d 10s"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    Sign(SignArgs),
    Verify(VerifyArgs),
    Inspect(InspectArgs),
    /// Built-in realistic bodies: every trigger in every shape, DATA_NEW and DATA_UPDATE for
    /// every object with a record type.
    #[command(after_help = "Examples:\n  \
propexo-webhooks fixtures list\n  \
propexo-webhooks fixtures list --json | jq -r .name\n  \
propexo-webhooks fixtures show data_new.leases > lease.json")]
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    Send(SendArgs),
    Capture(CaptureArgs),
    Replay(ReplayArgs),
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum FixturesCommand {
    /// List the built-in fixtures: name and description.
    #[command(after_help = "Examples:\n  propexo-webhooks fixtures list\n  \
propexo-webhooks fixtures list --json")]
    List {
        /// One JSON object per line: name, description, bytes.
        #[arg(long)]
        json: bool,
    },
    /// Print a fixture's body, byte for byte (what `send --fixture` sends).
    #[command(
        after_help = "Examples:\n  propexo-webhooks fixtures show data_update.envelope\n  \
propexo-webhooks fixtures show sync_complete.flat | propexo-webhooks inspect"
    )]
    Show {
        /// The fixture's name, from `fixtures list`.
        name: String,
    },
}

/// The secret(s) of the webhook.
#[derive(Debug, Clone, Args)]
pub(crate) struct SecretArgs {
    /// The webhook's secret (repeat it to try several, e.g. while rotating). Never printed.
    #[arg(long = "secret", env = SECRET_ENV, hide_env_values = true, value_name = "SECRET")]
    pub(crate) secrets: Vec<String>,
}

/// Where a body comes from: a file, `-` for stdin, or `--data`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BodyArgs {
    /// The body's file, read as raw bytes; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// The body itself, as an argument.
    #[arg(long, value_name = "BODY", conflicts_with = "file")]
    pub(crate) data: Option<String>,
}

/// Print the `propexo-signature` of a body.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
PROPEXO_WEBHOOK_SECRET=... propexo-webhooks sign body.json\n  \
propexo-webhooks fixtures show data_new.leases | propexo-webhooks sign --header\n  \
propexo-webhooks sign body.json --curl http://127.0.0.1:3000/webhooks/propexo | sh")]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) body: BodyArgs,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Print a whole header line: `propexo-signature: <hex>`.
    #[arg(long, conflicts_with = "curl")]
    pub(crate) header: bool,
    /// Print a ready `curl` command that POSTs the signed body to URL.
    #[arg(long, value_name = "URL")]
    pub(crate) curl: Option<String>,
}

/// Check a signature against one or more secrets; explain a mismatch.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks verify body.json --signature 5d41...\n  \
propexo-webhooks verify body.json --signature \"$SIG\" --secret \"$OLD\" --secret \"$NEW\"\n  \
propexo-webhooks verify - --signature \"$SIG\" --json < body.json\n\n\
On a mismatch it prints the crate's diagnosis for each secret: a body re-serialized before \
verification, whitespace around the secret, a base64 signature, or a wrong secret.")]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) body: BodyArgs,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// The `propexo-signature` value to check (a whole `propexo-signature: ...` line works too).
    #[arg(long, short = 's', value_name = "HEX")]
    pub(crate) signature: String,
    /// One JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Explain a body: shape, trigger, object, ids, diff, unknown values, delivery key, REST path.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks inspect body.json\n  \
propexo-webhooks fixtures show data_update.envelope | propexo-webhooks inspect\n  \
propexo-webhooks inspect --json captures/*/body.bin")]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    pub(crate) body: BodyArgs,
    /// One JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// POST a signed fixture or file to a receiver and report status, latency and response.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks send http://127.0.0.1:3000/webhooks/propexo\n  \
propexo-webhooks send URL --fixture data_new.leases\n  \
propexo-webhooks send URL --set data.diff.new.status_normalized='\"ACTIVE\"'\n  \
propexo-webhooks send URL --body captured.json -H 'x-request-id: 42'\n  \
propexo-webhooks send URL --all-fixtures --json\n  \
propexo-webhooks send URL --bad-signature   # expect 401, exit 1\n\n\
Without --fixture or --body it sends a lease DATA_UPDATE (fixture data_update.envelope). \
Exit status 0 only if every answer was 2xx. Only http:// URLs (no TLS in this build).")]
pub(crate) struct SendArgs {
    /// The receiver, e.g. http://127.0.0.1:3000/webhooks/propexo.
    pub(crate) url: String,
    /// A built-in fixture to send (repeatable).
    #[arg(long, short = 'f', value_name = "NAME")]
    pub(crate) fixture: Vec<String>,
    /// Send every built-in fixture.
    #[arg(long, conflicts_with_all = ["fixture", "body", "data"])]
    pub(crate) all_fixtures: bool,
    /// Send this file's bytes (`-`: stdin).
    #[arg(long, short = 'b', value_name = "FILE", conflicts_with = "fixture")]
    pub(crate) body: Option<PathBuf>,
    /// Send this body, given as an argument.
    #[arg(long, value_name = "BODY", conflicts_with_all = ["fixture", "body"])]
    pub(crate) data: Option<String>,
    /// Override a JSON value: PATH=JSON, PATH dot-separated (repeatable).
    #[arg(long, value_name = "PATH=JSON")]
    pub(crate) set: Vec<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    pub(crate) header: Vec<String>,
    /// Send a well-formed but wrong signature.
    #[arg(long, conflicts_with = "no_signature")]
    pub(crate) bad_signature: bool,
    /// Send no `propexo-signature` header at all (no secret needed).
    #[arg(long)]
    pub(crate) no_signature: bool,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Give up on an answer after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// One JSON object per delivery on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Receive webhooks locally and store each request exactly as received.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks capture --dir captures\n  \
propexo-webhooks capture --listen 0.0.0.0:8080 --dir captures --secret \"$SECRET\"\n  \
propexo-webhooks capture --dir captures --forward http://127.0.0.1:3000/webhooks/propexo\n\n\
Format: one directory per request under --dir, named <unix-ms>-<sequence>, holding body.bin \
(the raw body, byte for byte) and meta.json: {\"format\": 1, \"received_at\": RFC 3339, \
\"received_at_unix_ms\", \"method\", \"path\", \"peer\", \"headers\": [[name, value], ...] \
(a value that is not UTF-8 is {\"hex\": ...}), \"key\": the delivery key, \"verified\": \
true/false/null (null: no secret given), \"forward_status\"}. A directory appears whole \
(written aside, then renamed). `replay` reads it.\n\n\
It answers 200, or 401 when a secret is given and the signature does not verify, or the \
forward target's own answer with --forward. Stops on Ctrl-C or after --count requests.")]
pub(crate) struct CaptureArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub(crate) listen: String,
    /// Directory to store the requests in (created if missing).
    #[arg(long, default_value = "propexo-captures")]
    pub(crate) dir: PathBuf,
    /// Verify each request first (answer 401 to a bad signature; it is still stored, marked).
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Forward each request to this URL and answer with its answer.
    #[arg(long, value_name = "URL")]
    pub(crate) forward: Option<String>,
    /// Stop after this many requests.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// One JSON object per line on stdout: `{"listening": URL}`, then one per request.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Re-send captured requests and the dead letters of a durable inbox.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks replay http://127.0.0.1:3000/webhooks/propexo captures\n  \
propexo-webhooks replay URL inbox.sqlite --dry-run\n  \
propexo-webhooks replay URL postgres://app@db/app --trigger DATA_UPDATE --object leases\n  \
propexo-webhooks replay URL captures --since 2024-10-01T00:00:00Z --until 2h -c 4 --rate 20\n  \
propexo-webhooks replay URL inbox.sqlite --checkpoint replay.done   # run again to resume\n\n\
SOURCE: a capture directory (or one capture in it), a SQLite inbox file, or a postgres:// \
URL. Bodies are re-sent byte for byte with their original signature, or signed again when \
a secret is given; captures that failed verification are skipped unless \
--include-unverified. Dead letters stay in the inbox: replay only reads it. Deliveries are \
sent oldest first. The checkpoint file gets the delivery key of each one answered 2xx, and \
keys in it are skipped. --since/--until take an RFC 3339 time or a duration ago (`2h`).")]
pub(crate) struct ReplayArgs {
    /// The receiver to re-send to.
    pub(crate) url: String,
    /// Capture directories, SQLite inbox files, postgres:// URLs.
    #[arg(required = true, value_name = "SOURCE")]
    pub(crate) sources: Vec<String>,
    /// Only these triggers (repeatable), e.g. DATA_UPDATE.
    #[arg(long)]
    pub(crate) trigger: Vec<String>,
    /// Only these object types (repeatable), e.g. leases.
    #[arg(long)]
    pub(crate) object: Vec<String>,
    /// Only deliveries received at or after this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,
    /// Only deliveries received before this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,
    /// List what would be sent; send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Deliveries in flight at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub(crate) concurrency: usize,
    /// At most this many deliveries a second.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Keys of delivered deliveries go here, and are skipped when it is read back.
    #[arg(long, value_name = "FILE")]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Also re-send captures whose signature did not verify when captured (skipped otherwise).
    #[arg(long)]
    pub(crate) include_unverified: bool,
    /// At most this many dead letters read from each inbox.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) max_dead_letters: usize,
    /// Sign again with this secret instead of re-sending the original signature.
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Give up on an answer after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// One JSON object per delivery on stdout, then a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Load a receiver with distinct signed deliveries; print throughput, latency, statuses.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
propexo-webhooks bench http://127.0.0.1:3000/webhooks/propexo -c 64 -d 10s\n  \
propexo-webhooks bench URL -c 8 -n 10000 --rate 500\n  \
propexo-webhooks bench URL -c 64 -d 30s --json\n\n\
Each delivery is a realistic lease DATA_UPDATE with its own job id, record id and \
timestamp, signed: de-duplication does not short-circuit any of them. Each connection \
sends its next request when the answer arrives (keep-alive, HTTP/1.1).")]
pub(crate) struct BenchArgs {
    /// The receiver.
    pub(crate) url: String,
    /// Connections, each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 16)]
    pub(crate) connections: usize,
    /// Send this many deliveries (default: run for --duration).
    #[arg(long, short = 'n', conflicts_with = "duration")]
    pub(crate) count: Option<u64>,
    /// Run this long.
    #[arg(long, short = 'd', default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) duration: std::time::Duration,
    /// At most this many deliveries a second (default: as fast as answered).
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Client threads (default: the number of CPUs, at most 4).
    #[arg(long, short = 't')]
    pub(crate) threads: Option<usize>,
    #[command(flatten)]
    pub(crate) secret: SecretArgs,
    /// Give up on an answer after this long (counted as an error).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// The report as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}
