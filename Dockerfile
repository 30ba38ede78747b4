# Multi-stage build of the hydro services. One image holds every binary; each
# compose service picks its binary with `command:` (e.g. `command: ["mqtt-bridge"]`).
#   docker build -t hydro .                      from source (the default)
#   docker build --target prebuilt -t hydro .    binaries built on the host,
#       copied from tests/compose/bin/ (what `make compose-test` does where no
#       Rust image can be pulled)
# The builder's Rust is the workspace's rust-version (Cargo.toml), the one
# source of truth: `make test` fails when they differ or when a locked
# dependency needs a newer compiler (scripts/toolchain-check.py).
ARG RUST_VERSION=1.95

# What every service image is: Debian slim, curl for the health check, a
# user without a home or a shell of its own.
FROM debian:bookworm-slim AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home hydro
COPY deploy/healthcheck.sh /usr/local/bin/hydro-healthcheck
USER hydro
ENV LOG_FORMAT=json RUST_LOG=info
# GET /health on the service's port (HTTP_PORT, else the binary's default).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 CMD ["hydro-healthcheck"]
# Overridden per service by compose `command:`.
CMD ["mqtt-bridge"]

# Before the builder, so that `--target prebuilt` never needs a Rust image.
FROM base AS prebuilt
COPY tests/compose/bin/ /usr/local/bin/

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY .sqlx .sqlx
COPY crates crates
COPY services services
COPY tests/system tests/system
COPY migrations migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cd target/release \
 && cp mqtt-bridge history-logger automation-engine scheduler broker-registry failover node-sim device-registry /out/

FROM base AS runtime
COPY --from=builder /out/ /usr/local/bin/
