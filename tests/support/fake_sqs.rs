//! FAKE SQS: a small in-process HTTP server speaking the AWS JSON 1.0 protocol that
//! `aws-sdk-sqs` uses (`SendMessage`, `SendMessageBatch`, `GetQueueAttributes`), with FIFO
//! deduplication (5-minute window, queue scope) like the real service.
//!
//! It exists for what LocalStack can't do: inject faults (throttling, 5xx, latency,
//! dropped connections, "stored, then the answer was lost", outages), and serve as a fast
//! stand-in for benchmarks. Everything else is tested against LocalStack.

#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake does with one request (or, in a batch, one entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// `400 ThrottlingException`, nothing stored.
    Throttle,
    /// `500 InternalError`, nothing stored.
    Internal,
    /// `503 ServiceUnavailable`, nothing stored.
    Unavailable,
    /// Close the connection without answering, nothing stored.
    Drop,
    /// Store the message(s), then answer `500`: the sender can't know it worked.
    StoreThen500,
    /// Store the message(s), then close the connection without answering.
    StoreThenDrop,
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// `400 AccessDenied`: permanent, nothing stored.
    AccessDenied,
    /// `400 QueueDoesNotExist`: permanent, nothing stored.
    QueueMissing,
    /// In a batch: this entry fails with `SenderFault: false` (retryable), not stored.
    /// Scripted for a call, every entry of that batch call fails so.
    EntryInternal,
    /// In a batch call (scripted): every entry is refused as the sender's fault
    /// (`SenderFault: true`, `InvalidMessageContents`), not stored.
    EntryRefused,
    /// In a batch call (scripted): every entry is stored, then listed both as successful
    /// and as failed on SQS's side (an answer that contradicts itself).
    EntryListedTwice,
}

/// A body holding this makes the whole call that carries it fail with `400
/// InvalidMessageContents`, batch or not: SQS refusing a call for one entry's sake.
pub const REFUSES_CALL: &str = "fake-sqs:refuse-the-call";

/// A message the fake accepted (once: duplicates are not stored again).
#[derive(Debug, Clone)]
pub struct Stored {
    pub body: String,
    pub group_id: String,
    pub deduplication_id: String,
    pub attributes: HashMap<String, String>,
    pub message_id: String,
    pub sequence_number: u64,
}

/// How faults are chosen.
/// What the fake reads of a `SendMessage` call or a batch entry: typed, and borrowing from
/// the request where a string has no escapes, so the fake stays cheap next to what it
/// serves in benchmarks.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry<'a> {
    #[serde(default, borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    message_body: Cow<'a, str>,
    #[serde(default, borrow)]
    message_group_id: Cow<'a, str>,
    #[serde(default, borrow)]
    message_deduplication_id: Cow<'a, str>,
    #[serde(default, borrow)]
    message_attributes: HashMap<Cow<'a, str>, Attribute<'a>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute<'a> {
    #[serde(default, borrow)]
    string_value: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Batch<'a> {
    #[serde(default, borrow)]
    entries: Vec<Entry<'a>>,
}

enum Plan {
    /// One fault per request, in order; `None` once the script is used up.
    Script(VecDeque<Fault>),
    /// Each request (and batch entry) draws from `mix` with a seeded generator.
    Random { mix: Vec<(Fault, u32)>, state: u64 },
}

struct State {
    stored: Mutex<Vec<Stored>>,
    /// Deduplication id → (message id, sequence number, when stored).
    dedup: Mutex<HashMap<String, (String, u64, Instant)>>,
    plan: Mutex<Plan>,
    outage: AtomicBool,
    sequence: AtomicU64,
    calls: Mutex<HashMap<String, u64>>,
    /// Off for benchmarks: count messages without keeping their bodies.
    keep_messages: bool,
    stored_count: AtomicU64,
    /// Entries answered as sent, repeats SQS drops included.
    accepted_count: AtomicU64,
    /// The queue's `MaximumMessageSize`; 0: not reported, not enforced.
    max_message_size: AtomicUsize,
    /// Added to every SQS call's answer, like a real region's round trip.
    latency: Mutex<Option<Duration>>,
    /// SQS's throughput quota, when modelled.
    quota: Mutex<Option<Quota>>,
    throttled: AtomicU64,
}

