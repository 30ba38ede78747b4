#!/bin/sh
# The hydro image's HEALTHCHECK (installed as /usr/local/bin/hydro-healthcheck):
# GET /health on the service's HTTP port. The port is HTTP_PORT when set,
# else the default port of the binary the container runs (PID 1), the
# `DEFAULT_PORT` of each service's lib.rs. Healthy = 200 within 4 s.
set -eu
port=${HTTP_PORT:-}
if [ -z "$port" ]; then
    bin=$(tr '\0' '\n' </proc/1/cmdline | head -n 1)
    case ${bin##*/} in
    mqtt-bridge) port=9000 ;;
    history-logger) port=9300 ;;
    automation-engine) port=9401 ;;
    scheduler) port=9402 ;;
    broker-registry) port=9403 ;;
    failover) port=9404 ;;
    node-sim) port=9405 ;;
    device-registry) port=9406 ;;
    *)
        echo "hydro-healthcheck: HTTP_PORT is not set and '${bin##*/}' has no known port" >&2
        exit 1
        ;;
    esac
fi
exec curl -fsS -o /dev/null --max-time 4 "http://127.0.0.1:$port/health"
