#!/usr/bin/env bash
# `make compose-test`: the compose files, run as a user runs them.
#
# 1. Docker, Compose and debootstrap from Debian if missing; dockerd started
#    if none answers.
# 2. Images: the hydro image from binaries built here (`--target prebuilt`;
#    the Dockerfile's default target builds from source);
#    postgres:15, redis:7, eclipse-mosquitto:2 and debian:bookworm-slim are
#    pulled, or, where no registry answers, stand-ins are built from a
#    debootstrapped Debian (tests/compose/standins/) under the same names,
#    so the compose files run unchanged. Docker keeps them: later runs reuse
#    them.
# 3. The dev file, as the README runs it (no settings: its dev defaults):
#    every container healthy; the README's command ends DONE; the dashboard
#    answers; Prometheus scrapes every service; telemetry lands; a broker
#    killed loses no reading; `down -v` leaves no container, volume or network.
# 4. The prod file: refused without its secrets; with them (generated) and a
#    TLS certificate, every container healthy, two instances of each
#    scalable service, MQTT over TLS answering with the same accounts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=${HYDRO_COMPOSE_CACHE:-/var/cache/hydro-compose}
PROJECT=hydro-ct
# The dev file publishes PostgreSQL, Redis and its brokers on ports apart from
# this machine's own (15432, 16379, 11883-11885); the prod file publishes its
# brokers on the usual ones, so they move here.
PROD_PORTS=(HYDRO_MQTT1_PORT=21883 HYDRO_MQTT2_PORT=21884 HYDRO_MQTT3_PORT=21885
    HYDRO_MQTTS1_PORT=28883 HYDRO_MQTTS2_PORT=28884 HYDRO_MQTTS3_PORT=28885)
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo

say() { printf '== compose-test: %s\n' "$*"; }
fail() {
    printf 'compose-test FAILED: %s\n' "$*" >&2
    exit 1
}

ensure_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker >/dev/null || missing+=(docker.io)
    docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! docker info >/dev/null 2>&1; then
        say "starting dockerd"
        $SUDO mkdir -p "$CACHE"
        (nohup $SUDO dockerd >"$CACHE/dockerd.log" 2>&1 &)
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || fail "dockerd did not start (see $CACHE/dockerd.log)"
    fi
}

# Compose v2 where there is one, else v1: both read the same files.
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -p "$PROJECT" "$@"
    else
        docker-compose -p "$PROJECT" "$@"
    fi
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

pull() { timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

ensure_base() {
    have_image debian:bookworm-slim && return
    pull debian:bookworm-slim && return
    say "no registry: debian:bookworm-slim from debootstrap (cached in $CACHE)"
    if [[ ! -f $CACHE/rootfs.tar ]]; then
        $SUDO rm -rf "$CACHE/rootfs"
        $SUDO mkdir -p "$CACHE"
        $SUDO debootstrap --variant=minbase bookworm "$CACHE/rootfs" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
            fail "debootstrap failed (see $CACHE/debootstrap.log)"
        $SUDO tar -C "$CACHE/rootfs" -cf "$CACHE/rootfs.tar.tmp" . && $SUDO mv "$CACHE/rootfs.tar.tmp" "$CACHE/rootfs.tar"
        $SUDO rm -rf "$CACHE/rootfs"
    fi
    docker import -c 'CMD ["bash"]' "$CACHE/rootfs.tar" debian:bookworm-slim >/dev/null
}

# ensure_image NAME STANDIN: the real NAME (present or pulled), else the
# stand-in built from tests/compose/standins/STANDIN, labelled with a hash of
# that folder so that a changed stand-in is built again.
ensure_image() {
    local dir=tests/compose/standins/$2 hash label
    # The files' names and contents only: a fresh clone has other mtimes.
    hash=$(cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
    if have_image "$1"; then
        label=$(docker image inspect -f '{{index .Config.Labels "hydro.standin"}}' "$1")
        [[ -z $label || $label == "$hash" ]] && return
    elif pull "$1"; then
        return
    fi
    say "no registry: $1 built from $dir"
    docker build -q --label "hydro.standin=$hash" -t "$1" "$dir" >/dev/null
}

# The debug build `make test` has made already (CI builds once); stripped,
# it is small enough to copy into an image.
build_hydro_image() {
    say "the hydro image from this checkout's binaries (cargo build --bins)"
    cargo build --locked --bins -q
    rm -rf tests/compose/bin && mkdir -p tests/compose/bin
    for bin in mqtt-bridge history-logger automation-engine scheduler broker-registry failover node-sim device-registry; do
        strip -o "tests/compose/bin/$bin" "target/debug/$bin"
    done
    docker build -q --target prebuilt -t hydro:latest . >/dev/null
}

# Waits until every container of the project is running and, where it has a
# health check, healthy.
wait_healthy() {
    local deadline=$((SECONDS + ${1:-240})) ids states
    while ((SECONDS < deadline)); do
        ids=$(compose "${FILES[@]}" ps -q)
        states=$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}' $ids)
        if ! grep -qv ' running healthy$' <<<"$states"; then
            say "all $(wc -l <<<"$states") containers healthy"
            return 0
        fi
        sleep 3
    done
    echo "$states" >&2
    compose "${FILES[@]}" logs --tail 30 >&2 || true
    fail "not every container became healthy"
}

psql_count() {
    compose "${FILES[@]}" exec -T postgres psql -U hydro -d "$1" -tAc "$2" | tr -d '[:space:]'
}

# The README's command: POST, then follow it to a final status.
command_ends_done() {
    local token=$1 body id status
    body=$(curl -fsS -X POST http://127.0.0.1:9000/bridge/zones/zn-1/commands \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"duration_ms":2000}}') ||
        fail "POST /bridge/zones/zn-1/commands refused"
    id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["command_id"])' <<<"$body")
    for _ in $(seq 60); do
        status=$(curl -fsS "http://127.0.0.1:9000/bridge/commands/$id" -H "Authorization: Bearer $token" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["status"])')
        case $status in
        DONE) say "command $id: DONE"; return 0 ;;
        FAILED | TIMEOUT | INVALID | BUSY | NO_EFFECT) fail "command $id ended $status" ;;
        esac
        sleep 1
    done
    fail "command $id not final after 60 s (last $status)"
}

