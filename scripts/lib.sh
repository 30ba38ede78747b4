# shellcheck shell=bash
# Helpers shared by the scripts in this folder. Source it; do not run it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR=${HYDRO_RUN_DIR:-$ROOT/.run}

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

_APT_UPDATED=0
# apt_install PKG... — installs the packages, running `apt-get update` once per script run.
apt_install() {
    if [ "$_APT_UPDATED" -eq 0 ]; then
        echo "    apt-get update" >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        _APT_UPDATED=1
    fi
    echo "    apt-get install $*" >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# wait_for SECONDS CMD... — retries CMD every 0.2 s until it succeeds or SECONDS pass.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# mqtt_up PORT — true when an MQTT 5 broker on 127.0.0.1:PORT accepts a publish.
mqtt_up() {
    timeout 5 mosquitto_pub -h 127.0.0.1 -p "$1" -V mqttv5 -q 1 \
        -i "probe-$$-$RANDOM" -t hydro-probe -m x >/dev/null 2>&1
}

# stop_pidfile FILE NAME — SIGTERM the process in FILE, SIGKILL after 10 s, remove FILE.
stop_pidfile() {
    local file=$1 name=$2 pid deadline
    [ -f "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name: still running after 10 s, SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "$name stopped (pid $pid)"
    fi
    rm -f "$file"
}
