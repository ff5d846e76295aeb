//! The durable spool (`BRIDGE_SPOOL_DIR`), with the real binary against the FAKE SQS in
//! `tests/support/fake_sqs.rs` (outages, latency: what LocalStack can't do): processes
//! are killed with `kill -9`, stopped with SIGTERM, their files damaged, a real file
//! system filled. Every event answered `200` must end up in the queue exactly once, in
//! the order it was acknowledged within its group, under the deduplication id its
//! answer named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_sqs::{FakeSqs, Fault};
use crate::helpers::{API_KEY, bridge_command, localstack_env, workn_event};

/// A bridge process with the spool on, its log lines collected as they come.
struct Bridge {
    child: Child,
    port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts the binary on `fake` with its spool in `dir`. SQS gets 300 ms per event,
    /// so an outage is noticed quickly.
    fn start(fake: &FakeSqs, dir: &Path, extra: &[(&str, &str)]) -> Self {
        let endpoint = fake.endpoint();
        let dir = dir.to_str().unwrap().to_owned();
        let mut settings = vec![
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("BRIDGE_SPOOL_DIR", dir.as_str()),
            ("BRIDGE_FORWARD_TIMEOUT_MS", "300"),
            ("BRIDGE_DEDUP", "event-id"),
            ("BRIDGE_SPOOL_ADOPT_INTERVAL_S", "1"),
        ];
        settings.extend_from_slice(extra);
        let mut command = bridge_command();
        localstack_env(&mut command, &fake.queue_url());
        let mut child = command
            .envs([
                ("BRIDGE_LISTEN", "127.0.0.1:0"),
                ("BRIDGE_LOG_FORMAT", "json"),
            ])
            .envs(settings)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Every line is kept, those before "listening" too (what recovery logged).
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let collected = Arc::clone(&logs);
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "listening"
                {
                    let _ = port_tx.send(u16::try_from(entry["port"].as_u64().unwrap()).unwrap());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "the bridge exited before listening: {:?}",
                    logs.lock().unwrap()
                )
            });
        Self { child, port, logs }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn kill9(&mut self) {
        self.signal("-KILL");
        self.child.wait().unwrap();
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A metric's value (summed over its labels), 0 when absent; every one read here is
    /// a whole number.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    async fn metric(&self, name: &str) -> u64 {
        let (_, text) = self.get("/metrics").await;
        text.as_str()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            .round() as u64
    }

    fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn event(group: &str, msg_id: &str) -> String {
    workn_event(msg_id).replacen('{', &format!(r#"{{"MessageGroupId":"{group}","#), 1)
}

/// What a `200` said.
#[derive(Debug, Clone)]
struct Ack {
    msg_id: String,
    status: String,
    deduplication_id: String,
}

async fn post(http: &reqwest::Client, url: &str, body: &str) -> Result<(u16, Value), String> {
    let response = http
        .post(url)
        .header("X-api-key", API_KEY)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// A sender like the vendor's, on a compressed clock: each event is posted until it is
/// answered `200` (the vendor tries four times in about a minute, then parks the event;
/// here it keeps trying, so that a bridge's restart is ridden out), one event at a time
/// per group. `url` is read before every attempt, so a restarted bridge is found.
async fn sender(url: Arc<Mutex<String>>, group: String, count: usize, pace: Duration) -> Vec<Ack> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acks = Vec::new();
    for i in 0..count {
        let msg_id = format!("{group}-{i}");
        let body = event(&group, &msg_id);
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            assert!(Instant::now() < deadline, "{msg_id} never accepted");
            let target = url.lock().unwrap().clone();
            match post(&http, &target, &body).await {
                Ok((200, answer)) => {
                    acks.push(Ack {
                        msg_id: msg_id.clone(),
                        status: answer["status"].as_str().unwrap().to_owned(),
                        deduplication_id: answer["deduplication_id"].as_str().unwrap().to_owned(),
                    });
                    break;
                }
                Ok((status, answer)) => {
                    assert_eq!(status, 503, "{msg_id}: {answer}");
                }
                Err(_) => {} // the bridge is gone or restarting
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(pace).await;
    }
    acks
}

/// Waits until the fake holds `count` messages.
async fn stored(fake: &FakeSqs, count: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while fake.stored_count() < count {
        assert!(
            Instant::now() < deadline,
            "the queue holds {} of {count} events",
            fake.stored_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every acknowledged event is in the queue once, under the id its answer named, and
/// each group's events are in the queue in the order they were acknowledged.
fn assert_delivered(fake: &FakeSqs, acks: &[Vec<Ack>]) {
    let stored = fake.stored();
    let mut by_msg: HashMap<String, Vec<&crate::fake_sqs::Stored>> = HashMap::new();
    for message in &stored {
        by_msg
            .entry(message.attributes["event_id"].clone())
            .or_default()
            .push(message);
    }
    for group in acks {
        let mut last_sequence = 0;
        for ack in group {
            let copies = by_msg.get(&ack.msg_id).map_or(0, Vec::len);
            assert_eq!(copies, 1, "{} is in the queue {copies} times", ack.msg_id);
            let message = by_msg[&ack.msg_id][0];
            assert_eq!(
                message.deduplication_id, ack.deduplication_id,
                "{}",
                ack.msg_id
            );
            assert!(
                message.sequence_number > last_sequence,
                "{} reached the queue before an event acknowledged earlier in its group",
                ack.msg_id
            );
            last_sequence = message.sequence_number;
        }
    }
    let acked: usize = acks.iter().map(Vec::len).sum();
    assert_eq!(
        stored.len(),
        acked,
        "the queue holds events nobody was told of"
    );
}

fn spool_dir() -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("spool");
    (dir, path)
}

/// A directory removed when the test ends.
mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("bridge-spool-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Self { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn senders(
    url: &Arc<Mutex<String>>,
    groups: usize,
    count: usize,
    pace: Duration,
) -> Vec<tokio::task::JoinHandle<Vec<Ack>>> {
    (0..groups)
        .map(|g| tokio::spawn(sender(Arc::clone(url), format!("g{g}"), count, pace)))
        .collect()
}

async fn joined(handles: Vec<tokio::task::JoinHandle<Vec<Ack>>>) -> Vec<Vec<Ack>> {
    let mut all = Vec::new();
    for handle in handles {
        all.push(handle.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_far_longer_than_the_retry_window_loses_nothing_and_keeps_each_groups_order() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    let bridge = Bridge::start(&fake, &dir, &[]);
    let url = Arc::new(Mutex::new(bridge.url()));
    let posting = senders(&url, 4, 150, Duration::from_millis(25));

    stored(&fake, 8, Duration::from_secs(10)).await;
    fake.set_outage(true);
    // Several times the sender's (compressed) retry window.
    let outage_started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.metric("bridge_spooled_events_total").await < 20 {
        assert!(
            Instant::now() < deadline,
            "nothing spooled during the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, ready) = bridge.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["spooling"], true, "{ready}");
    assert!(ready["spool"]["events"].as_u64().unwrap() > 0, "{ready}");
    while outage_started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.set_outage(false);

    // Live traffic goes on during the drain.
    let acks = joined(posting).await;
    stored(&fake, 600, Duration::from_secs(30)).await;
    assert_delivered(&fake, &acks);
    let spooled = acks
        .iter()
        .flatten()
        .filter(|a| a.status == "spooled")
        .count();
    assert!(spooled >= 20, "{spooled} spooled");
    assert_eq!(
        usize::try_from(bridge.metric("bridge_spooled_events_total").await).unwrap(),
        spooled
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.metric("bridge_spool_events").await > 0 {
        assert!(Instant::now() < deadline, "the spool never emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        usize::try_from(bridge.metric("bridge_spool_drained_events_total").await).unwrap(),
        spooled
    );
    let (_, ready) = bridge.get("/readyz").await;
    assert_eq!(ready["spooling"], false, "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_an_outage_loses_no_acknowledged_event() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    let mut bridge = Bridge::start(&fake, &dir, &[]);
    let url = Arc::new(Mutex::new(bridge.url()));
    fake.set_outage(true);
    let posting = senders(&url, 3, 30, Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.metric("bridge_spooled_events_total").await < 30 {
        assert!(
            Instant::now() < deadline,
            "nothing spooled during the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bridge.kill9();
    assert_eq!(fake.stored_count(), 0);

    // The next process finds the spool, still during the outage, then drains it.
    let bridge = Bridge::start(&fake, &dir, &[]);
    *url.lock().unwrap() = bridge.url();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.set_outage(false);
    let acks = joined(posting).await;
    stored(&fake, 90, Duration::from_secs(30)).await;
    assert_delivered(&fake, &acks);
    assert!(
        bridge.log_text().contains("adopted a part"),
        "{}",
        bridge.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_while_sqs_hangs_spools_the_forwards_in_flight_for_the_next_process() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    let bridge = Bridge::start(
        &fake,
        &dir,
        &[
            ("BRIDGE_FORWARD_TIMEOUT_MS", "20000"),
            ("BRIDGE_SHUTDOWN_TIMEOUT_S", "4"),
        ],
    );
    // Every call hangs far longer than the shutdown timeout.
    fake.random(1, &[(Fault::Latency(Duration::from_mins(1)), 1)]);
    let http = reqwest::Client::new();
    let posts: Vec<_> = (0..5)
        .map(|i| {
            let (http, url) = (http.clone(), bridge.url());
            tokio::spawn(async move { post(&http, &url, &event("g0", &format!("t-{i}"))).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.metric("bridge_forwards_in_flight").await < 5 {
        assert!(Instant::now() < deadline, "the forwards never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped_at = Instant::now();
    bridge.signal("-TERM");
    let mut acks = Vec::new();
    for (i, post) in posts.into_iter().enumerate() {
        let (status, answer) = post.await.unwrap().unwrap();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "spooled", "{answer}");
        acks.push(Ack {
            msg_id: format!("t-{i}"),
            status: "spooled".into(),
            deduplication_id: answer["deduplication_id"].as_str().unwrap().to_owned(),
        });
    }
    let mut bridge = bridge;
    let exit = tokio::task::spawn_blocking(move || {
        let status = bridge.child.wait().unwrap();
        (status, bridge)
    })
    .await
    .unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(4 + 3),
        "took {:?} to stop",
        stopped_at.elapsed()
    );
    assert_eq!(exit.0.code(), Some(0));

    // `spool status` reads what the stopped process left.
    let output = bridge_command()
        .args(["spool", "status", "--json", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["events"], 5, "{status}");
    assert_eq!(status["groups"]["g0"], 5, "{status}");
    assert_eq!(status["parts"][0]["live"], false, "{status}");

    fake.script([]);
    let _next = Bridge::start(&fake, &dir, &[]);
    stored(&fake, 5, Duration::from_secs(20)).await;
    // Concurrent posts have no order among themselves; each is there once.
    acks.sort_by_key(|a| {
        fake.stored()
            .iter()
            .find(|m| m.attributes["event_id"] == a.msg_id)
            .map_or(0, |m| m.sequence_number)
    });
    assert_delivered(&fake, &[acks]);
}

/// Byte offsets where records start in a segment (after their magic).
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len().saturating_sub(3))
        .filter(|&i| &bytes[i..i + 4] == b"WSB\x01")
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for part in std::fs::read_dir(dir.join("parts")).unwrap() {
        for file in std::fs::read_dir(part.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "seg") {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torn_tail_is_cut_and_a_damaged_record_quarantined_the_rest_delivered() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    let mut bridge = Bridge::start(&fake, &dir, &[]);
    fake.set_outage(true);
    let url = Arc::new(Mutex::new(bridge.url()));
    let acks = joined(senders(&url, 1, 6, Duration::ZERO)).await;
    assert!(acks[0].iter().all(|a| a.status == "spooled"), "{acks:?}");
    bridge.kill9();

    let segment = segments(&dir).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 6);
    // One byte of the third record's body, and half a record left at the end.
    let damaged = starts[3] - 10;
    bytes[damaged] ^= 0x01;
    let torn = bytes[starts[0]..starts[0] + 30].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();

    let output = bridge_command()
        .args(["spool", "status", "--json", "--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(status["events"], 5, "{status}");
    assert_eq!(status["parts"][0]["damaged"], 1, "{status}");

    fake.set_outage(false);
    let bridge = Bridge::start(&fake, &dir, &[]);
    stored(&fake, 5, Duration::from_secs(20)).await;
    let kept: Vec<_> = acks[0]
        .iter()
        .filter(|a| a.msg_id != "g0-2")
        .cloned()
        .collect();
    assert_delivered(&fake, &[kept]);
    assert_eq!(bridge.metric("bridge_spool_corrupt_records_total").await, 1);
    let mut quarantined: Vec<String> = std::fs::read_dir(dir.join("quarantine"))
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    quarantined.sort();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    assert!(
        quarantined
            .iter()
            .any(|f| f.rsplit('.').next() == Some("corrupt")),
        "{quarantined:?}"
    );
    assert!(
        quarantined
            .iter()
            .any(|f| f.rsplit('.').next() == Some("tail")),
        "{quarantined:?}"
    );
    let corrupt = quarantined
        .iter()
        .find(|f| f.rsplit('.').next() == Some("corrupt"))
        .unwrap();
    let kept_bytes = std::fs::read(dir.join("quarantine").join(corrupt)).unwrap();
    assert_eq!(
        kept_bytes,
        bytes[starts[2]..starts[3]],
        "the damaged record's bytes are kept"
    );
    let logs = bridge.log_text();
    assert!(logs.contains("a damaged record was skipped"), "{logs}");
    assert!(logs.contains("cut off an unfinished write"), "{logs}");
}

/// Unmounts a file system when the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Posts events of `group` one by one until `count` were answered; returns the `200`s
/// and how many got `503` for `error`.
async fn fill(url: &str, group: &str, count: usize, error: &str) -> (Vec<Ack>, usize) {
    let http = reqwest::Client::new();
    let (mut acks, mut refused) = (Vec::new(), 0);
    for i in 0..count {
        let msg_id = format!("{group}-{i}");
        let (status, answer) = post(&http, url, &event(group, &msg_id)).await.unwrap();
        match status {
            200 => {
                assert_eq!(answer["status"], "spooled", "{answer}");
                acks.push(Ack {
                    msg_id,
                    status: "spooled".into(),
                    deduplication_id: answer["deduplication_id"].as_str().unwrap().to_owned(),
                });
            }
            503 => {
                assert_eq!(answer["error"], error, "{answer}");
                refused += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    (acks, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_spool_answers_503_and_never_200_without_a_durable_copy() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    // Room for about twenty events.
    let bridge = Bridge::start(
        &fake,
        &dir,
        &[
            ("BRIDGE_MAX_BODY_BYTES", "4096"),
            ("BRIDGE_SPOOL_MAX_BYTES", "8192"),
        ],
    );
    fake.set_outage(true);
    let (acks, refused) = fill(&bridge.url(), "g0", 40, "spool_full").await;
    assert!(
        acks.len() >= 10 && refused >= 10,
        "{} spooled, {refused} refused",
        acks.len()
    );
    let (status, ready) = bridge.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["reason"], "spool_full", "{ready}");

    fake.set_outage(false);
    stored(&fake, acks.len() as u64, Duration::from_secs(20)).await;
    assert_delivered(&fake, &[acks]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_file_system_answers_503_and_never_200_without_a_durable_copy() {
    let (_tmp, dir) = spool_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    if !mounted.status.success() {
        // Mounting needs CAP_SYS_ADMIN; the low BRIDGE_SPOOL_MAX_BYTES test above covers
        // the limit without it.
        eprintln!(
            "NOT RUN: can't mount a small tmpfs here ({})",
            String::from_utf8_lossy(&mounted.stderr).trim()
        );
        return;
    }
    let _unmount = Unmount(dir.clone());
    let fake = FakeSqs::start().await;
    let bridge = Bridge::start(&fake, &dir, &[]);
    fake.set_outage(true);
    let (acks, refused) = fill(&bridge.url(), "g0", 250, "spool_unavailable").await;
    assert!(
        acks.len() >= 10 && refused >= 10,
        "{} spooled, {refused} refused",
        acks.len()
    );
    let (status, ready) = bridge.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["reason"], "spool_failing", "{ready}");

    fake.set_outage(false);
    stored(&fake, acks.len() as u64, Duration::from_secs(20)).await;
    assert_delivered(&fake, &[acks]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_part_left_by_a_killed_process_is_adopted_by_a_live_one_sharing_the_directory() {
    let fake = FakeSqs::start().await;
    let (_tmp, dir) = spool_dir();
    let mut first = Bridge::start(&fake, &dir, &[]);
    let second = Bridge::start(&fake, &dir, &[]);
    fake.set_outage(true);
    let (acks, _) = fill(&first.url(), "g0", 10, "none").await;
    assert_eq!(acks.len(), 10);

    // While its process lives, a part is nobody else's.
    tokio::time::sleep(Duration::from_millis(2500)).await; // two adoption scans
    let (_, ready) = second.get("/readyz").await;
    assert_eq!(ready["spool"]["events"], 0, "{ready}");

    first.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, ready) = second.get("/readyz").await;
        if ready["spool"]["events"] == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "never adopted: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fake.set_outage(false);
    stored(&fake, 10, Duration::from_secs(20)).await;
    assert_delivered(&fake, &[acks]);
    // Drained, the adopted part is removed: only the live process's own is left.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(dir.join("parts")).unwrap().count() > 1 {
        assert!(Instant::now() < deadline, "the drained part stayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn an_unusable_spool_directory_stops_start_up_naming_the_setting() {
    let tmp = tempdir::Dir::new();
    let file = tmp.path.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let output = bridge_command()
        .envs([
            ("BRIDGE_QUEUE_URL", "http://127.0.0.1:1/000000000000/q.fifo"),
            ("BRIDGE_API_KEYS", API_KEY),
            ("BRIDGE_LISTEN", "127.0.0.1:0"),
            ("BRIDGE_SPOOL_DIR", file.join("spool").to_str().unwrap()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BRIDGE_SPOOL_DIR"), "{stderr}");
}
