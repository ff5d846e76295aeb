//! The `webhook-sqs-bridge` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    webhook_sqs_bridge::cli::main()
}
