#!/bin/sh
# Entrypoint of the compose brokers (eclipse-mosquitto:2): on first start
# creates the dynamic-security file with the admin account, then starts
# Mosquitto and brings the roles and accounts up to date from the
# environment (bootstrap.sh: MQTT_ADMIN_PASS, MQTT_PROVISION_PASS,
# MQTT_PASS_<SERVICE> for each of HYDRO_MQTT_SERVICES). The dynsec file lives
# in the data volume: node accounts device-registry creates survive restarts.
# Changing MQTT_ADMIN_PASS needs the file removed (or mosquitto_ctrl).
#
# Secrets from files: each password variable X may be given as X_FILE instead
# (a path in the container, e.g. a Docker secret); setting both is an error.
# TLS (optional): with MQTT_TLS_CERTFILE and MQTT_TLS_KEYFILE (paths in the
# container; MQTT_TLS_CAFILE for a chain), a second listener on
# MQTT_TLS_PORT (default 8883) speaks MQTT over TLS with the same accounts.
set -eu
die() { echo "hydro: $*" >&2; exit 1; }

services_vars=""
for service in ${HYDRO_MQTT_SERVICES:-}; do
    services_vars="$services_vars MQTT_PASS_$(echo "$service" | tr 'a-z-' 'A-Z_')"
done
for var in MQTT_ADMIN_PASS MQTT_PROVISION_PASS $services_vars; do
    eval "file=\${${var}_FILE:-} value=\${${var}:-}"
    [ -n "$file" ] || continue
    [ -z "$value" ] || die "set $var or ${var}_FILE, not both"
    [ -r "$file" ] || die "${var}_FILE: cannot read $file"
    # $(...) drops the file's trailing newlines.
    value=$(cat "$file")
    export "$var=$value"
done
: "${MQTT_ADMIN_PASS:?set MQTT_ADMIN_PASS (or MQTT_ADMIN_PASS_FILE)}"

conf=/hydro/mosquitto.conf
if [ -n "${MQTT_TLS_CERTFILE:-}${MQTT_TLS_KEYFILE:-}" ]; then
    for f in "${MQTT_TLS_CERTFILE:-}" "${MQTT_TLS_KEYFILE:-}" ${MQTT_TLS_CAFILE:-}; do
        [ -n "$f" ] && [ -r "$f" ] || die "TLS needs readable MQTT_TLS_CERTFILE and MQTT_TLS_KEYFILE (got '${MQTT_TLS_CERTFILE:-}', '${MQTT_TLS_KEYFILE:-}')"
    done
    # Mosquitto reads them as its own user: copies it alone can read, so the
    # operator's files may stay root's (mode 600).
    tls=/tmp/hydro-tls
    mkdir -p "$tls"
    install -o mosquitto -m 600 "$MQTT_TLS_CERTFILE" "$tls/server.crt"
    install -o mosquitto -m 600 "$MQTT_TLS_KEYFILE" "$tls/server.key"
    [ -z "${MQTT_TLS_CAFILE:-}" ] || install -o mosquitto -m 600 "$MQTT_TLS_CAFILE" "$tls/ca.crt"
    conf=/tmp/hydro-mosquitto.conf
    {
        cat /hydro/mosquitto.conf
        echo "listener ${MQTT_TLS_PORT:-8883}"
        echo "certfile $tls/server.crt"
        echo "keyfile $tls/server.key"
        [ -z "${MQTT_TLS_CAFILE:-}" ] || echo "cafile $tls/ca.crt"
    } >"$conf"
    echo "hydro: TLS listener on ${MQTT_TLS_PORT:-8883} ($MQTT_TLS_CERTFILE)"
fi

dynsec=/mosquitto/data/dynamic-security.json
mkdir -p /mosquitto/data
if [ ! -f "$dynsec" ]; then
    mosquitto_ctrl dynsec init "$dynsec" "${MQTT_ADMIN_USER:-hydro-admin}" "$MQTT_ADMIN_PASS" >/dev/null
fi
# Mosquitto drops to user mosquitto; the plugin rewrites its file on changes.
chown -R mosquitto:mosquitto /mosquitto/data 2>/dev/null || true

mosquitto -c "$conf" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT

tries=0
until sh /hydro/bootstrap.sh 127.0.0.1 1883 2>/dev/null; do
    tries=$((tries + 1))
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "hydro: mosquitto exited at start (its log is above)" >&2
        exit 1
    fi
    if [ "$tries" -ge 50 ]; then
        echo "hydro: could not create the broker accounts (is MQTT_ADMIN_PASS the one the data volume was made with?)" >&2
        sh /hydro/bootstrap.sh 127.0.0.1 1883 || true
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
echo "hydro: broker accounts up to date"
# The first wait returns on a trapped signal; the second waits for the exit.
wait "$pid" || true
wait "$pid" 2>/dev/null || true
