#!/usr/bin/env bash
# Generate this checkout's MQTT passwords once (.run/secrets/mqtt.env, mode
# 600, gitignored) and print the file's path; an existing file is kept.
# `make services` does this too. The compose dev stack reads the file:
#   docker compose --env-file .run/secrets/mqtt.env -f docker-compose.dev.yml up --build
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_mqtt_secrets
echo "$MQTT_SECRETS"