/// SQS's FIFO quota: calls per second per action per queue, or, in high-throughput mode,
/// per partition, message groups hashed onto partitions. A token bucket per (action,
/// partition), a tenth of a second's worth deep (SQS does not say how much burst it
/// allows); a call finding it empty is throttled.
struct Quota {
    calls_per_second: f64,
    partitions: u64,
    buckets: HashMap<(String, u64), (f64, Instant)>,
}

/// Partitions message groups are spread over in high-throughput mode.
const PARTITIONS: u64 = 16;

/// A running fake; dropping it does not stop the server task (tests end with the runtime).
#[derive(Clone)]
pub struct FakeSqs {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeSqs {
    /// Starts on 127.0.0.1 at an ephemeral port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        Self::start_with(addr, true).await
    }

    /// `keep_messages: false` keeps memory flat under long benchmark runs.
    pub async fn start_with(addr: &str, keep_messages: bool) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind fake SQS");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            stored: Mutex::new(Vec::new()),
            dedup: Mutex::new(HashMap::new()),
            plan: Mutex::new(Plan::Script(VecDeque::new())),
            outage: AtomicBool::new(false),
            sequence: AtomicU64::new(1),
            calls: Mutex::new(HashMap::new()),
            keep_messages,
            stored_count: AtomicU64::new(0),
            accepted_count: AtomicU64::new(0),
            max_message_size: AtomicUsize::new(0),
            latency: Mutex::new(None),
            quota: Mutex::new(None),
            throttled: AtomicU64::new(0),
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, Arc::clone(&shared)));
            }
        });
        Self { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn queue_url(&self) -> String {
        format!("http://{}/000000000000/fake.fifo", self.addr)
    }

    /// An SDK client pointed at the fake.
    pub fn client(&self) -> aws_sdk_sqs::Client {
        client_for(&self.endpoint())
    }

    /// Faults for the next requests, one each, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        *self.state.plan.lock().unwrap() = Plan::Script(faults.into_iter().collect());
    }

    /// Faults drawn at random (seeded, so a failure can be replayed) by weight.
    pub fn random(&self, seed: u64, mix: &[(Fault, u32)]) {
        *self.state.plan.lock().unwrap() = Plan::Random {
            mix: mix.to_vec(),
            state: seed.max(1),
        };
    }

    /// A queue made with this `MaximumMessageSize`: `GetQueueAttributes` reports it, and a
    /// `SendMessageBatch` whose bodies add up to more is refused whole
    /// (`BatchRequestTooLong`), as AWS is reported to do.
    pub fn set_max_message_size(&self, bytes: usize) {
        self.state.max_message_size.store(bytes, Ordering::SeqCst);
    }

    /// Every SQS call is answered this much later (`None`: at once).
    pub fn set_latency(&self, latency: Option<Duration>) {
        *self.state.latency.lock().unwrap() = latency;
    }

    /// Models SQS's throughput quota: `calls_per_second` per action per queue (SQS FIFO:
    /// 300), or per partition of message groups with `high_throughput`; beyond it, calls
    /// are throttled (`ThrottlingException`, every other time spelled `RequestThrottled`,
    /// as SQS's two spellings). `None` turns it off.
    pub fn set_quota(&self, calls_per_second: Option<u32>, high_throughput: bool) {
        *self.state.quota.lock().unwrap() = calls_per_second.map(|rate| Quota {
            calls_per_second: f64::from(rate),
            partitions: if high_throughput { PARTITIONS } else { 1 },
            buckets: HashMap::new(),
        });
    }

    /// Calls the quota throttled so far.
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::SeqCst)
    }

    /// While on, every connection is closed without an answer.
    pub fn set_outage(&self, on: bool) {
        self.state.outage.store(on, Ordering::SeqCst);
    }

    pub fn stored(&self) -> Vec<Stored> {
        self.state.stored.lock().unwrap().clone()
    }

    /// How many distinct messages were stored.
    pub fn stored_count(&self) -> u64 {
        self.state.stored_count.load(Ordering::SeqCst)
    }

    /// Calls received per action (`SendMessage`, `SendMessageBatch`, ...).
    pub fn calls(&self, action: &str) -> u64 {
        self.state
            .calls
            .lock()
            .unwrap()
            .get(action)
            .copied()
            .unwrap_or(0)
    }
}

