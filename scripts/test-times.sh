#!/usr/bin/env bash
# Per-test wall times for `make test`, on stable Rust.
#
#   scripts/test-times.sh <test binary> [args…]   run it (cargo's runner)
#   scripts/test-times.sh --report [N]            the N slowest (default 15)
#
# As cargo's runner (CARGO_TARGET_<triple>_RUNNER, set by `make test` only),
# it runs each libtest binary with `--report-time`, which libtest offers
# behind `-Z unstable-options`; RUSTC_BOOTSTRAP=1 in the *test process* lets
# a stable-built harness take it (nothing is compiled differently). Output
# is shown as usual and kept in target/test-times/<binary>.log; `--report`
# reads every log of the run. `make test` clears them first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
logs="$here/target/test-times"

if [[ "${1:-}" == "--report" ]]; then
    top="${2:-15}"
    shopt -s nullglob
    files=("$logs"/*.log)
    ((${#files[@]})) || { echo "no test times recorded"; exit 0; }
    echo "== slowest tests (of $(cat "${files[@]}" | grep -c '^test .* <[0-9.]*s>$') timed)"
    for f in "${files[@]}"; do
        binary="$(basename "$f" .log)"
        sed -n "s/^test \(.*\) \.\.\. [a-zA-Z]* <\([0-9.]*\)s>$/\2 ${binary%-*}::\1/p" "$f"
    done | sort -rn | head -n "$top" | awk '{ printf "%8.2f s  %s\n", $1, $2 }'
    exit 0
fi

bin="$1"
shift
mkdir -p "$logs"
log="$logs/$(basename "$bin").log"
# `--list` and friends (cargo asks for them) take no timing flags.
for arg in "$@"; do
    [[ "$arg" == "--list" ]] && exec "$bin" "$@"
done
set +e
RUSTC_BOOTSTRAP=1 "$bin" "$@" -Z unstable-options --report-time 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
exit "$status"
