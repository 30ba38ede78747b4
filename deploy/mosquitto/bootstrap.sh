#!/bin/sh
# Creates (or brings up to date) the hydro roles and accounts on a running
# Mosquitto with the dynamic-security plugin, logged in as its dynsec admin.
# POSIX sh: runs in scripts/broker.sh and in the eclipse-mosquitto container.
#
#   bootstrap.sh HOST PORT
#
# Environment (account passwords travel in the message body, read from stdin;
# the admin password is a mosquitto_pub argument, so run this on a loopback
# or container-internal connection only):
#   MQTT_ADMIN_USER (default hydro-admin), MQTT_ADMIN_PASS   dynsec admin
#   MQTT_PROVISION_PASS                   hydro-provision (unbound nodes)
#   MQTT_PASS_<SERVICE>                   hydro-<service>, role hydro-backend,
#                                         for each service in HYDRO_MQTT_SERVICES
# Idempotent: an existing role or client is kept, a client's password and
# roles are set again (so changing a secret and re-running rotates it).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 HOST PORT" >&2; exit 2; }
host=$1 port=$2
here=$(cd "$(dirname "$0")" && pwd)
: "${MQTT_ADMIN_USER:=hydro-admin}"
: "${MQTT_ADMIN_PASS:?set MQTT_ADMIN_PASS}"
: "${MQTT_PROVISION_PASS:?set MQTT_PROVISION_PASS}"
: "${HYDRO_MQTT_SERVICES:=mqtt-bridge history-logger device-registry broker-registry failover automation-engine scheduler node-sim ops}"

control() {
    # One QoS 1 publish: the plugin has run every command when the PUBACK comes.
    mosquitto_pub -h "$host" -p "$port" -V mqttv5 -q 1 -i "hydro-bootstrap-$$" \
        -u "$MQTT_ADMIN_USER" -P "$MQTT_ADMIN_PASS" \
        -t '$CONTROL/dynamic-security/v1' "$@"
}

# client USER PASS ROLE... — the commands that create or update one account.
client() {
    user=$1 pass=$2; shift 2
    roles="" cmds=""
    for role in "$@"; do
        prio=0
        [ "$role" = hydro-floor ] && prio=-100
        roles="$roles${roles:+,}{\"rolename\":\"$role\",\"priority\":$prio}"
        cmds="$cmds,{\"command\":\"addClientRole\",\"username\":\"$user\",\"rolename\":\"$role\",\"priority\":$prio}"
    done
    printf ',{"command":"createClient","username":"%s","password":"%s","roles":[%s]}' "$user" "$pass" "$roles"
    printf ',{"command":"setClientPassword","username":"%s","password":"%s"}%s' "$user" "$pass" "$cmds"
}

control -f "$here/roles.json"

batch=$(client hydro-provision "$MQTT_PROVISION_PASS" hydro-provision hydro-floor)
for svc in $HYDRO_MQTT_SERVICES; do
    var=MQTT_PASS_$(echo "$svc" | tr 'a-z-' 'A-Z_')
    eval "pass=\${$var:-}"
    [ -n "$pass" ] || { echo "bootstrap: $var is not set" >&2; exit 1; }
    batch="$batch$(client "hydro-$svc" "$pass" hydro-backend hydro-floor)"
done
printf '{"commands":[%s]}' "${batch#,}" | control -s
