"""Session fixtures: a fresh database, node-sim and mqtt-bridge as real processes,
an MQTT v5 subscriber on the command topics, and small HTTP/SQL helpers.

Everything is checked from outside — HTTP, MQTT, SQL — the way the Python
services were checked. Binaries come from $HYDRO_BIN_DIR (default target/debug).

Over 400 lines: pytest finds session fixtures in this one file, and every
suite shares them (the processes, the subscriber and the helpers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt
import psycopg
import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(os.environ.get("HYDRO_BIN_DIR", REPO / "target" / "debug"))
BASE_DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgres://hydro:hydro@127.0.0.1:5432/hydro_dev"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
MQTT_HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("MQTT_PORT", "1883"))


def _read_mqtt_secrets() -> dict[str, str]:
    """The checkout's MQTT passwords (.run/secrets/mqtt.env, written once by
    scripts/local-services.sh; every broker it starts knows these accounts)."""
    run_dir = Path(os.environ.get("HYDRO_RUN_DIR", REPO / ".run"))
    path = run_dir / "secrets" / "mqtt.env"
    if not path.exists():
        pytest.exit(f"{path} is missing: run `make services` first", returncode=1)
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


MQTT_SECRETS = _read_mqtt_secrets()


def mqtt_login(service: str) -> tuple[str, str]:
    """(user, password) of hydro-<service>: a service's own account, or `ops`
    (the suite's own clients, role hydro-backend)."""
    return f"hydro-{service}", MQTT_SECRETS["MQTT_PASS_" + service.upper().replace("-", "_")]


BACKEND_LOGIN = mqtt_login("ops")
PROVISION_LOGIN = (MQTT_SECRETS.get("MQTT_PROVISION_USER", "hydro-provision"),
                   MQTT_SECRETS["MQTT_PROVISION_PASS"])

API_TOKEN = "compat-token"
NODE_DEFAULT_SECRET = "compat-secret"
COMMAND_TIMEOUT_SEC = 5
# Unique per session: a `make up` running beside the suite on the same broker
# must not share these services' shared subscriptions or Redis keys.
SESSION = uuid.uuid4().hex[:8]
HISTORY_STREAM = f"compat-{SESSION}:uplink"
HISTORY_DEAD_LETTER_KEY = f"compat-{SESSION}:dead-letter"
# Generous: a CI machine with 2 cores may be busy compiling or running other tests.
START_TIMEOUT_SEC = 90


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


# ------------------------------------------------------------------ processes


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_service(name: str, log_dir: Path, env: dict[str, str]) -> Service:
    binary = BIN_DIR / name
    if not binary.exists():
        pytest.exit(f"{binary} is missing: build it first (cargo build --workspace)", returncode=1)
    port = free_port()
    # Each service logs in with its own account, as `make up` starts them.
    user, password = mqtt_login(name)
    login = {"MQTT_USER": user, "MQTT_PASS": password}
    if name == "device-registry":
        # It creates the node accounts on the broker (dynsec admin).
        login["MQTT_ADMIN_USER"] = MQTT_SECRETS["MQTT_ADMIN_USER"]
        login["MQTT_ADMIN_PASS"] = MQTT_SECRETS["MQTT_ADMIN_PASS"]
    if name in ("device-registry", "node-sim"):
        # The login of unbound nodes (firmware-mode nodes; pushed on unbind).
        login["MQTT_PROVISION_USER"], login["MQTT_PROVISION_PASS"] = PROVISION_LOGIN
    full_env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), **login, **env,
                "HTTP_PORT": str(port)}
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(binary)], env=full_env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=REPO)
    log.close()
    svc = Service(name, port, proc, log_path)

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(
                f"{name} exited with {proc.returncode} during start; log tail:\n{svc.log_tail()}")
        try:
            return requests.get(svc.url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, START_TIMEOUT_SEC, 0.3, f"{name} /health to return 200")
    except AssertionError as e:
        svc.stop()
        raise AssertionError(f"{e}\n--- {name} log tail ---\n{svc.log_tail()}") from None
    return svc


