#!/usr/bin/env bash
# Regenerates `.sqlx/`: the offline data sqlx's compile-time checked queries
# (`query!`, `query_as!`, `query_scalar!`) are built against, so a build needs
# no database (.cargo/config.toml sets SQLX_OFFLINE=true).
#
# It migrates a fresh database (`hydro_sqlx`) from migrations/, then checks
# every crate that holds such a query with SQLX_OFFLINE_DIR set, which makes
# sqlx write one `query-<hash>.json` per query. Run it after changing a
# migration or a checked query, and commit `.sqlx/`.
#
#   scripts/sqlx-prepare.sh          rewrite .sqlx/
#   scripts/sqlx-prepare.sh --check  fail if .sqlx/ is not what the code needs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

admin="${DATABASE_URL:-postgres://hydro:hydro@127.0.0.1:5432/hydro_dev}"
db="${SQLX_DB:-hydro_sqlx}"
url="${admin%/*}/$db"

PGOPTIONS="-c client_min_messages=warning" psql -q -X -v ON_ERROR_STOP=1 "$admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
for f in migrations/*.sql; do
    psql -q -X -v ON_ERROR_STOP=1 "$url" -f "$f" >/dev/null
done

out=.sqlx
[[ "${1:-}" == --check ]] && out="$(mktemp -d)"
rm -rf "${out:?}"/query-*.json
mkdir -p "$out"
# The macros only write their data when they run, so make cargo re-expand
# every file that holds one.
grep -rlE 'query(_as|_scalar)?!' --include='*.rs' crates services tests | xargs touch
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$(realpath "$out")" DATABASE_URL="$url" \
    cargo check --workspace --all-targets --quiet
PGOPTIONS="-c client_min_messages=warning" psql -q -X "$admin" -c "DROP DATABASE IF EXISTS $db"

if [[ "${1:-}" == --check ]]; then
    if ! diff -r -q .sqlx "$out" >/dev/null; then
        diff -r -q .sqlx "$out" || true
        echo "sqlx-prepare: .sqlx/ is stale; run scripts/sqlx-prepare.sh and commit .sqlx/" >&2
        exit 1
    fi
    rm -rf "$out"
    echo "sqlx-prepare: .sqlx/ matches the code ($(ls .sqlx | wc -l) queries)"
else
    echo "sqlx-prepare: wrote $(ls .sqlx | wc -l) query files to .sqlx/"
fi