impl State {
    /// Takes a token for the call; `Some(code)` when the quota throttles it.
    fn over_quota(&self, action: &str, body: &[u8]) -> Option<&'static str> {
        if action == "GetQueueAttributes" {
            return None;
        }
        let mut quota = self.quota.lock().unwrap();
        let quota = quota.as_mut()?;
        let partition = if quota.partitions > 1 {
            // The call's first message group decides its partition.
            let group = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| {
                    v.get("MessageGroupId")
                        .or_else(|| v.get("Entries")?.get(0)?.get("MessageGroupId"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in group.bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
            }
            hash % quota.partitions
        } else {
            0
        };
        let rate = quota.calls_per_second;
        let depth = (rate / 10.0).max(1.0);
        let now = Instant::now();
        let (tokens, at) = quota
            .buckets
            .entry((action.to_owned(), partition))
            .or_insert((depth, now));
        *tokens = (*tokens + rate * now.duration_since(*at).as_secs_f64()).min(depth);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return None;
        }
        let n = self.throttled.fetch_add(1, Ordering::SeqCst);
        Some(if n.is_multiple_of(2) {
            "ThrottlingException"
        } else {
            "RequestThrottled"
        })
    }

    fn next_fault(&self) -> Fault {
        match &mut *self.plan.lock().unwrap() {
            Plan::Script(faults) => faults.pop_front().unwrap_or(Fault::None),
            Plan::Random { mix, state } => {
                // xorshift64: small, seeded, good enough to spread faults.
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                let total: u32 = mix.iter().map(|(_, w)| w).sum();
                if total == 0 {
                    return Fault::None;
                }
                let mut pick = u32::try_from(*state % u64::from(total)).unwrap();
                for (fault, weight) in mix.iter() {
                    if pick < *weight {
                        return *fault;
                    }
                    pick -= weight;
                }
                Fault::None
            }
        }
    }

    /// Stores one message unless its deduplication id was seen in the last 5 minutes;
    /// either way returns its message id and sequence number, as SQS does.
    fn store(&self, entry: &Entry<'_>) -> (String, u64) {
        self.accepted_count.fetch_add(1, Ordering::SeqCst);
        let mut dedup = self.dedup.lock().unwrap();
        if let Some((id, seq, at)) = dedup.get(entry.message_deduplication_id.as_ref())
            && at.elapsed() < Duration::from_mins(5)
        {
            return (id.clone(), *seq);
        }
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst);
        let message_id = format!("fake-{sequence:08}");
        self.stored_count.fetch_add(1, Ordering::SeqCst);
        if self.keep_messages {
            self.stored.lock().unwrap().push(Stored {
                body: entry.message_body.to_string(),
                group_id: entry.message_group_id.to_string(),
                deduplication_id: entry.message_deduplication_id.to_string(),
                attributes: entry
                    .message_attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.string_value.to_string()))
                    .collect(),
                message_id: message_id.clone(),
                sequence_number: sequence,
            });
        }
        dedup.insert(
            entry.message_deduplication_id.to_string(),
            (message_id.clone(), sequence, Instant::now()),
        );
        (message_id, sequence)
    }
}

/// An SDK client for an SQS endpoint on this machine, with dummy credentials.
pub fn client_for(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .endpoint_url(endpoint)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "fake", "fake", None, None, "fake",
            ))
            .build(),
    )
}

