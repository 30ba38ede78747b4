"""Issue 11 ("Trust") on the command path, from outside: forged moves, forged
command responses and NUL characters in a concurrent batch.

For each class: the refusal (status or reason, and its counter), the valid
traffic around it stored exactly once, and every service healthy afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import MQTT_HOST, MQTT_PORT, mqtt_client, sql_rows, wait_until

FINAL = {"DONE", "ERROR", "INVALID", "BUSY", "NO_EFFECT", "TIMEOUT", "SEND_FAILED"}
LIFECYCLE_TIMEOUT = 30
# A move's ts window is the commands' (10 s); "stale" is well outside it.
STALE_SEC = 120


# ------------------------------------------------------------------ helpers


def metric(url: str, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 if absent)."""
    text = requests.get(url + "/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + " ") or line.startswith(name + "{")):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def counters(url: str, name: str, reasons) -> dict[str, float]:
    """`name`'s value for each of `reasons` now."""
    return {reason: metric(url, name, reason=reason) for reason in reasons}


def wait_counted(url: str, name: str, before: dict[str, float]) -> None:
    """Waits until `name` has grown past `before` for each of its reasons."""
    for reason, was in before.items():
        wait_until(lambda r=reason, w=was: metric(url, name, reason=r) > w,
                   15, 0.3, f"{name}{{reason={reason}}} to grow")


def canonical(obj: dict) -> bytes:
    # The canonical form (sorted keys, no spaces) for the plain strings and
    # integers these payloads hold; docs/protocol.md §6.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_move(secret: str | None, url: str, ts: int, broker_id: str = "forged") -> bytes:
    move = {"mqtt_broker": url, "broker_id": broker_id, "fallback": [], "ts": ts}
    if secret is not None:
        move["sig"] = hmac.new(secret.encode(), canonical(move), hashlib.sha256).hexdigest()
    return json.dumps(move).encode()


class Publisher:
    """A connected MQTT client (the suite's backend login) for one test."""

    def __init__(self, prefix: str):
        self.connected = threading.Event()
        self.client = mqtt_client(prefix)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.connect(MQTT_HOST, MQTT_PORT, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(15), f"could not connect to {MQTT_HOST}:{MQTT_PORT}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sim_node(sim, uid: str) -> dict:
    nodes = requests.get(sim.url + "/sim/nodes", timeout=10).json()
    return next(n for n in nodes if n["uid"] == uid)


def node_zone(db, uid: str) -> str:
    rows = sql_rows(db, "select z.uid from nodes n join zones z on z.id = n.zone_id "
                        "where n.uid = %s", uid)
    assert rows, f"node {uid} has no zone"
    return rows[0][0]


def assert_all_healthy(services) -> None:
    for name, svc in services.items():
        assert svc.proc.poll() is None, f"{name} exited with {svc.proc.returncode}"
        r = requests.get(svc.url + "/health", timeout=10)
        assert r.status_code == 200, f"{name} /health: {r.status_code} {r.text}"


# ------------------------------------------------------------------ forged moves


def test_forged_moves_are_refused_counted_and_the_node_stays(sim, db, seeded, node_secret,
                                                             services):
    uid = "nd-ph-2"
    before_view = wait_until(lambda: (v := sim_node(sim, uid))["connected"] and v, 30, 0.3,
                             f"{uid} connected")
    home = before_view["broker_url"]
    secret = node_secret(uid)
    now = int(time.time())
    trap = "mqtt://127.0.0.1:1"  # nothing listens: a node following it would be cut off
    cases = {
        "unsigned": signed_move(None, trap, now),
        "bad_signature": signed_move("not-" + secret, trap, now),
        "stale": signed_move(secret, trap, now - STALE_SEC),
        "future": signed_move(secret, trap, now + STALE_SEC),
    }
    before = counters(sim.url, "sim_moves_refused_total", cases)
    topic = f"nodes/{uid}/config/update"
    publisher = Publisher("compat-forger")
    try:
        # Not retained: the suite's broker is shared, and a forged retained
        # message would outlive the test. Delivered live, as a forger's would be.
        for payload in cases.values():
            publisher.publish(topic, payload)
        wait_counted(sim.url, "sim_moves_refused_total", before)
    finally:
        publisher.close()

    # Not applied: still on its broker, still connected, still reading.
    time.sleep(1)
    view = sim_node(sim, uid)
    assert view["broker_url"] == home, view
    assert view["connected"], view
    started = time.time()
    wait_until(lambda: sql_rows(db, "select 1 from telemetry_samples s join nodes n "
                                    "on n.id = s.node_id where n.uid = %s "
                                    "and s.ts > to_timestamp(%s) limit 1", uid, started),
               30, 0.5, f"{uid} readings stored after the forged moves")
    assert_all_healthy(services)


# ------------------------------------------------------------------ forged responses


def test_forged_responses_do_not_end_a_command_and_the_real_done_lands(api, bridge, db, seeded,
                                                                       services):
    cmd_id = f"compat-trust-{uuid.uuid4().hex[:12]}"
    # A 3 s run: the node's DONE comes after the forged answers.
    body = {"cmd": "run_pump", "channel": "pump_acid", "node_uid": "nd-ph-1",
            "cmd_id": cmd_id, "params": {"duration_ms": 3000}}
    r = api.post("/bridge/zones/zn-1/commands", body)
    assert r.status_code == 200, r.text

    other = "nd-ph-2"
    forged_topics = {
        "wrong_node": f"hydro/{seeded}/{node_zone(db, other)}/{other}/pump_acid/command_response",
        "wrong_channel": f"hydro/{seeded}/zn-1/nd-ph-1/ph_sensor/command_response",
        "wrong_zone": f"hydro/{seeded}/zn-2/nd-ph-1/pump_acid/command_response",
    }
    reasons = list(forged_topics) + ["unknown_command"]
    before = counters(bridge.url, "bridge_responses_dropped_total", reasons)
    forged = {"cmd_id": cmd_id, "status": "ERROR", "ts": int(time.time() * 1000),
              "error_code": "forged", "error_message": "not from the node"}
    publisher = Publisher("compat-forger")
    try:
        for topic in forged_topics.values():
            publisher.publish(topic, json.dumps(forged).encode())
        publisher.publish(f"hydro/{seeded}/zn-1/nd-ph-1/pump_acid/command_response",
                          json.dumps({**forged, "cmd_id": "compat-no-such-command"}).encode())
        wait_counted(bridge.url, "bridge_responses_dropped_total", before)
    finally:
        publisher.close()

    final = api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)
    assert final["status"] == "DONE", final
    assert final["error_code"] is None, final
    rows = sql_rows(db, "select status, sent_at, finished_at from commands where cmd_id = %s",
                    cmd_id)
    assert len(rows) == 1 and rows[0][0] == "DONE" and rows[0][1] and rows[0][2], rows
    assert sql_rows(db, "select 1 from commands where cmd_id = 'compat-no-such-command'") == []
    assert_all_healthy(services)


# ------------------------------------------------------------------ NUL in a batch


def test_nul_in_a_concurrent_batch_fails_only_the_bad_requests(api, db, seeded, services):
    run = uuid.uuid4().hex[:8]
    valid = [("/bridge/zones/zn-1/commands",
              {"cmd": "stop", "channel": "pump_acid", "node_uid": "nd-ph-1",
               "cmd_id": f"compat-nul-{run}-{i:02}"}, None)
             for i in range(40)]
    bad = [
        ("/bridge/zones/zn%001/commands",
         {"cmd": "stop", "channel": "pump_acid", "node_uid": "nd-ph-1",
          "cmd_id": f"compat-nul-{run}-bad-path"}, "zone_id"),
        ("/bridge/nodes/nd-ph%001/commands",
         {"cmd": "stop", "channel": "pump_acid", "cmd_id": f"compat-nul-{run}-bad-node"},
         "node_uid"),
        ("/bridge/zones/zn-1/commands",
         {"cmd": "stop", "channel": "pump\u0000acid", "node_uid": "nd-ph-1",
          "cmd_id": f"compat-nul-{run}-bad-channel"}, "channel"),
        ("/bridge/zones/zn-1/commands",
         {"cmd": "st\u0000op", "channel": "pump_acid", "node_uid": "nd-ph-1",
          "cmd_id": f"compat-nul-{run}-bad-cmd"}, "cmd"),
        ("/bridge/zones/zn-1/commands",
         {"cmd": "stop", "channel": "pump_acid", "node_uid": "nd-ph-1\u0000",
          "cmd_id": f"compat-nul-{run}-bad-uid"}, "node_uid"),
        ("/bridge/zones/zn-1/commands",
         {"cmd": "run_pump", "channel": "pump_acid", "node_uid": "nd-ph-1",
          "cmd_id": f"compat-nul-{run}-bad-params",
          "params": {"duration_ms": 100, "note": {"deep": ["ok", "x\u0000"]}}},
         "params.note.deep[1]"),
        ("/bridge/zones/zn-1/commands",
         {"cmd": "stop", "channel": "pump_acid", "node_uid": "nd-ph-1",
          "cmd_id": f"compat-nul-{run}-bad\u0000id"}, "cmd_id"),
    ]
    # Interleaved, all in flight at once, so they share the bridge's group commit.
    requests_ = []
    for i, v in enumerate(valid):
        requests_.append(v)
        if i % 6 == 0 and bad:
            requests_.append(bad.pop(0))
    requests_.extend(bad)

    def send(item):
        path, body, field = item
        # One connection per request (a Session is not shared across threads).
        return item, requests.post(api.base + path, data=json.dumps(body),
                                   headers={**api.headers(), "Content-Type": "application/json"},
                                   timeout=30)

    with ThreadPoolExecutor(max_workers=len(requests_)) as pool:
        results = list(pool.map(send, requests_))

    for (path, body, field), r in results:
        if field is None:
            assert r.status_code == 200, f"{path} {body}: {r.status_code} {r.text}"
            continue
        assert r.status_code == 400, f"{path} {body!r}: {r.status_code} {r.text}"
        answer = r.json()
        assert answer["status"] == "error" and answer["code"] == "invalid_field", answer
        assert f"`{field}" in answer["message"], (field, answer)

    stored = sql_rows(db, "select cmd_id, count(*) from commands where cmd_id like %s "
                          "group by cmd_id order by cmd_id", f"compat-nul-{run}-%")
    assert stored == [(body["cmd_id"], 1) for _, body, _ in valid], stored
    for _, body, _ in valid[:3]:
        assert api.wait_status(body["cmd_id"], FINAL, LIFECYCLE_TIMEOUT)["status"] in FINAL
    assert_all_healthy(services)


# ------------------------------------------------------------------ clients that hang up


def test_a_client_hanging_up_never_leaves_a_command_queued(api, db, seeded, services):
    """64 clients at a time send a command and close their connection without
    waiting for the answer: every command the bridge wrote is still sent and
    recorded (SENT or later with its sent_at, or SEND_FAILED), none stays QUEUED."""
    import socket
    from urllib.parse import urlparse

    run = uuid.uuid4().hex[:8]
    url = urlparse(api.base)
    token = api.headers()["Authorization"]

    def hang_up(i: int) -> None:
        body = json.dumps({"cmd": "stop", "channel": "pump_acid", "node_uid": "nd-ph-1",
                           "cmd_id": f"compat-hang-{run}-{i:03}"}).encode()
        head = (f"POST /bridge/zones/zn-1/commands HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection((url.hostname, url.port), timeout=10) as s:
            s.sendall(head + body)
            # Gone before the answer: the request's future is dropped mid-send.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(hang_up, range(192)))

    def rows():
        return sql_rows(db, "select cmd_id, status, sent_at is not null from commands "
                            "where cmd_id like %s", f"compat-hang-{run}-%")

    def settled():
        current = rows()
        return current if current and all(s != "QUEUED" for _, s, _ in current) else None
    settled_rows = wait_until(settled, LIFECYCLE_TIMEOUT, 0.2, "every written command sent or failed")
    unsent = [(c, s) for c, s, sent in settled_rows if not sent and s != "SEND_FAILED"]
    assert unsent == [], f"delivered without a sent_at: {unsent[:5]}"
    assert len({c for c, _, _ in settled_rows}) == len(settled_rows), "a command was written twice"
    assert_all_healthy(services)
