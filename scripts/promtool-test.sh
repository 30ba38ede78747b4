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

# The Grafana dashboard: well-formed JSON, every query valid PromQL (checked
# by promtool as recording rules), and every metric named in it or in the
# alert rules one of crates/common/src/metrics.rs (or Prometheus's own `up`).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - deploy/grafana/hydro.json deploy/prometheus/alerts.yml crates/common/src/metrics.rs "$tmp/dashboard-rules.yml" <<'PY'
import json, re, sys

dashboard, alerts, metrics_rs, rules_out = sys.argv[1:]
known = set(re.findall(r'pub const [A-Z0-9_]+: &str = "([a-z0-9_]+)";', open(metrics_rs).read()))
known.add("up")

def panel_exprs(panels):
    for p in panels:
        yield from panel_exprs(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p["title"], t["expr"]

def alert_exprs(path):
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"(\s*)expr: (.*)", line)
        if not m:
            continue
        if m.group(2).strip() != "|":
            yield "alerts.yml:%d" % (i + 1), m.group(2)
            continue
        body = []
        for more in lines[i + 1:]:
            if more.strip() and len(more) - len(more.lstrip()) <= len(m.group(1)):
                break
            body.append(more)
        yield "alerts.yml:%d" % (i + 1), "\n".join(body)

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "offset", "bool", "inf", "nan"}

def metric_names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)                      # matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                      # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    for name in re.findall(r"(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()", expr):
        if name.lower() in KEYWORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        yield name

try:
    dash = json.load(open(dashboard))
except ValueError as e:
    sys.exit("%s: not JSON: %s" % (dashboard, e))
queries = list(panel_exprs(dash["panels"]))
bad = []
rules = list(alert_exprs(alerts))
for where, expr in queries + rules:
    for name in metric_names(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        if name not in known and base not in known:
            bad.append("%s: unknown metric %s" % (where, name))
if bad:
    sys.exit("\n".join(bad))
with open(rules_out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, expr) in enumerate(queries):
        expr = re.sub(r"\$__(rate_interval|interval|range)", "5m", expr)
        f.write("      - record: dashboard:query:%d\n        expr: %s\n" % (i, json.dumps(expr)))
print("%s: %d queries, %s: %d expressions; every metric known"
      % (dashboard, len(queries), alerts, len(rules)))
PY
promtool check rules "$tmp/dashboard-rules.yml" >/dev/null
echo "deploy/grafana/hydro.json: every query is valid PromQL"
