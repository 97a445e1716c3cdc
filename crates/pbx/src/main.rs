//! The `pbx` binary: SIP registrar and B2BUA, ACD queues, RTP relay with
//! recording, CDRs and the HTTP API, in one process.

// The OpenAPI document is one `json!` literal, deeper than the default
// macro recursion limit allows.
#![recursion_limit = "256"]

mod catalogue;
mod cdr_check;
mod check_recordings;
mod cli;
mod config;
mod config_layer;
mod dns;
mod engine;
mod events;
mod http;
mod journal;
mod kpi;
mod live;
mod metrics;
mod open_files;
mod overload;
mod priority;
mod queue_log;
mod registrations;
mod reload;
mod retention;
mod scorecards;
mod secrets;
mod server;
mod sounds;
mod storage;
mod tls;
mod transport;

use std::process::ExitCode;

use clap::Parser;

/// Each SIP message allocates and frees dozens of small buffers; jemalloc
/// serves them with less CPU than glibc's malloc (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command() {
        cli::Command::CheckConfig { file } => {
            ExitCode::from(u8::try_from(cli::check_config(&file)).unwrap_or(1))
        }
        cli::Command::CheckRecordings => {
            ExitCode::from(u8::try_from(cli::check_recordings(&cli)).unwrap_or(1))
        }
        cli::Command::QueueLog {
            since,
            until,
            output,
        } => ExitCode::from(
            u8::try_from(cli::queue_log(&cli, since, until, output.as_deref())).unwrap_or(1),
        ),
        cli::Command::CdrCheck {
            since,
            until,
            repair,
        } => ExitCode::from(u8::try_from(cli::cdr_check(&cli, since, until, repair)).unwrap_or(1)),
        cli::Command::RelayWorker => relay_worker(&cli),
        cli::Command::Run => run(&cli),
    }
}

fn init_logging(cli: &cli::Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only on a terminal, so log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

/// Serves the PBX that started this process as a relay worker, until it
/// closes the link or dies.
fn relay_worker(cli: &cli::Cli) -> ExitCode {
    init_logging(cli);
    // Nearly all of a worker's descriptors are its calls' sockets and
    // recordings.
    open_files::raise_to_hard_limit();
    let link = match std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned() {
        Ok(link) => link,
        Err(error) => {
            tracing::error!(%error, "relay worker has no standard input");
            return ExitCode::FAILURE;
        }
    };
    match media::serve_worker(link) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "relay worker failed");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &cli::Cli) -> ExitCode {
    init_logging(cli);

    let config = match cli::load_config(cli) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime and the relay open any descriptor.
    open_files::raise_for_calls(&config);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.sip.runtime_threads > 0 {
        builder.worker_threads(config.sip.runtime_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let source = match &cli.config {
        Some(path) => reload::ConfigSource::File {
            path: path.clone(),
            overrides: cli.overrides(),
        },
        None => reload::ConfigSource::Embedded {
            overrides: cli.overrides(),
        },
    };
    let workers = server::RelayWorkers {
        log_level: cli.log_level.clone(),
    };
    match runtime.block_on(server::run(config, source, workers)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "PBX failed to start");
            ExitCode::FAILURE
        }
    }
}
