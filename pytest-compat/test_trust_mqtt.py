"""The broker from outside (issue 11): nobody gets in without an account, an
unbound node's login is held to its own hardware id, only backend accounts
join the services' shared subscriptions, an oversized message is refused at
publish time. For each: the refusal, the valid traffic around it stored
exactly once, and every service still healthy."""
from __future__ import annotations

import json
import random
import subprocess
import threading
import time
import uuid

import pytest
import requests

from conftest import (BACKEND_LOGIN, MQTT_HOST, MQTT_PORT, PROVISION_LOGIN, SESSION, mqtt_client,
                      sql_rows, wait_until)

TEMP = "hydro/gh-temp/zn-temp"
MAX_PAYLOAD_BYTES = 16384  # = proto::payloads::MAX_PAYLOAD_BYTES, the brokers' message_size_limit
NOT_AUTHORIZED = 0x87
BAD_LOGIN = 0x86
PACKET_TOO_LARGE = 0x95


class Client:
    """A connected paho client that records what it receives and its SUBACKs."""

    def __init__(self, *, user=..., password=None, client_id=None, prefix="compat-trust"):
        kw = {} if user is ... else {"user": user, "password": password}
        self.c = mqtt_client(prefix, client_id=client_id, **kw)
        self.connack = threading.Event()
        self.reason = None
        self.received: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[int]] = {}
        self.lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        # Refused logins must not be retried forever by paho's loop.
        self.c.reconnect_delay_set(5, 5)

    def _on_connect(self, c, userdata, flags, reason_code, properties):
        self.reason = reason_code.value
        self.connack.set()

    def _on_message(self, c, userdata, msg):
        with self.lock:
            self.received.append((msg.topic, msg.payload))

    def _on_subscribe(self, c, userdata, mid, reason_codes, properties):
        with self.lock:
            self.subacks[mid] = [rc.value for rc in reason_codes]

    def connect(self) -> int:
        self.c.connect(MQTT_HOST, MQTT_PORT, keepalive=30)
        self.c.loop_start()
        assert self.connack.wait(15), "no CONNACK"
        return self.reason

    def subscribe(self, topic: str) -> int:
        """Subscribes with QoS 1; the SUBACK's reason code (1 = granted QoS 1)."""
        _, mid = self.c.subscribe(topic, qos=1)
        wait_until(lambda: mid in self.subacks, 10, 0.02, f"SUBACK for {topic}")
        return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.received]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(**kw) -> Client:
        client = Client(**kw)
        made.append(client)
        return client
    yield make
    for client in made:
        client.close()


def all_healthy(services) -> None:
    for name, svc in services.items():
        r = requests.get(svc.url + "/health", timeout=5)
        assert r.status_code == 200, f"{name} /health: {r.status_code} {r.text}"


def samples_at(db, node: str, channel: str, ts: int) -> int:
    return sql_rows(db, """
        select count(*) from telemetry_samples s join nodes n on n.id = s.node_id
        where n.uid = %s and s.channel = %s and s.ts = to_timestamp(%s)""", node, channel, ts)[0][0]


def readings(seeded: str, count: int) -> list[tuple[str, str, int]]:
    """`count` valid pH readings of nd-ph-1 at past seconds no simulated node uses."""
    base = 1_600_000_000 + random.randrange(10_000_000)
    topic = f"hydro/{seeded}/zn-1/nd-ph-1/ph_sensor/telemetry"
    return [(topic, json.dumps({"metric_type": "PH", "value": 6.0 + i / 100, "ts": base + i}),
             base + i) for i in range(count)]


def assert_stored_once(db, sent: list[tuple[str, str, int]]) -> None:
    def stored():
        return all(samples_at(db, "nd-ph-1", "ph_sensor", ts) >= 1 for _, _, ts in sent) or None
    wait_until(stored, 30, 0.2, f"{len(sent)} valid readings stored")
    counts = [samples_at(db, "nd-ph-1", "ph_sensor", ts) for _, _, ts in sent]
    assert counts == [1] * len(sent), counts


def test_anonymous_and_wrong_password_are_refused(services, clients):
    anonymous = clients(user=None)
    assert anonymous.connect() in (NOT_AUTHORIZED, BAD_LOGIN)
    wrong = clients(user=BACKEND_LOGIN[0], password=BACKEND_LOGIN[1] + "x")
    assert wrong.connect() in (NOT_AUTHORIZED, BAD_LOGIN)
    nobody = clients(user=f"nobody-{uuid.uuid4().hex[:6]}", password="x" * 32)
    assert nobody.connect() in (NOT_AUTHORIZED, BAD_LOGIN)
    # The backend account still gets in.
    assert clients().connect() == 0
    all_healthy(services)


