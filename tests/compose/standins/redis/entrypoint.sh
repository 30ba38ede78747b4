#!/bin/sh
# As the official image: protected mode off (other containers reach it over
# the compose network), whatever options the command adds.
set -eu
if [ "${1:-}" = redis-server ]; then
    shift
    exec redis-server --protected-mode no "$@"
fi
exec "$@"
