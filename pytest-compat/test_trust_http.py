"""Issue 11, HTTP trust, from outside: every write needs the bearer token,
every error is JSON on every service the suite runs, strings PostgreSQL would
refuse are a 400 naming the field without failing the valid requests around
them, and every service is healthy afterwards.

broker-registry is not part of the session's services: this module starts one
of its own, on a database of its own (it would otherwise assign the session's
nodes to brokers) and in a share group of its own (it would otherwise take
status messages from the session's history-logger).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from conftest import (
    API_TOKEN,
    BIN_DIR,
    MQTT_HOST,
    MQTT_PORT,
    SESSION,
    _common_env,
    fresh_database,
    sql_rows,
    start_service,
)

REGISTRY_TOKEN = f"compat-registry-{uuid.uuid4().hex}"
# The common layer's limits (common::runtime::http::MAX_URI_BYTES, MAX_BODY_BYTES).
MAX_URI_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
TIMEOUT = 15


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_json_error(r: requests.Response, status: int, code: str | None = None,
                      names: str | None = None) -> dict:
    """`r` is the one error shape: the status, JSON, `status`, `code`, `message`."""
    shown = f"{r.request.method} {r.request.path_url[:80]}"
    assert r.status_code == status, f"{shown}: expected {status}, got {r.status_code}: {r.text[:300]}"
    content_type = r.headers.get("content-type", "")
    assert content_type.startswith("application/json"), \
        f"{shown}: {status} is not JSON ({content_type!r}): {r.text[:300]}"
    body = r.json()
    assert body.get("status") == "error", f"{shown}: {body}"
    assert isinstance(body.get("code"), str) and body["code"], f"{shown}: {body}"
    assert isinstance(body.get("message"), str) and body["message"], f"{shown}: {body}"
    if code is not None:
        assert body["code"] == code, f"{shown}: {body}"
    if names is not None:
        assert names in body["message"], f"{shown}: {names!r} not named: {body}"
    return body


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def registry_db_url():
    """A database of broker-registry's own, dropped at the end."""
    yield from fresh_database("hydro_compat_trust")