def test_an_unbound_node_login_is_held_to_its_own_hardware_id(services, clients):
    own, other = f"compat-hw-{uuid.uuid4().hex[:8]}", f"compat-hw-{uuid.uuid4().hex[:8]}"
    watcher = clients()
    assert watcher.connect() == 0
    assert watcher.subscribe(f"{TEMP}/{own}/#") == 1
    assert watcher.subscribe(f"{TEMP}/{other}/#") == 1

    node = clients(user=PROVISION_LOGIN[0], password=PROVISION_LOGIN[1], client_id=own)
    assert node.connect() == 0
    # Nothing beyond the temp namespace and the time response; no shared subscription.
    assert node.subscribe("hydro/#") == NOT_AUTHORIZED
    assert node.subscribe("nodes/#") == NOT_AUTHORIZED
    assert node.subscribe(f"$share/g-{SESSION}/{TEMP}/#") == NOT_AUTHORIZED
    # Mosquitto 2.0 grants these two (the acl_file checks deliveries, not
    # SUBSCRIBEs), so what counts is below: nothing of `other` arrives.
    node.subscribe(f"{TEMP}/{other}/config")
    node.subscribe(f"{TEMP}/{other}/+/command")
    assert node.subscribe(f"{TEMP}/{own}/config") == 1
    assert node.subscribe(f"{TEMP}/{own}/+/command") == 1

    # Downlink: the backend writes to both hardware ids; only its own arrives.
    backend = clients()
    assert backend.connect() == 0
    backend.publish(f"{TEMP}/{other}/config", b"{}")
    backend.publish(f"{TEMP}/{other}/ph_sensor/command", b"{}")
    backend.publish(f"{TEMP}/{own}/config", b"{}")
    backend.publish(f"{TEMP}/{own}/ph_sensor/command", b"{}")
    wait_until(lambda: len(node.topics()) >= 2 or None, 10, 0.05, "own config and command")

    # Uplink: it may publish as itself, never as another hardware id.
    node.publish(f"{TEMP}/{other}/ph_sensor/telemetry", b"{}")
    node.publish(f"{TEMP}/{other}/status", b"{}")
    node.publish(f"{TEMP}/{own}/status", b"{}")
    wait_until(lambda: f"{TEMP}/{own}/status" in watcher.topics() or None, 10, 0.05,
               "the node's own status")
    time.sleep(0.3)  # anything else in flight would have arrived with it

    assert {f"{TEMP}/{own}/config", f"{TEMP}/{own}/ph_sensor/command"} <= set(node.topics())
    assert not [t for t in node.topics() if t.startswith(f"{TEMP}/{other}/")], node.topics()
    assert not [t for t in watcher.topics() if t.startswith(f"{TEMP}/{other}/")
                and t.endswith(("telemetry", "status"))], watcher.topics()
    all_healthy(services)


def test_only_backend_accounts_join_the_services_shared_subscriptions(services, seeded, db,
                                                                     clients):
    # history-logger's group in this suite (conftest: MQTT_SHARE_GROUP).
    group = f"compat-{SESSION}"
    thief = clients(user=PROVISION_LOGIN[0], password=PROVISION_LOGIN[1],
                    client_id=f"compat-hw-{uuid.uuid4().hex[:8]}")
    assert thief.connect() == 0
    assert thief.subscribe(f"$share/{group}/hydro/+/+/+/+/telemetry") == NOT_AUTHORIZED
    assert thief.subscribe(f"$share/{group}/hydro/#") == NOT_AUTHORIZED
    assert thief.subscribe("hydro/+/+/+/+/telemetry") == NOT_AUTHORIZED

    sent = readings(seeded, 40)
    publisher = clients()
    assert publisher.connect() == 0
    for topic, body, _ in sent:
        publisher.publish(topic, body)
    assert_stored_once(db, sent)
    assert thief.topics() == []
    all_healthy(services)