telemetry_lands() {
    local db=$1 before after
    before=$(psql_count "$db" 'select count(*) from telemetry_samples')
    for _ in $(seq 60); do
        after=$(psql_count "$db" 'select count(*) from telemetry_samples')
        if ((after > before)); then
            say "telemetry landing ($before → $after rows)"
            return 0
        fi
        sleep 1
    done
    fail "no telemetry stored in 60 s ($before rows)"
}

rows() { psql_count "$1" 'select count(*) from telemetry_samples'; }

dashboard_answers() {
    local page
    page=$(curl -fsS --max-time 5 http://127.0.0.1:9403/) && grep -qi '<html' <<<"$page" ||
        fail "the dashboard (http://127.0.0.1:9403/) did not answer with a page"
    say "the dashboard answers"
}

# Every service of the file is a Prometheus target, and every target is up.
prometheus_scrapes_all() {
    local report
    for _ in $(seq 60); do
        report=$(curl -fsS --max-time 5 http://127.0.0.1:9090/api/v1/targets 2>/dev/null | python3 -c '
import json, sys
want = {"mqtt-bridge", "history-logger", "automation-engine", "scheduler",
        "broker-registry", "failover", "device-registry", "node-sim"}
targets = json.load(sys.stdin)["data"]["activeTargets"]
up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
down = sorted(t["scrapeUrl"] for t in targets if t["health"] != "up")
missing = sorted(want - up)
print("ok %d" % len(targets) if not missing and not down else "missing=%s down=%s" % (missing, down))
' 2>/dev/null) || report="no answer"
        if [[ $report == ok* ]]; then
            say "Prometheus scrapes every service (${report#ok } targets up)"
            return 0
        fi
        sleep 2
    done
    fail "Prometheus does not scrape every service: $report"
}

# One broker killed (SIGKILL): its nodes are moved and confirmed elsewhere,
# and once node-sim has stopped (sending what it buffered) and the logger
# has drained, every reading made is stored once: node-sim's totals at stop
# against the rows.
failover_loses_nothing() {
    local db=$1 victim=mqtt2 on_victim=0
    # broker-registry assigns new nodes by priority, then its rebalance
    # (every 60 s) spreads them: wait until some are confirmed on the victim.
    for _ in $(seq 180); do
        on_victim=$(psql_count "$db" "select count(*) from node_broker_assignments where broker_id = '$victim' and confirmed_at is not null")
        ((on_victim > 0)) && break
        sleep 1
    done
    ((on_victim > 0)) || fail "no node confirmed on $victim within 180 s, nothing to move"
    say "killing $victim ($on_victim nodes)"
    compose "${FILES[@]}" kill -s KILL "$victim" >/dev/null 2>&1
    local moved=""
    for _ in $(seq 120); do
        moved=$(psql_count "$db" "select (select count(*) from node_broker_assignments where broker_id = '$victim' or confirmed_at is null) = 0 \
            and exists (select 1 from failover_events where broker_id = '$victim' and finished_at is not null)")
        [[ $moved == t ]] && break
        sleep 1
    done
    [[ $moved == t ]] || fail "the nodes of $victim were not moved within 120 s"
    say "its nodes moved and confirmed on the other brokers"
    sleep 5
    compose "${FILES[@]}" stop -t 30 node-sim >/dev/null 2>&1
    local totals
    totals=$(compose "${FILES[@]}" logs --no-color node-sim 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | grep 'Telemetry totals' | tail -n 1)
    [[ -n $totals ]] || fail "node-sim logged no telemetry totals at stop"
    local generated dropped repeated
    generated=$(grep -o 'generated=[0-9]*' <<<"$totals" | cut -d= -f2)
    dropped=$(grep -o 'buffer_dropped=[0-9]*' <<<"$totals" | cut -d= -f2)
    repeated=$(grep -o 'repeated_keys=[0-9]*' <<<"$totals" | cut -d= -f2)
    local last=-1 n still=0
    for _ in $(seq 120); do
        n=$(rows "$db")
        if [[ $n == "$last" ]]; then still=$((still + 1)); else still=0; last=$n; fi
        ((still >= 5)) && break
        sleep 1
    done
    local expected=$((generated - dropped - repeated))
    say "readings made $generated ($dropped dropped from full buffers, $repeated repeated keys): $expected should land; rows $n"
    ((dropped == 0)) || fail "$dropped readings dropped from full node buffers"
    ((n == expected)) || fail "$((expected - n)) readings lost (negative: duplicated)"
    say "0 readings lost across the failover"
}

leaves_nothing() {
    compose "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1
    local left
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"
        docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"
        docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
    [[ -z $left ]] || fail "down -v left: $left"
    say "down -v left nothing"
}

dev_file() {
    FILES=(-f docker-compose.dev.yml)
    say "dev file: up"
    compose "${FILES[@]}" up -d --no-build >/dev/null 2>&1 || { compose "${FILES[@]}" up -d --no-build || true; fail "dev up"; }
    wait_healthy 300
    command_ends_done dev-token
    dashboard_answers
    prometheus_scrapes_all
    telemetry_lands hydro_dev
    failover_loses_nothing hydro_dev
    leaves_nothing
}

prod_file() {
    FILES=(-f docker-compose.prod.yml)
    say "prod file: refused without its secrets"
    local out
    if out=$(env -i PATH="$PATH" HOME="$HOME" bash -c "$(declare -f compose); PROJECT=$PROJECT compose -f docker-compose.prod.yml config -q" 2>&1); then
        fail "the prod file started without its secrets"
    fi
    grep -q "BRIDGE_API_TOKEN\|MQTT_ADMIN_PASS\|PG_PASS\|NODE_DEFAULT_SECRET" <<<"$out" ||
        fail "the refusal does not name the missing secret: $out"
    say "refused: $(head -n 1 <<<"$out")"
    local env=$CACHE/prod.env tls=$CACHE/tls
    # A self-signed certificate for the brokers' TLS listener; the key is
    # root's alone (0600), as an operator keeps it.
    $SUDO rm -rf "$tls" && $SUDO mkdir -p "$tls"
    $SUDO openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$tls/server.key" -out "$tls/server.crt" 2>/dev/null
    $SUDO chmod 600 "$tls/server.key"
    { cat "$SECRETS"
      echo "BRIDGE_API_TOKEN=$(openssl rand -hex 16)"
      echo "NODE_DEFAULT_SECRET=$(openssl rand -hex 16)"
      echo "PG_PASS=$(openssl rand -hex 16)"
      echo "HYDRO_MQTT_TLS_DIR=$tls"
      echo "MQTT_TLS_CERTFILE=/hydro-tls/server.crt"
      echo "MQTT_TLS_KEYFILE=/hydro-tls/server.key"
      printf '%s\n' "${PROD_PORTS[@]}"
    } | $SUDO tee "$env" >/dev/null
    FILES=(--env-file "$env" -f docker-compose.prod.yml)
    say "prod file: up with them"
    compose "${FILES[@]}" up -d --no-build >/dev/null 2>&1 || { compose "${FILES[@]}" up -d --no-build || true; fail "prod up"; }
    wait_healthy 300
    local service
    for service in mqtt-bridge history-logger automation-engine scheduler broker-registry failover; do
        [[ -n $(compose "${FILES[@]}" ps -q "$service-2") ]] || fail "no second instance of $service"
    done
    say "two instances of each scalable service"
    compose "${FILES[@]}" exec -T mqtt1 sh -c 'mosquitto_sub -h localhost -p 8883 --cafile /hydro-tls/server.crt \
        -u hydro-broker-registry -P "$MQTT_PASS_BROKER_REGISTRY" -t "\$SYS/broker/version" -C 1 -W 5' >/dev/null ||
        fail "the brokers' TLS listener (8883) did not answer a login"
    say "MQTT over TLS answers on 8883 with the same accounts"
    leaves_nothing
}

started=$SECONDS
ensure_tools
scripts/mqtt-secrets.sh >/dev/null
SECRETS=$ROOT/.run/secrets/mqtt.env
ensure_base
ensure_image postgres:15 postgres
ensure_image redis:7 redis
ensure_image eclipse-mosquitto:2 mosquitto
ensure_image prom/prometheus:v2.42.0 prometheus
build_hydro_image
# A run that stopped half-way leaves its project behind (left up to be
# looked at): containers, volumes and networks of either file go first.
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
[[ -z $left ]] || docker rm -f $left >/dev/null
for kind in volume network; do
    left=$(docker "$kind" ls -q --filter "label=com.docker.compose.project=$PROJECT")
    [[ -z $left ]] || docker "$kind" rm $left >/dev/null
done
dev_file
prod_file
say "passed in $((SECONDS - started)) s"
