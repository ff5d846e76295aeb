//! Benchmark load generator: N keep-alive connections posting unique 1 KiB events for a
//! fixed time, each HMAC-signed like a signing sender would. Prints one JSON line.
//!
//! `cargo run --release --example loadgen -- --url URL [--connections 64] [--seconds 10]
//!  [--secret S] [--mode webhook|sqs] [--threads 1] [--enterprises 1]`
//!
//! `--prepare N` builds and signs N requests per connection before the clock starts.
//! `--rate R`: open loop instead. Request k is sent at k/R seconds, whatever the answers
//! so far, on an idle connection or a new one; its latency counts from when it was due
//! (so a backlog shows in it). All R × seconds requests are prepared first.
//! `--mode sqs` posts `SendMessage` calls straight to an SQS endpoint (the fake's own rate).

// Statistics over request counts: precision far beyond what these casts could lose.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// A WorkN event padded to about 1 KiB, unique per (connection, n); its `ent_id` is one
/// of `--enterprises` (1 by default), by connection.
fn event(connection: usize, n: u64) -> String {
    let enterprises: usize = arg("--enterprises", "1").parse().unwrap_or(1).max(1);
    let enterprise = 7 + connection % enterprises;
    let head = format!(
        r#"{{"mkt_id":12,"event_datetime":"2025-02-12T14:30:45","msg_id":"bench-{}-{connection}-{n}","event_type":5,"ent_id":{enterprise},"ext_customer_id":"CUST-7","branch_id":3,"ext_branch_id":"BR-3","note":""#,
        std::process::id()
    );
    let pad = 1024usize.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    non_2xx: u64,
    errors: u64,
}