def fresh_database(prefix: str):
    """Creates database `{prefix}_<random>`, yields its URL, drops it after."""
    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(BASE_DATABASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield with_database(BASE_DATABASE_URL, dbname)
    finally:
        with psycopg.connect(BASE_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url():
    """A fresh database for this run, dropped at the end."""
    yield from fresh_database("hydro_compat")


@pytest.fixture(scope="session")
def log_dir(database_url) -> Path:
    path = REPO / ".run" / "pytest-compat" / urlsplit(database_url).path.lstrip("/")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _common_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "MQTT_HOST": MQTT_HOST,
        "MQTT_PORT": str(MQTT_PORT),
        "NODE_DEFAULT_SECRET": NODE_DEFAULT_SECRET,
        "MQTT_SHARE_GROUP": f"compat-{SESSION}",
    }



_BACKEND = object()


def mqtt_client(prefix: str = "compat", *, user=_BACKEND, password: str | None = None,
                client_id: str | None = None) -> "mqtt.Client":
    """A paho MQTT v5 client for the suite's broker, not yet connected.

    Every MQTT client a test makes comes from here, so the broker login lives in
    one place: `user`/`password` default to the suite's backend account
    (hydro-ops); `user=None` makes an anonymous client."""
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"{prefix}-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    if user is _BACKEND:
        user, password = BACKEND_LOGIN
    if user is not None:
        client.username_pw_set(user, password)
    return client


def clear_retained_moves(settle: float = 1.5) -> int:
    """Clears retained nodes/+/config/update messages on the suite's broker.

    A `make up` (broker-registry) leaves them behind for the same node uids
    (nd-ph-1, ...); node-sim's nodes would follow them to other brokers, which
    this suite's services (one broker, no registry) do not use."""
    topics: set[str] = set()
    client = mqtt_client("compat-clear")
    client.on_connect = lambda c, *a: c.subscribe("nodes/+/config/update", qos=1)
    client.on_message = lambda c, u, msg: topics.add(msg.topic) if msg.retain else None
    client.connect(MQTT_HOST, MQTT_PORT, keepalive=30)
    client.loop_start()
    time.sleep(settle)
    for topic in sorted(topics):
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    return len(topics)


@pytest.fixture(scope="session")
def services(request, database_url, log_dir):
    """node-sim (seeds the greenhouse, then simulates the nodes), history-logger,
    mqtt-bridge and device-registry."""
    started: list[Service] = []
    clear_retained_moves()
    try:
        # device-registry first: it creates the broker account of each node
        # node-sim seeds (polling every second), and node-sim is healthy only
        # once a node has logged in.
        registry = start_service("device-registry", log_dir, {
            **_common_env(database_url),
            "BRIDGE_API_TOKEN": API_TOKEN,
            "DEVICE_ACCOUNT_SYNC_SEC": "1",
        })
        started.append(registry)
        sim = start_service("node-sim", log_dir, {
            **_common_env(database_url),
            "SIM_SEED_DB": "true",
            "SIM_API_TOKEN": API_TOKEN,
            "SIM_ZONES": "3",
            "SIM_NODES": "20",
            "SIM_TELEMETRY_INTERVAL_MS": "1000",
        })
        started.append(sim)
        logger = start_service("history-logger", log_dir, {
            **_common_env(database_url),
            "HISTORY_STREAM": HISTORY_STREAM,
            "HISTORY_DEAD_LETTER_KEY": HISTORY_DEAD_LETTER_KEY,
            "INSTANCE_ID": f"compat-{SESSION}",
            "HISTORY_SESSION_EXPIRY_SEC": "0",
        })
        started.append(logger)
        bridge = start_service("mqtt-bridge", log_dir, {
            **_common_env(database_url),
            "BRIDGE_API_TOKEN": API_TOKEN,
            "COMMAND_TIMEOUT_SEC": str(COMMAND_TIMEOUT_SEC),
        })
        started.append(bridge)
        yield {"node-sim": sim, "history-logger": logger, "mqtt-bridge": bridge,
               "device-registry": registry}
    finally:
        for svc in reversed(started):
            svc.stop()
        if request.session.testsfailed and started:
            # Teardown output is captured: write straight to the terminal.
            tr = request.config.pluginmanager.get_plugin("terminalreporter")
            capman = request.config.pluginmanager.get_plugin("capturemanager")
            with capman.global_and_fixture_disabled():
                for svc in started:
                    tr.write_line(f"\n--- {svc.name} log tail ({svc.log_path}) ---\n{svc.log_tail()}")
        elif not request.session.testsfailed:
            shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def bridge(services) -> Service:
    return services["mqtt-bridge"]


@pytest.fixture(scope="session")
def logger(services) -> Service:
    return services["history-logger"]


@pytest.fixture(scope="session")
def sim(services) -> Service:
    return services["node-sim"]


# ------------------------------------------------------------------ SQL


@pytest.fixture(scope="session")
def db(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def sql_rows(db, query: str, *args):
    with db.cursor() as cur:
        cur.execute(query, args)
        return cur.fetchall()


@pytest.fixture(scope="session")
def seeded(services, db):
    """Waits for node-sim's seed (greenhouse, zn-1, nd-ph-1 with pump_acid); returns the greenhouse uid."""
    def ready():
        rows = sql_rows(db, """
            select g.uid from greenhouses g
            join zones z on z.greenhouse_id = g.id
            join nodes n on n.zone_id = z.id
            join node_channels c on c.node_id = n.id
            where z.uid = 'zn-1' and n.uid = 'nd-ph-1' and c.channel = 'pump_acid'""")
        return rows[0][0] if rows else None

    return wait_until(ready, 30, 0.3, "node-sim to seed zn-1 / nd-ph-1 / pump_acid")


@pytest.fixture(scope="session")
def node_secret(seeded, db):
    def secret_of(node_uid: str) -> str:
        rows = sql_rows(db, "select secret from nodes where uid = %s", node_uid)
        assert rows, f"node {node_uid} not in the database"
        return rows[0][0] or NODE_DEFAULT_SECRET
    return secret_of


# ------------------------------------------------------------------ MQTT


@dataclass
class Received:
    topic: str
    payload: bytes
    at: float

    def json(self):
        return json.loads(self.payload)


@dataclass
class CommandListener:
    """Every message seen on hydro/{gh}/+/+/+/command since the session started."""
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_cmd(self, cmd_id: str) -> list[Received]:
        out = []
        with self.lock:
            msgs = list(self.messages)
        for m in msgs:
            try:
                if m.json().get("cmd_id") == cmd_id:
                    out.append(m)
            except (ValueError, AttributeError):
                pass
        return out

    def wait_for(self, cmd_id: str, timeout: float = 15) -> Received:
        return wait_until(lambda: (self.for_cmd(cmd_id) or [None])[0], timeout, 0.05,
                          f"MQTT command {cmd_id}")


@pytest.fixture(scope="session")
def commands_on_mqtt(seeded):
    listener = CommandListener()
    subscribed = threading.Event()
    topic = f"hydro/{seeded}/+/+/+/command"

    client = mqtt_client("compat-listener")

    def on_connect(c, userdata, flags, reason_code, properties):
        c.subscribe(topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        subscribed.set()

    def on_message(c, userdata, msg):
        with listener.lock:
            listener.messages.append(Received(msg.topic, msg.payload, time.time()))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(MQTT_HOST, MQTT_PORT, keepalive=30)
    client.loop_start()
    try:
        assert subscribed.wait(15), f"could not subscribe to {topic} on {MQTT_HOST}:{MQTT_PORT}"
        yield listener
    finally:
        client.loop_stop()
        client.disconnect()


# ------------------------------------------------------------------ HTTP


class Api:
    def __init__(self, base: str, token: str | None = API_TOKEN):
        self.base = base
        self.token = token
        self.http = requests.Session()

    def headers(self, token="default"):
        token = self.token if token == "default" else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, path: str, body, token="default", **kw) -> requests.Response:
        return self.http.post(self.base + path, json=body, headers=self.headers(token),
                              timeout=15, **kw)

    def get(self, path: str, token="default") -> requests.Response:
        return self.http.get(self.base + path, headers=self.headers(token), timeout=15)

    def command(self, cmd_id: str) -> dict:
        r = self.get(f"/bridge/commands/{cmd_id}")
        assert r.status_code == 200, f"GET /bridge/commands/{cmd_id}: {r.status_code} {r.text}"
        return r.json()["data"]

    def wait_status(self, cmd_id: str, statuses: set[str], timeout: float) -> dict:
        last = {}

        def reached():
            nonlocal last
            last = self.command(cmd_id)
            return last if last.get("status") in statuses else None

        try:
            return wait_until(reached, timeout, 0.2, f"command {cmd_id} to reach {statuses}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last seen: {json.dumps(last)}") from None


@pytest.fixture(scope="session")
def api(bridge, seeded) -> Api:
    return Api(bridge.url)


@pytest.fixture
def cmd_id() -> str:
    return f"compat-{uuid.uuid4().hex[:16]}"
