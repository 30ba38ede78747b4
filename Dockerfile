# Multi-stage build of the hydro services. One image holds every binary; each
# compose service picks its binary with `command:` (e.g. `command: ["mqtt-bridge"]`).
#   docker build -t hydro .
FROM rust:1.88-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY services services
COPY migrations migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cd target/release \
 && cp mqtt-bridge history-logger automation-engine scheduler broker-registry failover node-sim device-registry /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home hydro
COPY --from=builder /out/ /usr/local/bin/
USER hydro
ENV LOG_FORMAT=json RUST_LOG=info
# Overridden per service by compose `command:`.
CMD ["mqtt-bridge"]