@pytest.fixture(scope="module")
def broker_registry(services, registry_db_url, log_dir):
    svc = start_service("broker-registry", log_dir, {
        **_common_env(registry_db_url),
        "MQTT_SHARE_GROUP": f"compat-trust-{SESSION}",
        "MQTT_BROKERS": f"mqtt1=mqtt://{MQTT_HOST}:{MQTT_PORT}",
        "BROKER_REGISTRY_API_TOKEN": REGISTRY_TOKEN,
        "REBALANCE_INTERVAL_SEC": "0",
    })
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def registry_db(registry_db_url, broker_registry):
    with psycopg.connect(registry_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def device_registry(services):
    return services["device-registry"]


@pytest.fixture(scope="module")
def all_services(services, broker_registry) -> dict:
    return {**services, "broker-registry": broker_registry}


def brokers_rows(registry_db):
    return sql_rows(registry_db,
                    "select id, url, enabled, draining, role from brokers order by id")


# ------------------------------------------------------------------ tokens


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_broker_registry_writes_need_the_token(broker_registry, registry_db, token):
    before = brokers_rows(registry_db)
    assert before, "the registry registered no broker"
    base = broker_registry.url
    writes = [
        ("POST", "/api/brokers", {"id": "mqtt-forged", "url": "mqtt://127.0.0.1:1"}),
        ("PATCH", "/api/brokers/mqtt1", {"enabled": False}),
        ("PATCH", "/api/brokers/mqtt1", {"draining": True}),
        ("POST", "/api/rebalance", {}),
    ]
    for method, path, body in writes:
        r = requests.request(method, base + path, json=body, headers=bearer(token),
                             timeout=TIMEOUT)
        assert_json_error(r, 401, "unauthorized")
    assert brokers_rows(registry_db) == before, "a refused write changed the broker list"
    # Reads stay open by default (the dashboard polls them).
    r = requests.get(base + "/api/brokers", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert requests.get(base + "/", timeout=TIMEOUT).status_code == 200


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_device_registry_writes_need_the_token(device_registry, seeded, db, token):
    def state():
        return (sql_rows(db, "select count(*) from node_binds"),
                sql_rows(db, "select uid, zone_id, lifecycle from nodes where uid = 'nd-ph-1'"))

    before = state()
    base = device_registry.url
    bind = {"greenhouse_uid": seeded, "zone_uid": "zn-2", "node_uid": "nd-ph-1"}
    for path, body in [
        ("/api/nodes/nd-ph-1/bind", bind),
        ("/api/nodes/nd-ph-1/unbind", None),
        ("/api/nodes/nd-ph-1/config", None),
        ("/api/nodes/nd-ph-1/decommission", None),
    ]:
        r = requests.post(base + path, json=body, headers=bearer(token), timeout=TIMEOUT)
        assert_json_error(r, 401, "unauthorized")
    assert state() == before, "a refused write changed a node"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_bridge_writes_need_the_token(bridge, seeded, db, token):
    cmd_id = f"compat-trust-{uuid.uuid4().hex[:12]}"
    body = {"cmd": "run_pump", "channel": "pump_acid", "node_uid": "nd-ph-1",
            "params": {"duration_ms": 500}, "cmd_id": cmd_id}
    r = requests.post(bridge.url + "/bridge/zones/zn-1/commands", json=body,
                      headers=bearer(token), timeout=TIMEOUT)
    assert_json_error(r, 401, "unauthorized")
    assert sql_rows(db, "select count(*) from commands where cmd_id = %s", cmd_id) == [(0,)]


def test_node_sim_fault_switches_need_the_token(sim):
    base = sim.url
    before = requests.get(base + "/sim/faults", timeout=TIMEOUT)
    assert before.status_code == 200, before.text
    # An empty patch changes nothing: it tells whether a token is configured.
    probe = requests.put(base + "/sim/faults", json={}, timeout=TIMEOUT)
    if probe.status_code == 200:
        pytest.skip("the session's node-sim runs without SIM_API_TOKEN (conftest)")
    assert_json_error(probe, 401, "unauthorized")
    for token in [None, "wrong-token"]:
        r = requests.put(base + "/sim/faults", json={"drop_responses": 1.0},
                         headers=bearer(token), timeout=TIMEOUT)
        assert_json_error(r, 401, "unauthorized")
    after = requests.get(base + "/sim/faults", timeout=TIMEOUT)
    assert after.json() == before.json(), "a refused write changed the faults"


# ------------------------------------------------------------------ JSON errors

SERVICES = ["node-sim", "history-logger", "mqtt-bridge", "device-registry", "broker-registry"]

# A write route of each service that has one, with a token it accepts.
WRITE_ROUTES = {
    "node-sim": ("PUT", "/sim/faults", API_TOKEN),
    "mqtt-bridge": ("POST", "/bridge/zones/zn-1/commands", API_TOKEN),
    "device-registry": ("POST", "/api/nodes/nd-unknown-trust/bind", API_TOKEN),
    "broker-registry": ("POST", "/api/brokers", REGISTRY_TOKEN),
}

# A route with a path parameter, and a token for reads.
PATH_ROUTES = {
    "mqtt-bridge": ("/bridge/commands/", API_TOKEN),
    "device-registry": ("/api/nodes/", API_TOKEN),
    "broker-registry": ("/api/brokers/", REGISTRY_TOKEN),
}


@pytest.mark.parametrize("name", SERVICES)
def test_every_error_is_json(all_services, name):
    base = all_services[name].url
    get = lambda path, **kw: requests.get(base + path, timeout=TIMEOUT, **kw)  # noqa: E731

    assert_json_error(get("/no/such/route"), 404)
    assert_json_error(get("/%ZZ%zz"), 404)
    assert_json_error(get("/%FF%FE/x"), 404)
    assert_json_error(requests.delete(base + "/health", timeout=TIMEOUT), 405)
    assert_json_error(requests.post(base + "/metrics", timeout=TIMEOUT), 405)
    assert_json_error(get("/health?pad=" + "x" * (MAX_URI_BYTES + 10)), 414)
    assert_json_error(get("/" + "y" * (MAX_URI_BYTES + 10)), 414)

    if name in WRITE_ROUTES:
        method, path, token = WRITE_ROUTES[name]
        url = base + path
        auth = bearer(token)
        big = b'{"pad":"' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
        assert_json_error(requests.request(
            method, url, data=big, timeout=TIMEOUT,
            headers={**auth, "Content-Type": "application/json"}), 413)
        assert_json_error(requests.request(
            method, url, data=b"{", timeout=TIMEOUT,
            headers={**auth, "Content-Type": "application/json"}), 400)
        assert_json_error(requests.request(
            method, url, data=b"[1, 2]", timeout=TIMEOUT,
            headers={**auth, "Content-Type": "application/json"}), 400)
        assert_json_error(requests.request(
            method, url, data=b'{"a": 1}', timeout=TIMEOUT,
            headers={**auth, "Content-Type": "text/plain"}), 415)
        # No Content-Type at all: read as JSON, so a body that is not JSON is a 400.
        assert_json_error(requests.request(
            method, url, data=b"not json", timeout=TIMEOUT, headers=auth), 400)

    if name in PATH_ROUTES:
        prefix, token = PATH_ROUTES[name]
        auth = bearer(token)
        assert_json_error(get(prefix + "%FF%FE", headers=auth), 400)
        # A string PostgreSQL would refuse, in the path: a 400 naming it.
        assert_json_error(get(prefix + "a%00b", headers=auth), 400)


def test_registry_query_errors_are_json(broker_registry, device_registry):
    base = broker_registry.url
    assert_json_error(requests.get(base + "/api/rebalance/plan?max_moves=abc", timeout=TIMEOUT),
                      400, "invalid_query", "max_moves")
    assert_json_error(requests.get(base + "/api/rebalance/plan?max_moves=-1", timeout=TIMEOUT),
                      400, "invalid_query")
    assert_json_error(requests.get(base + "/api/rebalance/plan?strategy=bogus", timeout=TIMEOUT),
                      400)
    assert_json_error(requests.get(base + "/api/failovers?limit=abc", timeout=TIMEOUT),
                      400, "invalid_query", "limit")
    assert_json_error(requests.get(base + "/api/status-changes?limit=0", timeout=TIMEOUT),
                      400, "invalid_query", "limit")
    assert requests.get(base + "/api/failovers?limit=5", timeout=TIMEOUT).status_code == 200
    assert_json_error(requests.get(base + "/api/assignments?broker=a%00b", timeout=TIMEOUT),
                      400, "invalid_text", "`broker`")
    assert_json_error(requests.get(base + "/api/nowhere?x=%FF", timeout=TIMEOUT), 404)
    r = requests.get(device_registry.url + "/api/nodes?state=bogus", headers=bearer(API_TOKEN),
                     timeout=TIMEOUT)
    assert_json_error(r, 422)


# ------------------------------------------------------------------ NUL in a concurrent batch


def test_nul_among_a_concurrent_batch_on_broker_registry(broker_registry, registry_db):
    run = uuid.uuid4().hex[:6]
    base = broker_registry.url
    requests_to_send = []
    for i in range(40):
        bad = i % 5 == 0
        field = ["id", "url"][i % 2] if bad else None
        broker_id = f"t{run}-{i}" + ("\u0000x" if field == "id" else "")
        url = f"mqtt://127.0.0.1:{30000 + i}" + ("\u0000" if field == "url" else "")
        # Disabled and optional: nobody is placed on them.
        requests_to_send.append((field, {"id": broker_id, "url": url, "role": "optional"}))

    def send(item):
        field, body = item
        r = requests.post(base + "/api/brokers", json=body, headers=bearer(REGISTRY_TOKEN),
                          timeout=30)
        return field, r

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, requests_to_send))
    for field, r in answers:
        if field:
            assert_json_error(r, 400, "invalid_text", f"`{field}`")
        else:
            assert r.status_code == 201, f"a valid add failed beside a bad one: {r.status_code} {r.text}"
    stored = {row[0] for row in brokers_rows(registry_db) if row[0].startswith(f"t{run}-")}
    expected = {f"t{run}-{i}" for i in range(40) if i % 5 != 0}
    assert stored == expected, f"stored {sorted(stored)}"
    # Take them out of service again: nothing should connect to them for long.
    for broker_id in expected:
        r = requests.patch(base + f"/api/brokers/{broker_id}", json={"enabled": False},
                           headers=bearer(REGISTRY_TOKEN), timeout=TIMEOUT)
        assert r.status_code == 200, r.text


