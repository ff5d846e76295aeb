//! FAKE DynamoDB for the event memory's benchmark: `cargo run --release --example
//! fake_dynamodb -- 127.0.0.1:8000`. It answers only the bridge's own item calls
//! (`PutItem`, `UpdateItem`, `GetItem` on any table name) and evaluates only the
//! expression forms the bridge writes (`attribute_not_exists(a) OR b < :v`,
//! `attribute_exists(a)`, `a = :v AND …`, `SET a = :v, …`), in memory. The tests use
//! moto's real DynamoDB implementation instead; this exists because moto, in Python,
//! answers about 150 calls/s on the benchmark machine and would hide the bridge's cost.

#[path = "../tests/support/fake_sqs.rs"]
mod fake_sqs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt as _;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Item = Map<String, Value>;
type Table = Arc<Mutex<HashMap<String, Item>>>;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    let table: Table = Arc::default();
    while let Ok((mut socket, _)) = listener.accept().await {
        let table = Arc::clone(&table);
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buffer = Vec::with_capacity(8 * 1024);
            while let Some((target, body, used)) =
                fake_sqs::read_request(&mut socket, &mut buffer).await
            {
                buffer.drain(..used);
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (status, answer) = handle(&table, &target, &request);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn handle(table: &Table, target: &str, request: &Value) -> (u16, String) {
    let values = request["ExpressionAttributeValues"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let names = request["ExpressionAttributeNames"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let condition = request["ConditionExpression"].as_str().unwrap_or("");
    let mut items = table.lock().unwrap();
    match target.rsplit('.').next().unwrap_or("") {
        "PutItem" => {
            let item = request["Item"].as_object().cloned().unwrap_or_default();
            let id = key(&item);
            let old = items.get(&id);
            if !condition.is_empty() && !holds(condition, old, &values, &names) {
                return failed(old);
            }
            items.insert(id, item);
            (200, "{}".into())
        }
        "UpdateItem" => {
            let key_item = request["Key"].as_object().cloned().unwrap_or_default();
            let id = key(&key_item);
            let old = items.get(&id);
            if !condition.is_empty() && !holds(condition, old, &values, &names) {
                return failed(old);
            }
            let mut item = old.cloned().unwrap_or(key_item);
            let update = request["UpdateExpression"].as_str().unwrap_or("");
            for assignment in update.trim_start_matches("SET ").split(',') {
                if let Some((name, value)) = assignment.split_once('=') {
                    let name = resolve(name.trim(), &names);
                    item.insert(name, values[value.trim()].clone());
                }
            }
            items.insert(id, item);
            (200, "{}".into())
        }
        "GetItem" => (200, "{}".into()),
        "ListTables" => (200, json!({"TableNames": ["bench-events"]}).to_string()),
        other => (
            400,
            json!({"__type": format!("UnknownOperation: {other}")}).to_string(),
        ),
    }
}

fn key(item: &Item) -> String {
    item.get("id").map(ToString::to_string).unwrap_or_default()
}

fn resolve(name: &str, names: &Map<String, Value>) -> String {
    names
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_owned()
}

fn failed(old: Option<&Item>) -> (u16, String) {
    let mut answer = json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "The conditional request failed"});
    if let Some(old) = old {
        answer["Item"] = Value::Object(old.clone());
    }
    (400, answer.to_string())
}

/// The bridge's condition forms only: `OR` of terms, or `AND` of terms.
fn holds(condition: &str, item: Option<&Item>, values: &Item, names: &Item) -> bool {
    if condition.contains(" OR ") {
        return condition
            .split(" OR ")
            .any(|t| term(t.trim(), item, values, names));
    }
    condition
        .split(" AND ")
        .all(|t| term(t.trim(), item, values, names))
}

fn term(term: &str, item: Option<&Item>, values: &Item, names: &Item) -> bool {
    let attribute = |name: &str| item.and_then(|i| i.get(&resolve(name, names)));
    if let Some(name) = term.strip_prefix("attribute_not_exists(") {
        return attribute(name.trim_end_matches(')')).is_none();
    }
    if let Some(name) = term.strip_prefix("attribute_exists(") {
        return attribute(name.trim_end_matches(')')).is_some();
    }
    let number = |v: Option<&Value>| v.and_then(|v| v["N"].as_str()?.parse::<i64>().ok());
    if let Some((name, value)) = term.split_once(" < ") {
        return match (number(attribute(name)), number(values.get(value))) {
            (Some(a), Some(b)) => a < b,
            _ => false,
        };
    }
    if let Some((name, value)) = term.split_once(" = ") {
        return attribute(name) == values.get(value);
    }
    false
}
