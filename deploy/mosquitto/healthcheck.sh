#!/bin/sh
# Health check of the compose brokers: broker-registry's account logs in on
# the plain listener and reads $SYS/broker/version (password from
# MQTT_PASS_BROKER_REGISTRY or MQTT_PASS_BROKER_REGISTRY_FILE).
pass=${MQTT_PASS_BROKER_REGISTRY:-}
[ -n "$pass" ] || pass=$(cat "${MQTT_PASS_BROKER_REGISTRY_FILE:?set MQTT_PASS_BROKER_REGISTRY}")
exec mosquitto_sub -u hydro-broker-registry -P "$pass" -t '$SYS/broker/version' -C 1 -W 3