def test_nul_among_a_concurrent_batch_on_device_registry(device_registry, seeded, db):
    base = device_registry.url
    binds_before = sql_rows(db, "select count(*) from node_binds")
    known = [row[0] for row in sql_rows(db, "select uid from nodes order by uid limit 5")]
    assert known, "no seeded node"
    batch = []
    for i in range(40):
        kind = i % 4
        if kind == 0:
            batch.append(("key", "GET", f"/api/nodes/nd%00{i}", None))
        elif kind == 1:
            body = {"greenhouse_uid": seeded, "zone_uid": "zn-1", "name": f"tank\u0000{i}"}
            batch.append(("name", "POST", f"/api/nodes/nd-unknown-{i}/bind", body))
        elif kind == 2:
            batch.append((None, "GET", f"/api/nodes/{known[i % len(known)]}", None))
        else:
            # Valid, for a node that does not exist: a clean 404, never a 500.
            body = {"greenhouse_uid": seeded, "zone_uid": "zn-1", "name": f"tank {i}"}
            batch.append(("missing", "POST", f"/api/nodes/nd-unknown-{i}/bind", body))

    def send(item):
        field, method, path, body = item
        r = requests.request(method, base + path, json=body, headers=bearer(API_TOKEN),
                             timeout=30)
        return field, r

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, batch))
    for field, r in answers:
        if field == "missing":
            assert_json_error(r, 404, "node_not_found")
        elif field:
            assert_json_error(r, 400, "invalid_text", f"`{field}`")
        else:
            assert r.status_code == 200, f"a valid read failed beside a bad one: {r.status_code} {r.text}"
    assert sql_rows(db, "select count(*) from node_binds") == binds_before


