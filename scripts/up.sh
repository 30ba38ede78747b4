#!/usr/bin/env bash
# Run the demo stack in the foreground, on the three local brokers
# (1883-1885): broker-registry (registers them, assigns nodes, dashboard),
# failover (moves the nodes of a dead broker), node-sim (seeds the database,
# then simulates the greenhouse nodes), history-logger (stores their uplink)
# and mqtt-bridge, then automation-engine (pH/EC correction) and scheduler
# (irrigation, lighting) following node-sim's demo recipe, and device-registry
# (unbound nodes, binds by NodeConfig push), from target/release.
# Each service logs in to the brokers with its own account (MQTT_USER /
# MQTT_PASS from .run/secrets/mqtt.env, which scripts/broker.sh provisions);
# device-registry also gets the dynsec admin login to create node accounts.
# Logs go to .run/logs/<service>.log, pid files to .run/pids/<service>.pid.
# Ctrl-C (or SIGTERM) stops both. PostgreSQL, Redis and the brokers are the
# machine's services (scripts/local-services.sh) and keep running.
#
# `make up` builds the binaries and starts the services first; `make down`
# stops what this script started if it was not stopped with Ctrl-C.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN_DIR=${HYDRO_BIN_DIR:-$ROOT/target/release}
LOG_DIR=$RUN_DIR/logs
PID_DIR=$RUN_DIR/pids
BRIDGE_PORT=9000
SIM_PORT=9405
LOGGER_PORT=9300
REGISTRY_PORT=9403
FAILOVER_PORT=9404
AUTOMATION_PORT=9401
SCHEDULER_PORT=9402
DEVICE_PORT=9406
BROKERS=mqtt1=mqtt://127.0.0.1:1883,mqtt2=mqtt://127.0.0.1:1884,mqtt3=mqtt://127.0.0.1:1885
TOKEN=${BRIDGE_API_TOKEN:-$(dev_api_token)}

