//! Benchmark reference: the naive forwarder. A plain actix-web handler making one
//! `SendMessage` call per request, no authentication or validation: what the bridge is
//! compared against. `cargo run --release --example naive_forwarder -- ADDR QUEUE_URL`
//! (SQS endpoint and credentials from the standard AWS variables).

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};

struct Forwarder {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    counter: AtomicU64,
}

async fn forward(body: web::Bytes, state: web::Data<Forwarder>) -> HttpResponse {
    let dedup = state.counter.fetch_add(1, Ordering::Relaxed).to_string();
    let sent = state
        .client
        .send_message()
        .queue_url(&state.queue_url)
        .message_body(String::from_utf8_lossy(&body))
        .message_group_id("EventSetup_1")
        .message_deduplication_id(format!("naive-{}-{dedup}", std::process::id()))
        .send()
        .await;
    match sent {
        Ok(out) => HttpResponse::Ok().json(serde_json::json!({ "message_id": out.message_id })),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8082".to_owned());
    let queue_url = args.next().expect("QUEUE_URL");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let state = web::Data::new(Forwarder {
        client: aws_sdk_sqs::Client::new(&config),
        queue_url,
        counter: AtomicU64::new(0),
    });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/webhook", web::post().to(forward))
    })
    .bind(addr)?
    .run()
    .await
}
