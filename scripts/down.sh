#!/usr/bin/env bash
# Stop what scripts/up.sh started (by the pid files in .run/pids/), if it still runs.
# PostgreSQL, Redis and the brokers are left running.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

any=0
for name in device-registry scheduler automation-engine mqtt-bridge history-logger node-sim failover broker-registry; do
    if [ -f "$RUN_DIR/pids/$name.pid" ]; then
        any=1
        stop_pidfile "$RUN_DIR/pids/$name.pid" "$name"
    fi
done
[ "$any" -eq 1 ] || echo "nothing to stop (no pid files in $RUN_DIR/pids)"
