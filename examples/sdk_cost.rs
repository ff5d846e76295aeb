//! What one SDK call costs in CPU on this machine: `SendMessage` versus
//! `SendMessageBatch` of 10 × 1 KiB, sequentially, against the FAKE SQS given as the first
//! argument (`cargo run --release --example fake_sqs -- 127.0.0.1:19325` first). The
//! numbers behind batching (docs/BENCHMARKS.md).

#[path = "../tests/support/fake_sqs.rs"]
mod fake_sqs;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::time::Instant;

fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.split_whitespace().collect();
    (f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap()) * 10_000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let endpoint = std::env::args().nth(1).unwrap();
    let client = fake_sqs::client_for(&endpoint);
    let url = format!("{endpoint}/000000000000/x.fifo");
    let body = "x".repeat(1000) + "\"quoted\"";
    for (label, batch) in [("send_message", 0usize), ("batch of 10", 10)] {
        let n = 2000u32;
        let c0 = cpu();
        let t0 = Instant::now();
        for i in 0..n {
            if batch == 0 {
                client
                    .send_message()
                    .queue_url(&url)
                    .message_body(&body)
                    .message_group_id("g")
                    .message_deduplication_id(format!("{label}-{i}"))
                    .send()
                    .await
                    .unwrap();
            } else {
                let entries = (0..batch)
                    .map(|j| {
                        SendMessageBatchRequestEntry::builder()
                            .id(j.to_string())
                            .message_body(&body)
                            .message_group_id("g")
                            .message_deduplication_id(format!("b{i}-{j}"))
                            .build()
                            .unwrap()
                    })
                    .collect();
                client
                    .send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
            }
        }
        println!(
            "{label}: {:.0} us cpu/call (this process, fake elsewhere), {:.0} us wall/call",
            (cpu() - c0) / f64::from(n),
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
    }
}