/// One keep-alive connection, speaking just enough HTTP/1.1 to stay cheap: the load
/// generator shares the machine with what it measures, so its own cost must be small.
/// The bytes of request `n` on connection `i`: a unique event, signed.
fn request(i: usize, n: u64, host: &str, path: &str, mode: &str, secret: &str) -> Vec<u8> {
    let body = event(i, n);
    let (body, extra) = if mode == "sqs" {
        let call = serde_json::json!({
            "QueueUrl": "http://127.0.0.1/000000000000/bench.fifo",
            "MessageBody": body,
            "MessageGroupId": "g",
            "MessageDeduplicationId": format!("{i}-{n}"),
        });
        (
            call.to_string(),
            "X-Amz-Target: AmazonSQS.SendMessage\r\nContent-Type: application/x-amz-json-1.0\r\n"
                .to_owned(),
        )
    } else {
        let signature = webhook_sqs_bridge::auth::sign(secret.as_bytes(), body.as_bytes());
        (
            body,
            format!("Content-Type: application/json\r\nX-Payload-Signature: {signature}\r\n"),
        )
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One keep-alive connection, speaking just enough HTTP/1.1 to stay cheap: the load
/// generator shares the machine with what it measures. Requests are built and signed
/// before the clock starts (`prepared` of them), so signing costs the measurement nothing.
async fn connection(i: usize, target: Target, prepared: Vec<Vec<u8>>, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut socket: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(4096);
    let mut prepared = prepared.into_iter();
    let mut n = 1_000_000_000u64;
    while Instant::now() < until {
        let request = prepared.next().unwrap_or_else(|| {
            n += 1;
            request(
                i,
                n,
                &target.host,
                &target.path,
                &target.mode,
                &target.secret,
            )
        });
        let started = Instant::now();
        if socket.is_none() {
            socket = TcpStream::connect(&target.host).await.ok();
            if let Some(s) = &socket {
                let _ = s.set_nodelay(true);
            }
        }
        let result = match socket.as_mut() {
            Some(s) => exchange(s, &request, &mut buffer).await,
            None => None,
        };
        match result {
            Some((status, keep_alive)) => {
                tally
                    .latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
                if !keep_alive {
                    socket = None;
                }
            }
            None => {
                tally.errors += 1;
                socket = None;
            }
        }
    }
    tally
}

/// The open loop (`--rate`): every request due at its time, on an idle connection or a
/// new one.
async fn open_loop(target: Target, requests: Vec<Vec<u8>>, rate: f64) -> Tally {
    use std::sync::{Arc, Mutex};
    let idle: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for (k, request) in requests.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(due).await;
        let idle = Arc::clone(&idle);
        let host = target.host.clone();
        tasks.push(tokio::spawn(async move {
            let reused = idle.lock().unwrap().pop();
            let mut socket = match reused {
                Some(s) => s,
                None => {
                    let s = TcpStream::connect(&host).await.ok()?;
                    let _ = s.set_nodelay(true);
                    s
                }
            };
            let mut buffer = Vec::with_capacity(4096);
            let (status, keep_alive) = exchange(&mut socket, &request, &mut buffer).await?;
            let latency = due.elapsed();
            if keep_alive {
                idle.lock().unwrap().push(socket);
            }
            Some((status, latency))
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        match task.await.unwrap() {
            Some((status, latency)) => {
                tally
                    .latencies_us
                    .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                if !(200..300).contains(&status) {
                    tally.non_2xx += 1;
                }
            }
            None => tally.errors += 1,
        }
    }
    tally
}

#[derive(Clone)]
struct Target {
    host: String,
    path: String,
    mode: String,
    secret: String,
}

/// Writes one request and reads its answer: the status and whether the connection stays.
async fn exchange(
    socket: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> Option<(u16, bool)> {
    socket.write_all(request).await.ok()?;
    buffer.clear();
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end])
                .ok()?
                .to_ascii_lowercase();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let keep_alive = !head.contains("connection: close");
            while buffer.len() < end + 4 + length {
                buffer.reserve(4096);
                if socket.read_buf(buffer).await.ok()? == 0 {
                    return None;
                }
            }
            return Some((status, keep_alive));
        }
        buffer.reserve(4096);
        if socket.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
}

fn main() {
    let url = arg("--url", "http://127.0.0.1:8080/webhook");
    let connections: usize = arg("--connections", "64").parse().unwrap();
    let seconds: f64 = arg("--seconds", "10").parse().unwrap();
    let mode = arg("--mode", "webhook");
    let secret = arg("--secret", "bench-shared-secret");
    let threads: usize = arg("--threads", "1").parse().unwrap();
    let per_connection: u64 = arg("--prepare", "4000").parse().unwrap();
    let rate: Option<f64> = std::env::args()
        .any(|a| a == "--rate")
        .then(|| arg("--rate", "0").parse().unwrap());
    assert!(rate.is_none_or(|r| r > 0.0), "--rate must be above 0");
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let target = Target {
        host: host.to_owned(),
        path,
        mode,
        secret,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    if let Some(rate) = rate {
        let total = (rate * seconds).ceil() as u64;
        let requests = (0..total)
            .map(|k| {
                let i = (k % connections as u64) as usize;
                request(
                    i,
                    k,
                    &target.host,
                    &target.path,
                    &target.mode,
                    &target.secret,
                )
            })
            .collect();
        let started = Instant::now();
        eprintln!("started");
        let tally = runtime.block_on(open_loop(target, requests, rate));
        report(&[tally], started.elapsed().as_secs_f64());
        return;
    }
    let prepared: Vec<Vec<Vec<u8>>> = (0..connections)
        .map(|i| {
            (0..per_connection)
                .map(|n| {
                    request(
                        i,
                        n,
                        &target.host,
                        &target.path,
                        &target.mode,
                        &target.secret,
                    )
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    // For a caller that samples counters during the run: the clock starts now.
    eprintln!("started");
    let until = started + Duration::from_secs_f64(seconds);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = prepared
            .into_iter()
            .enumerate()
            .map(|(i, requests)| tokio::spawn(connection(i, target.clone(), requests, until)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    report(&tallies, started.elapsed().as_secs_f64());
}

/// One JSON line: requests answered, their rate, latency percentiles, failures.
fn report(tallies: &[Tally], elapsed: f64) {
    let mut latencies: Vec<u32> = tallies
        .iter()
        .flat_map(|t| t.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            f64::from(latencies[index]) / 1000.0
        }
    };
    let requests = latencies.len();
    println!(
        "{}",
        serde_json::json!({
            "requests": requests,
            "seconds": elapsed,
            "rps": requests as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "non_2xx": tallies.iter().map(|t| t.non_2xx).sum::<u64>(),
            "errors": tallies.iter().map(|t| t.errors).sum::<u64>(),
        })
    );
}