def test_an_oversized_publish_is_refused_at_the_broker(services, seeded, db):
    user, password = BACKEND_LOGIN
    topic = f"hydro/{seeded}/zn-1/nd-ph-1/ph_sensor/telemetry"
    body = json.dumps({"metric_type": "PH", "value": 6.2, "ts": 1_600_000_000, "unit": "",
                       "pad": "x" * MAX_PAYLOAD_BYTES})
    assert len(body) > MAX_PAYLOAD_BYTES
    # mosquitto_pub shows the PUBACK's reason code (paho 2 cannot parse a
    # PUBACK with 0x95 and drops the connection instead).
    out = subprocess.run(
        ["mosquitto_pub", "-h", MQTT_HOST, "-p", str(MQTT_PORT), "-V", "mqttv5", "-q", "1",
         "-u", user, "-P", password, "-t", topic, "-s", "-d"],
        input=body.encode(), capture_output=True, timeout=20)
    log = out.stdout.decode() + out.stderr.decode()
    assert f"RC:{PACKET_TOO_LARGE}" in log, log

    # The same path still carries valid readings, each stored once.
    sent = readings(seeded, 5)
    publisher = Client()
    assert publisher.connect() == 0
    try:
        for t, b, _ in sent:
            publisher.publish(t, b)
    finally:
        publisher.close()
    assert_stored_once(db, sent)
    all_healthy(services)


def node_login(db, uid: str) -> tuple[str, str, str]:
    """(zone uid, username, password) of a seeded node's own broker account."""
    rows = sql_rows(db, "select z.uid, n.mqtt_password from nodes n join zones z on z.id = n.zone_id "
                        "where n.uid = %s", uid)
    assert rows and rows[0][1], f"{uid} has no broker account"
    return rows[0][0], uid, rows[0][1]


def test_a_node_account_may_use_only_its_own_topics(services, seeded, db, clients):
    # nd-ph-2 logs in as itself (a second connection beside node-sim's one).
    zone2, user, password = node_login(db, "nd-ph-2")
    zone1, _, _ = node_login(db, "nd-ph-1")
    own = f"hydro/{seeded}/{zone2}/nd-ph-2"
    other = f"hydro/{seeded}/{zone1}/nd-ph-1"
    # A backend watcher sees what reaches the other node's downlink.
    watcher = clients(prefix="compat-watch")
    assert watcher.connect() == 0
    for topic in (f"{other}/+/command", f"{other}/config", "nodes/nd-ph-1/config/update"):
        assert watcher.subscribe(topic) == 1
    time.sleep(0.5)
    retained = watcher.topics()  # anything retained there from before

    node = clients(user=user, password=password, prefix="compat-node")
    assert node.connect() == 0, "a node logs in with its own account"
    # Its own downlink: granted. Anyone else's, the whole tree, a shared group: refused.
    assert node.subscribe(f"{own}/+/command") == 1
    assert node.subscribe(f"{own}/config") == 1
    for topic in (f"{other}/+/command", f"{other}/config", "nodes/nd-ph-1/config/update",
                  "hydro/#", f"$share/{SESSION}/hydro/#", f"$share/compat-{SESSION}/hydro/+/+/+/+/telemetry"):
        assert node.subscribe(topic) == NOT_AUTHORIZED, topic

    # It cannot speak for another node, nor send commands, configs or moves …
    base = 1_600_000_000 + random.randrange(10_000_000)
    forged = json.dumps({"metric_type": "PH", "value": 6.5, "ts": base})
    node.publish(f"{other}/ph_sensor/telemetry", forged)
    node.publish(f"{other}/pump_acid/command", json.dumps({"cmd": "dose", "cmd_id": "forged"}))
    node.publish(f"{other}/config", "{}")
    node.publish("nodes/nd-ph-1/config/update", json.dumps({"mqtt_broker": "mqtt://127.0.0.1:1"}))
    # … while its own readings land exactly once.
    channel = sql_rows(db, """select c.channel from node_channels c join nodes n on n.id = c.node_id
                              where n.uid = 'nd-ph-2' and c.metric_type = 'PH'""")[0][0]
    mine = [base + 1, base + 2, base + 3]
    for i, ts in enumerate(mine):
        node.publish(f"{own}/{channel}/telemetry",
                     json.dumps({"metric_type": "PH", "value": 6.0 + i / 10, "ts": ts}))
    wait_until(lambda: all(samples_at(db, "nd-ph-2", channel, ts) for ts in mine) or None,
               30, 0.2, "nd-ph-2's own readings stored")
    assert [samples_at(db, "nd-ph-2", channel, ts) for ts in mine] == [1, 1, 1]
    assert samples_at(db, "nd-ph-1", "ph_sensor", base) == 0, "a forged reading was stored"
    time.sleep(1)
    assert watcher.topics() == retained, f"forged downlink got through: {watcher.topics()}"
    all_healthy(services)
