//! `propexo-webhooks`: sign, verify, inspect, send, capture, replay and load-test Propexo
//! webhooks, with the `propexo-webhooks` crate doing every Propexo-specific step.

#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod bench;
mod capture;
mod cli;
mod fixtures;
mod http;
mod input;
mod inspect;
mod output;
mod replay;
mod send;
mod signing;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, FixturesCommand};
use crate::output::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sign(args) => signing::sign(&args),
        Command::Verify(args) => signing::verify(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Fixtures { command } => match command {
            FixturesCommand::List { json } => output::fixtures_list(json),
            FixturesCommand::Show { name } => output::fixtures_show(&name),
        },
        Command::Send(args) => runtime(1).and_then(|rt| rt.block_on(send::run(args))),
        Command::Capture(args) => runtime(1).and_then(|rt| rt.block_on(capture::run(args))),
        Command::Replay(args) => runtime(1).and_then(|rt| rt.block_on(replay::run(args))),
        Command::Bench(args) => {
            let threads = args.threads.unwrap_or_else(bench::default_threads);
            runtime(threads).and_then(|rt| rt.block_on(bench::run(args)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Failure> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder
        .enable_all()
        .build()
        .map_err(|error| Failure::failed(format!("cannot start the async runtime: {error}")))
}
