//! The `webhook-sqs-bridge` binary: everything lives in the library.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    webhook_sqs_bridge::cli::main()
}