/// What to write back, or nothing (close the connection).
enum Answer {
    Reply(u16, String),
    Close,
}

async fn serve(mut socket: TcpStream, state: Arc<State>) {
    let mut buffer = Vec::with_capacity(8 * 1024);
    loop {
        let Some((target, body, consumed)) = read_request(&mut socket, &mut buffer).await else {
            return;
        };
        buffer.drain(..consumed);
        if target.is_empty() {
            // Not an SQS call (no X-Amz-Target): the stats page, for benchmarks.
            let calls = state.calls.lock().unwrap().clone();
            let page =
                json!({ "stored": state.stored_count.load(Ordering::SeqCst), "accepted": state.accepted_count.load(Ordering::SeqCst), "calls": calls, "throttled": state.throttled.load(Ordering::SeqCst) })
                    .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                page.len()
            );
            if socket.write_all(head.as_bytes()).await.is_err()
                || socket.write_all(page.as_bytes()).await.is_err()
            {
                return;
            }
            continue;
        }
        if state.outage.load(Ordering::SeqCst) {
            return;
        }
        let action = target.rsplit('.').next().unwrap_or_default().to_owned();
        *state
            .calls
            .lock()
            .unwrap()
            .entry(action.clone())
            .or_default() += 1;
        let fault = state.next_fault();
        if let Fault::Latency(delay) = fault {
            tokio::time::sleep(delay).await;
        }
        let latency = *state.latency.lock().unwrap();
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        let answer = match state.over_quota(&action, &body) {
            Some(spelling) => error(400, spelling),
            None => handle(&state, &action, &body, fault),
        };
        let (status, value) = match answer {
            Answer::Close => return,
            Answer::Reply(status, value) => (status, value),
        };
        let payload = value;
        // One write per answer: a client then reads it whole, in one segment.
        let mut answer = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nx-amzn-requestid: fake\r\n\r\n",
            if status == 200 { "OK" } else { "Error" },
            payload.len()
        );
        answer.push_str(&payload);
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn error(status: u16, code: &str) -> Answer {
    Answer::Reply(
        status,
        json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": format!("fake SQS: {code}") })
            .to_string(),
    )
}

