# syntax=docker/dockerfile:1
# The bridge as a small image that runs as a non-root user.
#
#   docker build -t webhook-sqs-bridge .
#   docker run --rm -p 8080:8080 -e BRIDGE_QUEUE_URL=https://sqs.../events.fifo \
#     -e BRIDGE_API_KEYS=... -e AWS_REGION=... webhook-sqs-bridge
#
# compose.yaml runs it against LocalStack; infra/service.yaml runs it on ECS Fargate.

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
# The whole context (.dockerignore leaves out target/, .tools/ and .git/): the manifest
# names targets in several directories. The cache mounts keep the crate registry and
# compiled dependencies between builds; the binary is copied out of the cached target/.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin webhook-sqs-bridge \
    && install -D -m 0755 target/release/webhook-sqs-bridge /out/webhook-sqs-bridge

FROM debian:bookworm-slim
# ca-certificates: TLS to AWS. No curl: health checks run the binary's own `healthcheck`.
# DL3008 (unpinned apt versions) is off: bookworm's archive drops superseded versions, so
# exact pins would break rebuilds; the base image tag fixes the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --no-create-home --shell /usr/sbin/nologin bridge \
    && install -d -o 10001 -g 10001 -m 0750 /var/spool/webhook-sqs-bridge
COPY --from=builder /out/webhook-sqs-bridge /usr/local/bin/webhook-sqs-bridge

ENV BRIDGE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# Where the spool goes when BRIDGE_SPOOL_DIR points here: a volume, so that events kept
# during an SQS outage outlive the container (README, "Riding out SQS outages").
VOLUME /var/spool/webhook-sqs-bridge
# Numeric, so platforms that enforce "run as non-root" can verify it.
USER 10001:10001
# Liveness only: `healthcheck` asks /healthz on loopback, at the port and with the TLS
# setting of the container's own configuration (BRIDGE_LISTEN, BRIDGE_TLS_CERT; a
# settings file as BRIDGE_CONFIG, which it sees, not --config, which it doesn't).
# Load balancers should ask /readyz (the queue answers); `healthcheck --ready` does the same.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/webhook-sqs-bridge", "healthcheck", "--timeout-ms", "2500"]
# SIGTERM (the default stop signal) makes the bridge drain in-flight forwards for up to
# BRIDGE_SHUTDOWN_TIMEOUT_S (30 s) before it exits.
ENTRYPOINT ["/usr/local/bin/webhook-sqs-bridge"]
CMD ["serve"]
