# hydro services — developer and CI entry points. `make` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The services the binaries and tests talk to (scripts/local-services.sh provides them).
DATABASE_URL ?= postgres://hydro:hydro@127.0.0.1:5432/hydro_dev
REDIS_URL ?= redis://127.0.0.1:6379
MQTT_HOST ?= 127.0.0.1
MQTT_PORT ?= 1883
export DATABASE_URL REDIS_URL MQTT_HOST MQTT_PORT

CARGO ?= cargo
# `make test` runs each test binary through scripts/test-times.sh (cargo's
# runner for this host) to report the slowest tests.
TEST_RUNNER := CARGO_TARGET_$(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p' | tr 'a-z.-' 'A-Z__')_RUNNER
# Every bench-* target below; `make bench` runs them all.
BENCH_TARGETS := $(shell sed -n 's/^\(bench-[a-z0-9-]*\):.*/\1/p' $(firstword $(MAKEFILE_LIST)))

.PHONY: help services build test promtool-test pytest-compat sqlx-prepare up down bench $(BENCH_TARGETS) fmt lint

help: ## List the targets
	@echo "usage: make TARGET"
	@sed -n 's/^\([a-z0-9-]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 18

services: ## Install/start PostgreSQL, Redis and the MQTT brokers 1883-1885 (idempotent)
	@scripts/local-services.sh

build: ## Build the workspace, all targets (debug)
	$(CARGO) build --workspace --all-targets

test: services ## Build, run cargo tests and the pytest-compat suite against the real services; prints the slowest tests
	scripts/toolchain-check.py
	scripts/promtool-test.sh
	$(CARGO) build --workspace --all-targets
	rm -rf target/test-times
	$(TEST_RUNNER)=$(CURDIR)/scripts/test-times.sh $(CARGO) test --workspace
	@scripts/test-times.sh --report
	scripts/pytest-compat.sh --durations=10

compose-test: ## Both compose files as a user runs them (Docker from Debian; stand-in images where no registry answers): healthy, a command DONE, telemetry, a broker killed with 0 readings lost, down -v clean; prod refused without secrets
	scripts/compose-test.sh

promtool-test: ## Check deploy/prometheus/ (config, alert rules and their unit tests); installs promtool if missing
	scripts/promtool-test.sh

pytest-compat: ## Run only pytest-compat/ (needs target/debug/{mqtt-bridge,node-sim})
	scripts/pytest-compat.sh

up: services ## Build release binaries and run the services on brokers 1883-1885 in the foreground
	$(CARGO) build --release -p mqtt-bridge -p node-sim -p history-logger -p broker-registry -p failover -p automation-engine -p scheduler -p device-registry
	scripts/up.sh

down: ## Stop what `make up` started (if Ctrl-C did not)
	@scripts/down.sh

bench: $(BENCH_TARGETS) ## Run every benchmark

bench-commands: services ## Benchmark the REST -> MQTT command path
	$(CARGO) bench -p mqtt-bridge --bench commands --no-run
	sync  # the build's writeback would otherwise compete with PostgreSQL's fsyncs
	$(CARGO) bench -p mqtt-bridge --bench commands

bench-ingest: services ## Benchmark node uplink -> history-logger -> PostgreSQL (BENCH_RATE, BENCH_SECONDS)
	$(CARGO) build --release -p history-logger
	$(CARGO) bench -p history-logger --bench ingest --no-run
	sync  # the build's writeback would otherwise compete with PostgreSQL's fsyncs
	$(CARGO) bench -p history-logger --bench ingest

bench-automation: services ## Benchmark automation cycles over 1,000 zones with recipes and telemetry (BENCH_ZONES)
	$(CARGO) build --release -p automation-engine
	$(CARGO) bench -p automation-engine --bench cycle --no-run
	sync  # the build's writeback would otherwise compete with PostgreSQL's fsyncs
	$(CARGO) bench -p automation-engine --bench cycle

bench-failover: services ## Failover: 300 nodes on 3 private brokers, one killed; recovery time, readings lost/duplicated, failed commands
	$(CARGO) bench -p failover --bench failover --no-run
	$(CARGO) bench -p failover --bench failover

fmt: ## Check formatting
	$(CARGO) fmt --all -- --check

lint: services ## Clippy, warnings are errors; .sqlx/ (the checked queries' offline data) matches the code and migrations
	$(CARGO) clippy --all-targets -- -D warnings
	scripts/sqlx-prepare.sh --check

sqlx-prepare: services ## Regenerate .sqlx/ (offline data of the compile-time checked queries) from a freshly migrated database
	scripts/sqlx-prepare.sh
