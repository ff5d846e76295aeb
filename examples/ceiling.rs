//! Benchmark reference: a plain actix-web handler that answers 200 without forwarding:
//! the ceiling for any bridge on this machine. `cargo run --release --example ceiling -- ADDR`

use actix_web::{App, HttpResponse, HttpServer, web};

async fn accept(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "accepted" }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    HttpServer::new(|| App::new().route("/webhook", web::post().to(accept)))
        .bind(addr)?
        .run()
        .await
}
