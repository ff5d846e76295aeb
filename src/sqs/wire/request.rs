//! `SendMessage` and `SendMessageBatch` request bodies written in one pass, instead of by
//! the SDK.
//!
//! The SDK's JSON writer escapes each string one byte at a time into a new `String`, then
//! copies that into the body. With 1 KiB event bodies this was the largest single cost on
//! the SQS thread, which every batch waits on (docs/BENCHMARKS.md, "Request bodies
//! written by the bridge"). [`SqsJson`] writes
//! the same requests: the same members in the same order, the same escapes, the same
//! headers. It copies runs that need no escaping whole.
//!
//! It is installed per call, and only for inputs whose every member it writes (the
//! bridge's own: string attributes, no delay, no system attributes). Anything else is left
//! to the SDK. Tests compare both serializations of the same inputs.
//!
//! The bridge's calls carry their bodies beside the SDK input ([`super::bodies`]), and
//! [`Writer`] writes those.

use std::collections::HashMap;

use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use aws_smithy_runtime_api::client::interceptors::context::Input;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::ser_de::{SerializeRequest, SharedRequestSerializer};
use aws_smithy_types::body::SdkBody;

use super::bodies::{CallBodies, WroteBodies};
use crate::sqs::message::MessageBody;

/// The interceptor that puts this module's serializers in place of the SDK's.
#[derive(Debug)]
pub struct SqsJson {
    send_message: SharedRequestSerializer,
    send_message_batch: SharedRequestSerializer,
}

impl Default for SqsJson {
    fn default() -> Self {
        Self {
            send_message: SharedRequestSerializer::new(Writer(Operation::SendMessage)),
            send_message_batch: SharedRequestSerializer::new(Writer(Operation::SendMessageBatch)),
        }
    }
}

impl Intercept for SqsJson {
    fn name(&self) -> &'static str {
        "SqsJson"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let serializer = if let Some(batch) = input.downcast_ref::<SendMessageBatchInput>() {
            writable_batch(batch).then_some(&self.send_message_batch)
        } else if let Some(single) = input.downcast_ref::<SendMessageInput>() {
            writable_single(single).then_some(&self.send_message)
        } else {
            None
        };
        if let Some(serializer) = serializer {
            cfg.interceptor_state().store_put(serializer.clone());
        }
        Ok(())
    }
}

/// Whether every member set on the input is one [`batch_body`] writes.
fn writable_batch(input: &SendMessageBatchInput) -> bool {
    input.entries.as_ref().is_some_and(|entries| {
        entries.iter().all(|e| {
            e.delay_seconds.is_none()
                && e.message_system_attributes.is_none()
                && string_attributes_only(e.message_attributes.as_ref())
        })
    })
}

/// Whether every member set on the input is one [`single_body`] writes.
fn writable_single(input: &SendMessageInput) -> bool {
    input.queue_url.is_some()
        && input.message_body.is_some()
        && input.delay_seconds.is_none()
        && input.message_system_attributes.is_none()
        && string_attributes_only(input.message_attributes.as_ref())
}

fn string_attributes_only(attributes: Option<&HashMap<String, MessageAttributeValue>>) -> bool {
    attributes.is_none_or(|a| {
        a.values().all(|value| {
            value.binary_value.is_none()
                && value.string_list_values.is_none()
                && value.binary_list_values.is_none()
        })
    })
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    SendMessage,
    SendMessageBatch,
}

#[derive(Debug)]
struct Writer(Operation);

impl SerializeRequest for Writer {
    fn serialize_input(&self, input: Input, cfg: &mut ConfigBag) -> Result<HttpRequest, BoxError> {
        #[cfg(test)]
        tests::WRITES.with(|n| n.set(n.get() + 1));
        let bodies = cfg.load::<CallBodies>().map(|b| b.0.as_slice());
        let shared = bodies.is_some();
        let (target, body) = match self.0 {
            Operation::SendMessage => (
                "AmazonSQS.SendMessage",
                single_body(&downcast(input)?, bodies)?,
            ),
            Operation::SendMessageBatch => (
                "AmazonSQS.SendMessageBatch",
                batch_body(&downcast(input)?, bodies)?,
            ),
        };
        if shared {
            cfg.interceptor_state()
                .unset::<CallBodies>()
                .store_put(WroteBodies);
        }
        let request = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .header("x-amzn-query-mode", "true")
            .header("content-length", body.len())
            .body(SdkBody::from(body))?;
        Ok(HttpRequest::try_from(request)?)
    }
}

