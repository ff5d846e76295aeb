//! The `webhook-sqs-bridge` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    webhook_sqs_bridge::cli::main()
}

/// mimalloc: glibc's allocator spent about a tenth of the bridge's CPU under load
/// (many small, cross-thread allocations in the HTTP and SDK paths); see docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