/// One `SendMessage` answer's fields (a batch entry adds its `Id` in front).
fn sent(id: &str, sequence: u64) -> String {
    format!(r#""MessageId":"{id}","SequenceNumber":"{sequence}","MD5OfMessageBody":"""#)
}

fn handle(state: &State, action: &str, body: &[u8], fault: Fault) -> Answer {
    match fault {
        Fault::Throttle => return error(400, "ThrottlingException"),
        Fault::Internal => return error(500, "InternalError"),
        Fault::Unavailable => return error(503, "ServiceUnavailable"),
        Fault::Drop => return Answer::Close,
        Fault::AccessDenied => return error(400, "AccessDenied"),
        Fault::QueueMissing => return error(400, "QueueDoesNotExist"),
        _ => {}
    }
    let answer = match action {
        "SendMessage" => match serde_json::from_slice::<Entry<'_>>(body) {
            Err(_) => error(400, "InvalidParameterValue"),
            Ok(entry) if entry.message_body.contains(REFUSES_CALL) => {
                error(400, "InvalidMessageContents")
            }
            Ok(entry) => {
                let (id, seq) = state.store(&entry);
                Answer::Reply(200, format!("{{{}}}", sent(&id, seq)))
            }
        },
        "SendMessageBatch" => match serde_json::from_slice::<Batch<'_>>(body) {
            Err(_) => error(400, "InvalidParameterValue"),
            Ok(batch)
                if state.max_message_size.load(Ordering::SeqCst) > 0
                    && batch
                        .entries
                        .iter()
                        .map(|e| e.message_body.len())
                        .sum::<usize>()
                        > state.max_message_size.load(Ordering::SeqCst) =>
            {
                error(400, "BatchRequestTooLong")
            }
            Ok(batch)
                if batch
                    .entries
                    .iter()
                    .any(|e| e.message_body.contains(REFUSES_CALL)) =>
            {
                error(400, "InvalidMessageContents")
            }
            Ok(batch) => {
                let mut successful = Vec::new();
                let mut failed = Vec::new();
                for entry in &batch.entries {
                    let entry_id = Value::from(entry.id.as_ref()).to_string();
                    if fault == Fault::EntryListedTwice {
                        let (id, seq) = state.store(entry);
                        successful.push(format!(r#"{{"Id":{entry_id},{}}}"#, sent(&id, seq)));
                        failed.push(format!(r#"{{"Id":{entry_id},"SenderFault":false,"Code":"InternalError","Message":"fake SQS: listed twice"}}"#));
                        continue;
                    }
                    if fault == Fault::EntryRefused {
                        failed.push(format!(r#"{{"Id":{entry_id},"SenderFault":true,"Code":"InvalidMessageContents","Message":"fake SQS: entry refused"}}"#));
                        continue;
                    }
                    // In a batch, the random plan also draws per entry.
                    if fault == Fault::EntryInternal
                        || (fault != Fault::StoreThen500
                            && fault != Fault::StoreThenDrop
                            && state.next_entry_fault() == Fault::EntryInternal)
                    {
                        failed.push(format!(r#"{{"Id":{entry_id},"SenderFault":false,"Code":"InternalError","Message":"fake SQS: entry failed"}}"#));
                        continue;
                    }
                    let (id, seq) = state.store(entry);
                    successful.push(format!(r#"{{"Id":{entry_id},{}}}"#, sent(&id, seq)));
                }
                Answer::Reply(
                    200,
                    format!(
                        r#"{{"Successful":[{}],"Failed":[{}]}}"#,
                        successful.join(","),
                        failed.join(",")
                    ),
                )
            }
        },
        "GetQueueAttributes" => {
            let mut attributes =
                json!({ "FifoQueue": "true", "ContentBasedDeduplication": "false" });
            let max = state.max_message_size.load(Ordering::SeqCst);
            if max > 0 {
                attributes["MaximumMessageSize"] = max.to_string().into();
            }
            Answer::Reply(200, json!({ "Attributes": attributes }).to_string())
        }
        other => error(400, &format!("UnsupportedOperation{other}")),
    };
    match fault {
        Fault::StoreThen500 => error(500, "InternalError"),
        Fault::StoreThenDrop => Answer::Close,
        _ => answer,
    }
}

impl State {
    /// Per-entry faults only come from a random plan that lists `EntryInternal`.
    fn next_entry_fault(&self) -> Fault {
        let has_entry_faults = matches!(&*self.plan.lock().unwrap(), Plan::Random { mix, .. } if mix.iter().any(|(f, _)| *f == Fault::EntryInternal));
        if has_entry_faults {
            self.next_fault()
        } else {
            Fault::None
        }
    }
}

/// Reads one HTTP/1.1 request: returns its `X-Amz-Target`, body, and bytes consumed.
pub async fn read_request(
    socket: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, Vec<u8>, usize)> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
            let mut length = 0usize;
            let mut target = String::new();
            for line in head.lines().skip(1) {
                if let Some((name, value)) = line.split_once(':') {
                    let name = name.trim().to_ascii_lowercase();
                    if name == "content-length" {
                        length = value.trim().parse().ok()?;
                    } else if name == "x-amz-target" {
                        target = value.trim().to_owned();
                    }
                }
            }
            let total = end + 4 + length;
            while buffer.len() < total {
                if !read_more(socket, buffer).await {
                    return None;
                }
            }
            return Some((target, buffer[end + 4..total].to_vec(), total));
        }
        if !read_more(socket, buffer).await {
            return None;
        }
    }
}

async fn read_more(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    buffer.reserve(16 * 1024);
    matches!(socket.read_buf(buffer).await, Ok(n) if n > 0)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
