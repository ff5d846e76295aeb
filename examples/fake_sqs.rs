//! FAKE SQS as a process, for the benchmarks: `cargo run --release --example fake_sqs --
//! 127.0.0.1:9324 [--latency-ms MS] [--hang-ms MS] [--quota CALLS_PER_S]
//! [--high-throughput]`. `GET /stats` reports calls per action, messages stored, entries
//! accepted (repeats dropped included) and calls throttled. `--latency-ms`: every call is
//! answered that much later (a region's round trip). `--hang-ms`: the same, through a
//! fault (the memory benchmark). `--quota`: SQS's FIFO quota per action (300 in SQS), per
//! partition of message groups with `--high-throughput`; calls beyond it are throttled.

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
    let (mut latency, mut hang, mut quota, mut high_throughput) = (None, None, None, false);
    let number = |args: &mut dyn Iterator<Item = String>, flag: &str| -> u64 {
        args.next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} takes a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--latency-ms" => {
                latency = Some(std::time::Duration::from_millis(number(&mut args, &arg)));
            }
            "--hang-ms" => hang = Some(std::time::Duration::from_millis(number(&mut args, &arg))),
            "--quota" => quota = Some(u32::try_from(number(&mut args, &arg)).expect("a quota")),
            "--high-throughput" => high_throughput = true,
            _ => addr = arg,
        }
    }
    let fake = fake_sqs::FakeSqs::start_with(&addr, false).await;
    if let Some(hang) = hang {
        fake.random(1, &[(fake_sqs::Fault::Latency(hang), 1)]);
    }
    fake.set_latency(latency);
    fake.set_quota(quota, high_throughput);
    println!("fake SQS listening on {}", fake.endpoint());
    let _ = tokio::signal::ctrl_c().await;
}
