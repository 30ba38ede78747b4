#!/usr/bin/env bash
# Run pytest-compat/ (the black-box suite: HTTP, MQTT, SQL) against the debug
# binaries in target/debug (or $HYDRO_BIN_DIR). Creates/reuses the venv .venv.
# Extra arguments go to pytest, e.g. scripts/pytest-compat.sh -k timeout -x
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

VENV=$ROOT/.venv
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
        # Debian's python3 needs python3-venv for ensurepip.
        rm -rf "$VENV"
        apt_install python3 python3-venv
        python3 -m venv "$VENV"
    fi
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r pytest-compat/requirements.txt
# test_dashboard.py drives Debian's Chromium through Playwright (no browser
# download: Playwright is pointed at /usr/bin/chromium).
command -v chromium >/dev/null || apt_install chromium fonts-dejavu-core

set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider pytest-compat "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest-compat: no tests were collected" >&2
    exit 1
fi
exit "$rc"