export DATABASE_URL=${DATABASE_URL:-postgres://hydro:hydro@127.0.0.1:5432/hydro_dev}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export MQTT_HOST=${MQTT_HOST:-127.0.0.1}
export MQTT_PORT=${MQTT_PORT:-1883}
export RUST_LOG=${RUST_LOG:-info}

SERVICES=(broker-registry failover node-sim history-logger mqtt-bridge automation-engine scheduler device-registry)
for bin in "${SERVICES[@]}"; do
    [ -x "$BIN_DIR/$bin" ] || { echo "missing $BIN_DIR/$bin: run 'make up' (it builds them)" >&2; exit 1; }
done
command -v curl >/dev/null || apt_install curl ca-certificates
[ -s "$MQTT_SECRETS" ] || { echo "missing $MQTT_SECRETS: run 'make services' first" >&2; exit 1; }
OPS_LOGIN=(-u hydro-ops -P "$(mqtt_secret MQTT_PASS_OPS)")

mkdir -p "$LOG_DIR" "$PID_DIR"
for name in "${SERVICES[@]}"; do
    if [ -f "$PID_DIR/$name.pid" ] && kill -0 "$(cat "$PID_DIR/$name.pid")" 2>/dev/null; then
        echo "$name is already running (pid $(cat "$PID_DIR/$name.pid")): run 'make down' first" >&2
        exit 1
    fi
done

# The registry leaves retained nodes/{node}/config/update messages on the
# brokers; other node-sim runs with the same node uids (pytest-compat, the
# benchmarks) would follow them. Cleared once the services are stopped.
clear_retained_moves() {
    local port topic
    for port in 1883 1884 1885; do
        { mosquitto_sub -h 127.0.0.1 -p "$port" "${OPS_LOGIN[@]}" -t 'nodes/+/config/update' --retained-only \
            -W 1 -F '%t' 2>/dev/null || true; } | while read -r topic; do
            mosquitto_pub -h 127.0.0.1 -p "$port" "${OPS_LOGIN[@]}" -r -n -q 1 -t "$topic" 2>/dev/null || true
        done
    done
}

STARTED=()
stop_all() {
    trap - INT TERM
    local i
    [ ${#STARTED[@]} -gt 0 ] || return 0
    # Reverse start order: the bridge first, then the nodes it talks to.
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        stop_pidfile "$PID_DIR/${STARTED[i]}.pid" "${STARTED[i]}"
    done
    STARTED=()
    clear_retained_moves
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

# start NAME PORT [VAR=VALUE...] — start a binary in the background and wait for its /health.
start() {
    local name=$1 port=$2 pid; shift 2
    : >"$LOG_DIR/$name.log"
    # The login goes in through the environment, never argv (ps shows argv).
    (
        export MQTT_USER="hydro-$name"
        MQTT_PASS=$(mqtt_secret "$(mqtt_pass_var "$name")")
        export MQTT_PASS
        if [ "$name" = device-registry ]; then
            # It creates the node accounts on every broker (dynsec admin).
            MQTT_ADMIN_USER=$(mqtt_secret MQTT_ADMIN_USER) MQTT_ADMIN_PASS=$(mqtt_secret MQTT_ADMIN_PASS)
            export MQTT_ADMIN_USER MQTT_ADMIN_PASS
        fi
        if [ "$name" = device-registry ] || [ "$name" = node-sim ]; then
            # The login of unbound nodes (pushed back to a node on unbind;
            # node-sim's firmware-mode nodes use it before their bind).
            MQTT_PROVISION_USER=$(mqtt_secret MQTT_PROVISION_USER) MQTT_PROVISION_PASS=$(mqtt_secret MQTT_PROVISION_PASS)
            export MQTT_PROVISION_USER MQTT_PROVISION_PASS
        fi
        exec env "$@" HTTP_PORT="$port" "$BIN_DIR/$name" >>"$LOG_DIR/$name.log" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$PID_DIR/$name.pid"
    STARTED+=("$name")
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            if kill -0 "$pid" 2>/dev/null; then
                echo "$name: /health on :$port not 200 after 60 s; log tail:" >&2
            else
                echo "$name exited during start; log tail:" >&2
            fi
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            exit 1
        fi
        sleep 0.3
    done
    echo "$name up (pid $pid, http://127.0.0.1:$port, log $LOG_DIR/$name.log)"
}

# The registry first: it registers the three brokers every other service follows.
start broker-registry "$REGISTRY_PORT" MQTT_BROKERS="$BROKERS" BROKER_REGISTRY_API_TOKEN="$TOKEN"
start failover "$FAILOVER_PORT"
# device-registry before node-sim: it creates each node's broker account
# (node-sim seeds the nodes with their passwords; the sync every 5 s here picks
# them up, and node-sim's nodes log in as soon as their accounts exist).
start device-registry "$DEVICE_PORT" BRIDGE_API_TOKEN="$TOKEN" DEVICE_ACCOUNT_SYNC_SEC=5
# Each simulated node logs in with its own account (seeded with its password).
start node-sim "$SIM_PORT" SIM_API_TOKEN="$TOKEN" SIM_SEED_DB=true SIM_SEED_RECIPE=true SIM_ZONES=3 SIM_NODES=20 \
    SIM_BROKER_URLS=mqtt://127.0.0.1:1883,mqtt://127.0.0.1:1884,mqtt://127.0.0.1:1885
start history-logger "$LOGGER_PORT"
start mqtt-bridge "$BRIDGE_PORT" BRIDGE_API_TOKEN="$TOKEN"
start automation-engine "$AUTOMATION_PORT"
start scheduler "$SCHEDULER_PORT"

cat <<EOF

  dashboard    http://127.0.0.1:$REGISTRY_PORT/   (brokers, load, assignments, failovers; JSON under /api)
  bridge API   http://127.0.0.1:$BRIDGE_PORT      (token: $TOKEN)
  metrics      http://127.0.0.1:$BRIDGE_PORT/metrics   http://127.0.0.1:$SIM_PORT/metrics   http://127.0.0.1:$LOGGER_PORT/metrics
  health       http://127.0.0.1:$BRIDGE_PORT/health    http://127.0.0.1:$SIM_PORT/health    http://127.0.0.1:$LOGGER_PORT/health
  node-sim     http://127.0.0.1:$SIM_PORT/sim/nodes
  nodes        http://127.0.0.1:$DEVICE_PORT/api/nodes?state=unbound   (device-registry, token: $TOKEN)
  automation   http://127.0.0.1:$AUTOMATION_PORT/metrics   scheduler http://127.0.0.1:$SCHEDULER_PORT/metrics
  decisions    psql $DATABASE_URL -c 'select created_at, type, payload_json from zone_events order by id desc limit 20'
  failover     http://127.0.0.1:$FAILOVER_PORT/health   (try: scripts/broker.sh stop 1884, then watch the dashboard)
  logs         $LOG_DIR/
  mqtt         every broker needs a login; accounts and passwords: $MQTT_SECRETS
               e.g. mosquitto_sub -p 1883 -u hydro-ops -P \$(sed -n 's/^MQTT_PASS_OPS=//p' $MQTT_SECRETS) -t 'hydro/#' -v

  Send a command to the pH node's acid pump, then read its status:
    curl -s -X POST http://127.0.0.1:$BRIDGE_PORT/bridge/zones/zn-1/commands \\
      -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \\
      -d '{"cmd":"run_pump","channel":"pump_acid","node_uid":"nd-ph-1","params":{"duration_ms":2000}}'
    curl -s http://127.0.0.1:$BRIDGE_PORT/bridge/commands/<command_id> -H 'Authorization: Bearer $TOKEN'

  Ctrl-C stops everything started here. PostgreSQL, Redis and the MQTT brokers
  (1883-1885) are the machine's services and keep running.
EOF

# Foreground until a signal, or until a service dies on its own.
while :; do
    for name in "${STARTED[@]}"; do
        if [ ! -f "$PID_DIR/$name.pid" ]; then
            echo "$name was stopped (make down); stopping the rest"
            exit 0
        fi
        # `wait` below reaps an exited child, so kill -0 does not see a zombie.
        if ! kill -0 "$(cat "$PID_DIR/$name.pid")" 2>/dev/null; then
            # Ctrl-C reaches the children too; let the INT trap (exit 0) run
            # before calling their exit unexpected.
            sleep 1 &
            wait $! || true
            echo "$name exited unexpectedly; log tail:" >&2
            tail -n 30 "$LOG_DIR/$name.log" >&2 || true
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
