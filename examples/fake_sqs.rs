//! FAKE SQS as a process, for the benchmarks: `cargo run --release --example fake_sqs --
//! 127.0.0.1:9324 [--latency-ms MS]`. `GET /stats` reports calls per action and messages
//! stored. With `--latency-ms`, every call waits that long before it is answered.

#[path = "../tests/support/fake_sqs.rs"]
mod fake_sqs;

/// The fake shares the benchmark machine with what it serves: the less CPU it takes, the
/// less it skews the comparison.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9324".to_owned();
    let mut latency = None;
    while let Some(arg) = args.next() {
        if arg == "--latency-ms" {
            let ms: u64 = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--latency-ms takes a number of milliseconds");
            latency = Some(std::time::Duration::from_millis(ms));
        } else {
            addr = arg;
        }
    }
    let fake = fake_sqs::FakeSqs::start_with(&addr, false).await;
    if let Some(latency) = latency {
        fake.random(1, &[(fake_sqs::Fault::Latency(latency), 1)]);
    }
    println!("fake SQS listening on {}", fake.endpoint());
    let _ = tokio::signal::ctrl_c().await;
}
