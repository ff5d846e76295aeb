//! FAKE SQS as a process, for the benchmark: `cargo run --release --example fake_sqs --
//! 127.0.0.1:9324`. `GET /stats` reports calls per action and messages stored.

#[path = "../tests/support/fake_sqs.rs"]
mod fake_sqs;

/// The fake shares the benchmark machine with what it serves: the less CPU it takes, the
/// less it skews the comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9324".to_owned());
    let fake = fake_sqs::FakeSqs::start_with(&addr, false).await;
    println!("fake SQS listening on {}", fake.endpoint());
    let _ = tokio::signal::ctrl_c().await;
}
