#!/bin/sh
# Entrypoint of the compose brokers (eclipse-mosquitto:2): on first start
# creates the dynamic-security file with the admin account, then starts
# Mosquitto and brings the roles and accounts up to date from the
# environment (bootstrap.sh: MQTT_ADMIN_PASS, MQTT_PROVISION_PASS,
# MQTT_PASS_<SERVICE> for each of HYDRO_MQTT_SERVICES). The dynsec file lives
# in the data volume: node accounts device-registry creates survive restarts.
# Changing MQTT_ADMIN_PASS needs the file removed (or mosquitto_ctrl).
set -eu
dynsec=/mosquitto/data/dynamic-security.json
mkdir -p /mosquitto/data
if [ ! -f "$dynsec" ]; then
    mosquitto_ctrl dynsec init "$dynsec" "${MQTT_ADMIN_USER:-hydro-admin}" "$MQTT_ADMIN_PASS" >/dev/null
fi
# Mosquitto drops to user mosquitto; the plugin rewrites its file on changes.
chown -R mosquitto:mosquitto /mosquitto/data 2>/dev/null || true

mosquitto -c /hydro/mosquitto.conf &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT

tries=0
until sh /hydro/bootstrap.sh 127.0.0.1 1883 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 50 ] || ! kill -0 "$pid" 2>/dev/null; then
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