/// The input as its operation's own type.
fn downcast<T: std::fmt::Debug + Send + Sync + 'static>(input: Input) -> Result<T, BoxError> {
    input
        .downcast::<T>()
        .map_err(|_| "SqsJson's serializer was given another operation's input".into())
}

/// Room for the escapes a JSON body needs, so the buffer rarely grows.
fn capacity_for(body: &str) -> usize {
    256 + body.len() * 9 / 8
}

/// The body of the message at `index`: the call's shared one when it has [`Bodies`],
/// otherwise the input's own.
fn pick<'a>(
    own: &'a str,
    bodies: Option<&'a [MessageBody]>,
    index: usize,
) -> Result<&'a str, BoxError> {
    match bodies {
        None => Ok(own),
        Some(bodies) => bodies
            .get(index)
            .map(MessageBody::as_str)
            .ok_or_else(|| "a call has fewer bodies than messages".into()),
    }
}

/// `SendMessage`'s body, members in the order the SDK writes them.
fn single_body(
    input: &SendMessageInput,
    bodies: Option<&[MessageBody]>,
) -> Result<String, BoxError> {
    let body = pick(input.message_body.as_deref().unwrap_or_default(), bodies, 0)?;
    let mut out = String::with_capacity(capacity_for(body));
    out.push_str("{\"QueueUrl\":");
    string(&mut out, input.queue_url.as_deref().unwrap_or_default());
    write_message(
        &mut out,
        body,
        input.message_attributes.as_ref(),
        input.message_deduplication_id.as_deref(),
        input.message_group_id.as_deref(),
    );
    out.push('}');
    Ok(out)
}

/// `SendMessageBatch`'s body, members in the order the SDK writes them.
fn batch_body(
    input: &SendMessageBatchInput,
    bodies: Option<&[MessageBody]>,
) -> Result<String, BoxError> {
    let entries = input.entries.as_deref().unwrap_or_default();
    if bodies.is_some_and(|b| b.len() != entries.len()) {
        return Err("a call's bodies do not match its entries".into());
    }
    let guess: usize = (0..entries.len())
        .map(|i| capacity_for(pick(&entries[i].message_body, bodies, i).unwrap_or_default()))
        .sum();
    let mut out = String::with_capacity(64 + guess);
    out.push('{');
    if let Some(url) = &input.queue_url {
        out.push_str("\"QueueUrl\":");
        string(&mut out, url);
        out.push(',');
    }
    out.push_str("\"Entries\":[");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_entry(&mut out, entry, pick(&entry.message_body, bodies, i)?);
    }
    out.push_str("]}");
    Ok(out)
}

fn write_entry(out: &mut String, entry: &SendMessageBatchRequestEntry, body: &str) {
    out.push_str("{\"Id\":");
    string(out, &entry.id);
    write_message(
        out,
        body,
        entry.message_attributes.as_ref(),
        entry.message_deduplication_id.as_deref(),
        entry.message_group_id.as_deref(),
    );
    out.push('}');
}

/// The members a message has both in `SendMessage` and in a batch entry, in the SDK's
/// order, each after a comma (the caller wrote the member before them).
fn write_message(
    out: &mut String,
    body: &str,
    attributes: Option<&HashMap<String, MessageAttributeValue>>,
    deduplication_id: Option<&str>,
    group_id: Option<&str>,
) {
    out.push_str(",\"MessageBody\":");
    string(out, body);
    if let Some(attributes) = attributes {
        out.push_str(",\"MessageAttributes\":{");
        for (i, (name, value)) in attributes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, name);
            out.push_str(":{");
            if let Some(text) = &value.string_value {
                out.push_str("\"StringValue\":");
                string(out, text);
                out.push(',');
            }
            out.push_str("\"DataType\":");
            string(out, &value.data_type);
            out.push('}');
        }
        out.push('}');
    }
    if let Some(id) = deduplication_id {
        out.push_str(",\"MessageDeduplicationId\":");
        string(out, id);
    }
    if let Some(id) = group_id {
        out.push_str(",\"MessageGroupId\":");
        string(out, id);
    }
}

