//! Errors with exit codes, JSON lines, and progress bars that only a terminal sees.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::fixtures;

/// Why a command did not succeed, and its exit code: 1 for a failed delivery or a signature
/// that did not verify, 2 for a usage error (a bad argument, an unreadable file).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Exit 1, after printing the message (if any) to stderr.
    Failed(String),
    /// Exit 2, after printing the message to stderr.
    Usage(String),
}

impl Failure {
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    pub(crate) fn report(self) -> ExitCode {
        let (message, code) = match self {
            Self::Failed(message) => (message, 1),
            Self::Usage(message) => (message, 2),
        };
        if !message.is_empty() {
            eprintln!("error: {message}");
        }
        ExitCode::from(code)
    }
}

/// Prints one JSON object as one line of stdout.
pub(crate) fn json_line(value: &Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

/// A progress bar on stderr when stderr is a terminal and the output is for people.
pub(crate) fn progress(len: Option<u64>, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = len.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
    let template = if len.is_some() {
        "{bar:40} {pos}/{len} {per_sec} {msg}"
    } else {
        "{spinner} {pos} sent {per_sec} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar
}

pub(crate) fn fixtures_list(json: bool) -> Result<(), Failure> {
    for fixture in fixtures::all() {
        if json {
            json_line(&json!({
                "name": fixture.name,
                "description": fixture.description,
                "bytes": fixture.body.len(),
            }));
        } else {
            outln!("{:<44} {}", fixture.name, fixture.description);
        }
    }
    Ok(())
}

pub(crate) fn fixtures_show(name: &str) -> Result<(), Failure> {
    let fixture = fixtures::find(name).ok_or_else(|| {
        Failure::usage(format!(
            "no fixture named {name:?}: `propexo-webhooks fixtures list` shows their names"
        ))
    })?;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(fixture.body.as_bytes());
    if !fixture.body.ends_with('\n') && stdout_is_terminal() {
        let _ = writeln!(stdout);
    }
    Ok(())
}

fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// `outln!` that does not panic when stdout is closed (`| head`): the output is then unwanted.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use outln;
