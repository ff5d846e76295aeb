//! The command line. `serve` (the default) runs the bridge; the other subcommands are
//! tools for operators. `anyhow` lives here, at the top, and nowhere else.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "webhook-sqs-bridge", version, about, long_about = None)]
struct Cli {
    /// A TOML file with settings (keys as the BRIDGE_* variables, lower case, without
    /// the prefix). Environment variables override it.
    #[arg(long, global = true, env = "BRIDGE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bridge (the default).
    ///
    /// Example: BRIDGE_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo
    /// BRIDGE_EVENT_SETUP_ID=42 BRIDGE_API_KEYS=k1 webhook-sqs-bridge serve
    Serve,
    /// Print the X-Payload-Signature value (HMAC-SHA256, hex) for a body.
    ///
    /// Example: webhook-sqs-bridge sign --secret "$SECRET" --file event.json
    Sign {
        /// The shared secret (or set BRIDGE_SIGN_SECRET to keep it out of the process list).
        #[arg(long, env = "BRIDGE_SIGN_SECRET", hide_env_values = true)]
        secret: String,
        /// The body to sign; standard input when absent.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs the command line and turns failures into an exit code: 2 for configuration
/// errors, 1 for anything else.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::Sign { secret, file } => match sign(&secret, file) {
            Ok(signature) => {
                println!("{signature}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(config_file: Option<&std::path::Path>) -> ExitCode {
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(config.log_format);
    match run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the bridge stopped with an error");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        if let Some(id) = &config.event_setup_id {
            tracing::info!(
                group = crate::event::MessageGroupId::for_event_setup(id).as_str(),
                "events without their own MessageGroupId go to this group"
            );
        } else {
            tracing::warn!(
                "BRIDGE_EVENT_SETUP_ID is not set: every event must carry its own MessageGroupId; events without one get 400"
            );
        }
        let app = Application::build(config).await?;
        tracing::info!(
            listen = %config.listen, port = app.port(), path = config.path, dedup = config.dedup.as_str(),
            queue_url = config.queue_url, version = env!("CARGO_PKG_VERSION"), "listening"
        );
        app.report_readiness();
        app.run_until_stopped().await.context("serving HTTP")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn sign(secret: &str, file: Option<PathBuf>) -> anyhow::Result<String> {
    let body = match file {
        Some(path) => {
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("reading standard input")?;
            body
        }
    };
    Ok(crate::auth::sign(secret.as_bytes(), &body))
}