/// A JSON string, escaped as the SDK escapes it.
fn string(out: &mut String, value: &str) {
    // Writing into a `String` cannot fail.
    let _ = super::escape::write_string(out, value);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
    use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
    use aws_sdk_sqs::error::BoxError;
    use aws_sdk_sqs::operation::send_message::SendMessageInput;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
    use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
    use serde_json::Value;

    use super::SqsJson;

    /// Headers (the ones the serializer sets) and body of a request.
    type Sent = (Vec<(String, String)>, Vec<u8>);

    /// What a call would have sent. The call stops there.
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Option<Sent>>>);

    impl Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let request = context.request();
            let headers = [
                "content-type",
                "x-amz-target",
                "x-amzn-query-mode",
                "content-length",
            ]
            .iter()
            .map(|h| {
                let value = request.headers().get(*h).unwrap_or("<missing>");
                ((*h).to_owned(), value.to_owned())
            })
            .collect();
            let body = request.body().bytes().expect("an in-memory body").to_vec();
            *self.0.lock().unwrap() = Some((headers, body));
            Err("captured".into())
        }
    }

    const QUEUE_URL: &str = "https://sqs.eu-west-1.amazonaws.com/1/q \"x\".fifo";

    /// A client whose calls stop before sending, and what they would have sent.
    fn client(ours: bool) -> (aws_sdk_sqs::Client, Capture) {
        let capture = Capture::default();
        let mut config = aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "a", "b", None, None, "test",
            ))
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .interceptor(capture.clone());
        if ours {
            config = config.interceptor(SqsJson::default());
        }
        (aws_sdk_sqs::Client::from_conf(config.build()), capture)
    }

    fn taken(capture: &Capture) -> Sent {
        capture
            .0
            .lock()
            .unwrap()
            .take()
            .expect("a request was built")
    }

    async fn sent_batch(entries: Vec<SendMessageBatchRequestEntry>, ours: bool) -> Sent {
        let (client, capture) = client(ours);
        let result = client
            .send_message_batch()
            .queue_url(QUEUE_URL)
            .set_entries(Some(entries))
            .send()
            .await;
        assert!(result.is_err(), "the capture stops the call");
        taken(&capture)
    }

    async fn sent_single(entry: SendMessageBatchRequestEntry, ours: bool) -> Sent {
        let (client, capture) = client(ours);
        let result = client
            .send_message()
            .queue_url(QUEUE_URL)
            .message_body(entry.message_body)
            .set_message_attributes(entry.message_attributes)
            .set_message_deduplication_id(entry.message_deduplication_id)
            .set_message_group_id(entry.message_group_id)
            .send()
            .await;
        assert!(result.is_err(), "the capture stops the call");
        taken(&capture)
    }

    fn entry(id: &str, body: &str, attributes: &[(&str, &str)]) -> SendMessageBatchRequestEntry {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body)
            .message_group_id("group \u{e9}\"1\"")
            .message_deduplication_id(format!("dedup-{id}"));
        for (name, value) in attributes {
            entry = entry.message_attributes(*name, string_attribute(value));
        }
        entry.build().unwrap()
    }

    fn string_attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    }

    /// Every byte the escaping treats differently, and text around it.
    fn tricky_body() -> String {
        let controls: String = (0u8..0x20).map(char::from).collect();
        let del = '\u{7f}';
        format!(r#"{{"msg_id":"a\"b\\c","text":"Zoë Ångström 🚀 {controls} {del} end","n":1}}"#)
    }

    fn text(body: Vec<u8>) -> String {
        String::from_utf8(body).unwrap()
    }

    fn parsed(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    thread_local! {
        /// Requests written by [`super::Writer`] on this thread (a test's runtime runs the
        /// call on its own thread), so a test can tell that the SDK used it.
        pub(super) static WRITES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// The SDK really hands both operations to our writer (an SDK update could route
    /// around the serializer override, and the bodies alone could not tell).
    #[tokio::test]
    async fn the_sdk_uses_our_writer_only_when_installed() {
        let writes = || WRITES.with(std::cell::Cell::get);
        let message = || entry("0", "plain", &[]);
        let before = writes();
        sent_batch(vec![message()], false).await;
        sent_single(message(), false).await;
        assert_eq!(writes(), before, "not installed, not used");
        sent_batch(vec![message()], true).await;
        assert_eq!(writes(), before + 1, "SendMessageBatch");
        sent_single(message(), true).await;
        assert_eq!(writes(), before + 2, "SendMessage");
    }

    #[tokio::test]
    async fn the_requests_are_the_ones_the_sdk_would_send() {
        let entries = || {
            vec![
                entry("0", &tricky_body(), &[]),
                entry("1", "plain", &[]),
                entry("2", "\"", &[]),
            ]
        };
        let (sdk_headers, sdk_body) = sent_batch(entries(), false).await;
        let (our_headers, our_body) = sent_batch(entries(), true).await;
        assert_eq!(text(our_body), text(sdk_body));
        assert_eq!(our_headers, sdk_headers);

        let message = || entry("0", &tricky_body(), &[]);
        let (sdk_headers, sdk_body) = sent_single(message(), false).await;
        let (our_headers, our_body) = sent_single(message(), true).await;
        assert_eq!(text(our_body), text(sdk_body));
        assert_eq!(our_headers, sdk_headers);
    }

    /// The batch as the bridge sends it: empty bodies in the input, the real ones in
    /// [`super::Bodies`]. `None` when the call failed before it was transmitted.
    async fn sent_shared(entries: Vec<SendMessageBatchRequestEntry>, ours: bool) -> Option<Sent> {
        let (client, capture) = client(ours);
        let bodies = entries
            .iter()
            .map(|e| e.message_body.as_str().into())
            .collect();
        let placeholders = entries
            .into_iter()
            .map(|mut e| {
                e.message_body = String::new();
                e
            })
            .collect();
        let result = client
            .send_message_batch()
            .queue_url(QUEUE_URL)
            .set_entries(Some(placeholders))
            .customize()
            .interceptor(crate::sqs::wire::Bodies::new(bodies))
            .send()
            .await;
        assert!(result.is_err(), "the capture stops the call");
        capture.0.lock().unwrap().take()
    }

    #[tokio::test]
    async fn shared_bodies_are_written_in_place_of_the_inputs_own() {
        let entries = || {
            vec![
                entry("0", &tricky_body(), &[]),
                entry("1", "plain", &[]),
                entry("2", "\"", &[]),
            ]
        };
        let (sdk_headers, sdk_body) = sent_batch(entries(), false).await;
        let (our_headers, our_body) = sent_shared(entries(), true).await.expect("sent");
        assert_eq!(text(our_body), text(sdk_body));
        assert_eq!(our_headers, sdk_headers);
        // Without our writer the SDK would send the empty placeholders: the call must
        // fail before anything is transmitted.
        assert!(sent_shared(entries(), false).await.is_none());
    }

    #[tokio::test]
    async fn attributes_are_written_as_the_sdk_writes_them() {
        // Attribute maps are hashed with a random seed, so their order can differ between
        // two inputs: compare the parsed JSON (and the length, in the headers).
        let entries = || {
            vec![
                entry(
                    "0",
                    &tricky_body(),
                    &[("event_id", "e-\"1\""), ("event_type", "5")],
                ),
                entry("1", "x", &[("only", "\u{1}")]),
            ]
        };
        let (sdk_headers, sdk_body) = sent_batch(entries(), false).await;
        let (our_headers, our_body) = sent_batch(entries(), true).await;
        assert_eq!(parsed(&our_body), parsed(&sdk_body));
        assert_eq!(our_headers, sdk_headers);

        let message = || entry("0", "{}", &[("event_id", "1"), ("event_type", "\\")]);
        let (sdk_headers, sdk_body) = sent_single(message(), false).await;
        let (our_headers, our_body) = sent_single(message(), true).await;
        assert_eq!(parsed(&our_body), parsed(&sdk_body));
        assert_eq!(our_headers, sdk_headers);
    }

    #[test]
    fn members_it_does_not_write_leave_the_call_to_the_sdk() {
        let batch = |entry: SendMessageBatchRequestEntry| {
            SendMessageBatchInput::builder()
                .queue_url("q")
                .entries(entry)
                .build()
                .unwrap()
        };
        let single = |entry: SendMessageBatchRequestEntry| {
            SendMessageInput::builder()
                .queue_url("q")
                .message_body(entry.message_body)
                .set_delay_seconds(entry.delay_seconds)
                .set_message_attributes(entry.message_attributes)
                .build()
                .unwrap()
        };
        let ours = entry("0", "b", &[("a", "v")]);
        assert!(super::writable_batch(&batch(ours.clone())));
        assert!(super::writable_single(&single(ours.clone())));

        let mut delayed = ours.clone();
        delayed.delay_seconds = Some(5);
        assert!(!super::writable_batch(&batch(delayed.clone())));
        assert!(!super::writable_single(&single(delayed)));

        let mut binary = ours;
        binary.message_attributes = Some(
            [(
                "bin".to_owned(),
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![1]))
                    .build()
                    .unwrap(),
            )]
            .into(),
        );
        assert!(!super::writable_batch(&batch(binary.clone())));
        assert!(!super::writable_single(&single(binary)));
    }
}
