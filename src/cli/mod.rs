//! The command line. `serve` (the default) runs the bridge; the other subcommands are
//! tools for operators. `anyhow` lives here, at the top, and nowhere else.

mod check;
mod health;
mod send;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::startup::{Application, StartupError};
use send::{Credential, SampleEvent, Sender, sample_event};

// No `Debug`: the arguments may hold a secret or an API key.
#[derive(Parser)]
#[command(name = "webhook-sqs-bridge", version, about, long_about = None)]
struct Cli {
    /// A TOML file with settings (keys as the BRIDGE_* variables, lower case, without
    /// the prefix). Environment variables override it.
    #[arg(long, global = true, env = "BRIDGE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
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
    /// Post realistic, signed sample events to a bridge and print its answers.
    ///
    /// Examples:
    ///   webhook-sqs-bridge send-test-event --url http://127.0.0.1:8080/webhook --secret "$SECRET"
    ///   webhook-sqs-bridge send-test-event --url https://bridge.example.com/webhook --api-key "$KEY" --event bold --count 500
    #[command(verbatim_doc_comment)]
    SendTestEvent {
        /// The webhook URL (http or https; https uses the system's trusted certificates).
        #[arg(long)]
        url: String,
        /// Sign each body with this shared secret (HMAC-SHA256, hex).
        #[arg(
            long,
            env = "BRIDGE_SIGN_SECRET",
            hide_env_values = true,
            conflicts_with = "api_key",
            required_unless_present = "api_key"
        )]
        secret: Option<String>,
        /// Send this API key instead.
        #[arg(long, env = "BRIDGE_TEST_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Which event shape to send.
        #[arg(long, value_enum, default_value = "workn")]
        event: SampleEvent,
        /// How many distinct events to send (one after another), with progress.
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
    /// Load the configuration as `serve` would, check the queue (reachable, FIFO, dedup
    /// setting, permission to send), print a report; exit 1 on problems.
    ///
    /// Example: BRIDGE_QUEUE_URL=... BRIDGE_API_KEYS=... AWS_PROFILE=prod webhook-sqs-bridge check-config
    CheckConfig,
    /// Ask the bridge this configuration describes whether it serves (`/healthz`;
    /// `/readyz` with --ready): exit 0 if it answers 200, else 1. For container health
    /// checks: it reads only BRIDGE_LISTEN (a wildcard address is asked on loopback) and
    /// whether BRIDGE_TLS_CERT is set, and the image needs no curl.
    ///
    /// Example: webhook-sqs-bridge healthcheck --timeout-ms 2000
    Healthcheck {
        /// Ask `/readyz` (the queue answers) instead of `/healthz` (the process serves).
        #[arg(long)]
        ready: bool,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 2000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Look at a spool directory (BRIDGE_SPOOL_DIR), a running bridge's or one a stopped
    /// process left: events waiting, bytes, the oldest one's age, per part and per group.
    ///
    /// Example: webhook-sqs-bridge spool status --dir /var/spool/bridge
    Spool {
        #[command(subcommand)]
        command: SpoolCommand,
    },
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Print what the spool holds; changes nothing and takes no lock.
    Status {
        /// The spool directory.
        #[arg(long, env = "BRIDGE_SPOOL_DIR", value_name = "DIR")]
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line and turns failures into an exit code: 2 for configuration
/// errors, 1 for anything else.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config.as_deref()),
        Command::SendTestEvent {
            url,
            secret,
            api_key,
            event,
            count,
        } => {
            let credential = match (secret, api_key) {
                (Some(secret), _) => Credential::Secret(secret.into()),
                (None, Some(key)) => Credential::ApiKey(key.into()),
                (None, None) => unreachable!("clap requires one"),
            };
            block_on(send_test_events(url, credential, event, count)).unwrap_or_else(|code| code)
        }
        Command::Healthcheck { ready, timeout_ms } => {
            // Exit 1 here too: Docker reserves a health check's exit code 2.
            let listener = match Config::listener(cli.config.as_deref()) {
                Ok(listener) => listener,
                Err(e) => {
                    println!("unhealthy: configuration error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let timeout = std::time::Duration::from_millis(timeout_ms);
            let checked =
                block_on(async { Ok(health::healthcheck(listener, ready, timeout).await) });
            match checked {
                Ok(Ok(url)) => {
                    println!("healthy: {url} answered 200");
                    ExitCode::SUCCESS
                }
                Ok(Err(e)) => {
                    println!("unhealthy: {e}");
                    ExitCode::FAILURE
                }
                Err(code) => code,
            }
        }
        Command::CheckConfig => {
            // Unusable TLS files are a configuration error here too, as for `serve`.
            let loaded = Config::load(cli.config.as_deref())
                .and_then(|config| crate::startup::load_tls(&config).map(|_| config));
            let config = match loaded {
                Ok(config) => config,
                Err(e) => {
                    println!("configuration\n  FAIL  {e}");
                    return ExitCode::from(2);
                }
            };
            let report = block_on(async { Ok(check::check_config(&config).await) });
            match report {
                Ok(report) => {
                    print!("{}", report.text);
                    if report.problems == 0 {
                        println!("no problems found");
                        ExitCode::SUCCESS
                    } else {
                        println!("{} problem(s) found", report.problems);
                        ExitCode::FAILURE
                    }
                }
                Err(code) => code,
            }
        }
        Command::Spool {
            command: SpoolCommand::Status { dir, json },
        } => match crate::spool::status::read(&dir) {
            Ok(status) if json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Ok(status) => {
                print!("{status}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: can't read the spool in {}: {e}", dir.display());
                ExitCode::FAILURE
            }
        },
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
        // TLS files are loaded as the server is built: unusable ones are still a
        // configuration error.
        Err(e) => match e.downcast_ref::<StartupError>() {
            Some(StartupError::Tls(e)) => {
                eprintln!("configuration error: {e}");
                ExitCode::from(2)
            }
            Some(StartupError::Spool(e)) => {
                eprintln!("configuration error: {e}");
                tracing::error!(error = %e, "the spool directory can't be used");
                ExitCode::from(2)
            }
            _ => {
                tracing::error!(error = format!("{e:#}"), "the bridge stopped with an error");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(config: &Config) -> anyhow::Result<()> {
    // One thread for the SQS side (the batch dispatcher and the SDK's calls); actix runs
    // the HTTP side on worker threads of its own. A current-thread runtime is the
    // cheapest scheduler for that one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        for warning in config.warnings().iter().chain(&config.operator_warnings()) {
            tracing::warn!("{warning}");
        }
        if let Some(id) = &config.event_setup_id {
            tracing::info!(
                group = crate::forward::keys::MessageGroupId::for_event_setup(id).as_str(),
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

/// Runs a future on a small runtime; errors become exit code 1.
fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> Result<T, ExitCode>
where
    T: Sized,
{
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(work));
    result.map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

async fn send_test_events(
    url: String,
    credential: Credential,
    event: SampleEvent,
    count: u64,
) -> anyhow::Result<ExitCode> {
    let sender = Sender::new(url, credential)?;
    let (mut accepted, mut failed) = (0u64, 0u64);
    let mut slowest = std::time::Duration::ZERO;
    let started = std::time::Instant::now();
    for n in 1..=count {
        let answer = sender.post(sample_event(event, n)).await?;
        slowest = slowest.max(answer.elapsed);
        if answer.status == 200 || answer.status == 201 {
            accepted += 1;
        } else {
            failed += 1;
        }
        if count == 1 {
            println!("{} {}", answer.status, answer.body);
        } else if failed > 0 && answer.status >= 300 && failed <= 5 {
            println!("event {n}: {} {}", answer.status, answer.body);
        }
        if count > 1 && (n % (count / 10).max(1) == 0 || n == count) {
            println!("sent {n}/{count}: {accepted} accepted, {failed} not");
        }
    }
    if count > 1 {
        #[allow(clippy::cast_precision_loss)]
        let rate = count as f64 / started.elapsed().as_secs_f64();
        println!(
            "{rate:.0} events/s, slowest answer {} ms",
            slowest.as_millis()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
    Ok(crate::forward::auth::sign(secret.as_bytes(), &body))
}