# ------------------------------------------------------------------ afterwards


def test_every_service_is_healthy_afterwards(all_services):
    for name, svc in all_services.items():
        assert svc.proc.poll() is None, f"{name} exited:\n{svc.log_tail()}"
        r = requests.get(svc.url + "/health", timeout=TIMEOUT)
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text}"


# ------------------------------------------------------------------ production


SERVICES = ["mqtt-bridge", "history-logger", "device-registry", "broker-registry", "failover",
            "automation-engine", "scheduler", "node-sim"]


@pytest.mark.parametrize("name", SERVICES)
def test_production_refuses_dev_defaults(name):
    """HYDRO_ENV=production with the development defaults (no MQTT login, the
    database password `hydro`, the default node secret, no API token): the
    service exits before it serves anything, naming what to set, printing no
    secret."""
    import os
    import subprocess
    binary = BIN_DIR / name
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MQTT_", "BRIDGE_", "DEVICE_", "BROKER_REGISTRY_", "SIM_API",
                                "NODE_DEFAULT_SECRET", "PG_", "DATABASE_URL"))}
    env.update({"HYDRO_ENV": "production", "HTTP_PORT": "0", "RUST_LOG": "info",
                "RUST_BACKTRACE": "0",
                "DATABASE_URL": "postgres://hydro:hydro@127.0.0.1:5432/hydro_dev",
                "MQTT_HOST": MQTT_HOST, "MQTT_PORT": str(MQTT_PORT)})
    done = subprocess.run([str(binary)], env=env, capture_output=True, timeout=60)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0, f"{name} started in production on dev defaults:\n{out[-2000:]}"
    assert "HYDRO_ENV=production refuses" in out, out[-2000:]
    if name != "history-logger":  # the others sign commands or serve an API token
        assert "NODE_DEFAULT_SECRET" in out or "API_TOKEN" in out, out[-2000:]
    if name != "node-sim":  # its nodes log in with their own accounts; it seeds only when asked
        assert "MQTT_USER" in out and "DATABASE_URL" in out, out[-2000:]
