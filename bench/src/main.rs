//! `loadgen`: the load generator, the bare relay and the benchmarks of chat-server
//! (docs/benchmarks.md, scripts/bench.sh).
//!
//! The reusable parts (server processes, clients, the delivery ledger, the relay, the scenarios)
//! live in the `chat_loadgen` library; this file is the command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

use chat_loadgen::{bench, relay};
// Imported at the crate root so that binary-side modules can say `crate::client::...`.
#[allow(unused_imports)]
use chat_loadgen::{client, ledger, server};

mod chaos;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator, bare relay and benchmarks for chat-server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the benchmark scenarios against fresh server processes and writes the report.
    Bench(Box<bench::BenchArgs>),
    /// Serves the bare relay (no auth, storage or Redis) until Ctrl-C.
    Relay(relay::RelayArgs),
    /// Runs the fault scenarios (process kills, service outages) and checks exactly-once delivery.
    Chaos(chaos::ChaosArgs),
    /// Holds many connections with steady traffic on one process; checks loss and memory.
    Soak(chaos::SoakArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => bench::run(*args).await,
        Command::Relay(args) => relay::run_standalone(args).await,
        Command::Chaos(args) => chaos::chaos(args).await,
        Command::Soak(args) => chaos::soak(args).await,
    }
}

/// Logs go to stderr (stdout stays free for machine-readable output), `RUST_LOG` or info.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
