#!/usr/bin/env bash
# Checks deploy/prometheus/: `promtool check config` on prometheus.yml (which
# also checks alerts.yml) and `promtool test rules` on alerts.test.yml.
# Installs Debian's `prometheus` package for promtool if it is missing,
# without letting the package start a Prometheus server.
set -euo pipefail
cd "$(dirname "$0")/.."

# Whether something accepts connections on 127.0.0.1:9090.
port_9090_open() {
    (exec 3<>/dev/tcp/127.0.0.1/9090) 2>/dev/null
}

install_promtool() {
    echo "promtool not found; installing Debian's prometheus package" >&2
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    # invoke-rc.d asks policy-rc.d whether a package may start its service:
    # 101 means no. Only a file we create is removed afterwards.
    local policy=/usr/sbin/policy-rc.d ours=false busy_before=false
    port_9090_open && busy_before=true
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        ours=true
        # Removed even if the install is interrupted.
        trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local rc=0
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
    if [[ $rc -eq 0 ]]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends prometheus >/dev/null || rc=$?
    fi
    if $ours; then
        "${sudo[@]}" rm -f "$policy"
        trap - EXIT
    fi
    # With systemd running, the unit may have been enabled and started
    # regardless: stop and disable it; only promtool is wanted.
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    if [[ $rc -ne 0 ]]; then
        echo "installing prometheus failed (apt-get exit $rc)" >&2
        return "$rc"
    fi
    if ! $busy_before && port_9090_open; then
        echo "a Prometheus server listens on :9090 after the install; stop it" >&2
        return 1
    fi
}

command -v promtool >/dev/null || install_promtool
promtool --version 2>&1 | head -1

promtool check config --lint-fatal deploy/prometheus/prometheus.yml
# Rule files resolve relative to the test file.
promtool test rules deploy/prometheus/alerts.test.yml
