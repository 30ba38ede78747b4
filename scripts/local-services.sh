#!/usr/bin/env bash
# Make sure the services the hydro binaries and their tests need run on this machine:
#   PostgreSQL 127.0.0.1:5432 (role hydro / password hydro, database hydro_dev)
#   Redis      127.0.0.1:6379
#   Mosquitto  127.0.0.1:1883, 1884, 1885 (MQTT 5, login required: scripts/broker.sh;
#              a broker on those ports that is not ours, e.g. the machine's
#              anonymous one on 1883, is stopped and replaced)
# MQTT passwords are generated once into .run/secrets/mqtt.env (mode 600,
# gitignored); nothing here prints or exports them.
# Installs missing packages with apt-get and starts what is down. Idempotent:
# what already runs is left as it is. One line per service on stdout.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATH=$PATH:/usr/sbin:/usr/lib/postgresql/bin

PG_HOST=127.0.0.1 PG_PORT=5432
HYDRO_ROLE=hydro HYDRO_PASS=hydro HYDRO_DB=hydro_dev

# ---------------------------------------------------------------- PostgreSQL
pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }

ensure_postgres() {
    local started=""
    if ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
        apt_install postgresql postgresql-client
    fi
    if ! pg_ready; then
        local version
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
        if [ -z "$version" ]; then
            # postgresql-common installed but no cluster yet.
            version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
            "${SUDO[@]}" pg_createcluster "$version" main >&2
        fi
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 ||
            pg_ready  # a concurrent start is fine
        wait_for 30 pg_ready || { echo "postgres: not ready after 30 s" >&2; exit 1; }
        started=" (started cluster $version/main)"
    fi

    # Superuser access: trust over TCP where configured, else peer auth on the socket.
    local -a su_psql
    if PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
        -w -Atqc 'select 1' >/dev/null 2>&1; then
        su_psql=(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -w)
    elif [ "$(id -u)" -eq 0 ]; then
        su_psql=(runuser -u postgres -- psql -p "$PG_PORT" -d postgres)
    else
        su_psql=(sudo -u postgres psql -p "$PG_PORT" -d postgres)
    fi
    local q=("${su_psql[@]}" -v ON_ERROR_STOP=1 -Atqc)

    local role
    role=$("${q[@]}" "select rolsuper::text || rolcanlogin::text from pg_roles where rolname = '$HYDRO_ROLE'")
    if [ -z "$role" ]; then
        "${q[@]}" "create role $HYDRO_ROLE login superuser password '$HYDRO_PASS'"
    elif [ "$role" != truetrue ]; then
        "${q[@]}" "alter role $HYDRO_ROLE login superuser"
    fi
    if [ -z "$("${q[@]}" "select 1 from pg_database where datname = '$HYDRO_DB'")" ]; then
        "${q[@]}" "create database $HYDRO_DB owner $HYDRO_ROLE"
    fi

    hydro_login() {
        PGPASSWORD=$HYDRO_PASS PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" \
            -U "$HYDRO_ROLE" -d "$HYDRO_DB" -w -Atqc 'select 1' >/dev/null 2>&1
    }
    if ! hydro_login; then
        # An old role with another password?
        "${q[@]}" "alter role $HYDRO_ROLE password '$HYDRO_PASS'"
    fi
    if ! hydro_login; then
        # pg_hba.conf refuses password logins over TCP: trust loopback (dev/CI machine).
        local hba
        hba=$("${q[@]}" 'show hba_file')
        if ! "${SUDO[@]}" grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
            "${SUDO[@]}" sed -i '0,/^[[:space:]]*[^#[:space:]]/s//host all all 127.0.0.1\/32 trust\n&/' "$hba"
            "${q[@]}" 'select pg_reload_conf()' >/dev/null
            sleep 0.5
        fi
        hydro_login || { echo "postgres: cannot log in as $HYDRO_ROLE over TCP" >&2; exit 1; }
    fi
    echo "postgres  $PG_HOST:$PG_PORT ok$started, role $HYDRO_ROLE, database $HYDRO_DB"
}

# ---------------------------------------------------------------- Redis
redis_up() { [ "$(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server redis-tools
    fi
    if redis_up; then
        echo "redis     127.0.0.1:6379 ok"
        return
    fi
    "${SUDO[@]}" mkdir -p /var/lib/redis /var/log/redis
    "${SUDO[@]}" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 15 redis_up || { echo "redis: not answering after 15 s" >&2; tail -n 20 /var/log/redis/ci.log >&2 || true; exit 1; }
    echo "redis     127.0.0.1:6379 ok (started)"
}

# ---------------------------------------------------------------- Mosquitto
ensure_mosquitto() {
    if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null; then
        apt_install mosquitto mosquitto-clients
    fi
    local port
    ensure_mqtt_secrets
    for port in 1883 1884 1885; do
        "$ROOT/scripts/broker.sh" start "$port"
    done
}

ensure_postgres
ensure_redis
ensure_mosquitto
