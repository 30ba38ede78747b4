"""The command path seen from outside: REST in, signed MQTT out, lifecycle in SQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests

from conftest import API_TOKEN, COMMAND_TIMEOUT_SEC, sql_rows

FINAL = {"DONE", "ERROR", "INVALID", "BUSY", "NO_EFFECT", "TIMEOUT", "SEND_FAILED"}
# Polling limits: generous so a busy 2-core CI machine does not fail them.
LIFECYCLE_TIMEOUT = 20


def pump_body(cmd_id: str | None = None, **extra) -> dict:
    body = {"cmd": "run_pump", "channel": "pump_acid", "node_uid": "nd-ph-1",
            "params": {"duration_ms": 500}}
    if cmd_id:
        body["cmd_id"] = cmd_id
    body.update(extra)
    return body


def expected_sig(secret: str, command: dict) -> str:
    unsigned = {k: v for k, v in command.items() if k != "sig"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def assert_error(r: requests.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, f"expected {statuses}, got {r.status_code}: {r.text}"
    body = r.json()
    assert body.get("status") == "error", body
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def assert_sent(r: requests.Response, cmd_id: str, node_uid: str = "nd-ph-1") -> dict:
    assert r.status_code == 200, f"{r.status_code}: {r.text}"
    body = r.json()
    assert body["status"] == "ok", body
    data = body["data"]
    assert data["command_id"] == cmd_id
    assert data["status"] == "SENT"
    assert data["node_uid"] == node_uid
    assert isinstance(data["broker_id"], str) and data["broker_id"], data
    return data


def assert_history(data: dict, expected: list[str]) -> None:
    history = data.get("history")
    assert isinstance(history, list) and history, f"no status history: {data}"
    for entry in history:
        assert entry.get("at"), f"history entry without time: {entry}"
    seen = [entry["status"] for entry in history]
    it = iter(seen)
    assert all(s in it for s in expected), f"history {seen} lacks {expected} in that order"


def assert_row_done(db, cmd_id: str) -> None:
    rows = sql_rows(db, "select status, source, sent_at, ack_at, finished_at "
                        "from commands where cmd_id = %s", cmd_id)
    assert len(rows) == 1, rows
    status, source, sent_at, ack_at, finished_at = rows[0]
    assert (status, source) == ("DONE", "api")
    assert sent_at and ack_at and finished_at, rows[0]
    assert sent_at <= ack_at <= finished_at, rows[0]


def test_zone_command_is_signed_sent_acked_and_done(api, db, seeded, commands_on_mqtt,
                                                    node_secret, cmd_id):
    body = pump_body(cmd_id, params={"duration_ms": 2000})
    before = time.time()
    data = assert_sent(api.post("/bridge/zones/zn-1/commands", body), cmd_id)

    msg = commands_on_mqtt.wait_for(cmd_id)
    assert msg.topic == f"hydro/{seeded}/zn-1/nd-ph-1/pump_acid/command"
    command = msg.json()
    assert set(command) == {"cmd_id", "cmd", "params", "ts", "sig"}, command
    assert command["cmd"] == "run_pump"
    assert command["params"] == {"duration_ms": 2000}
    assert isinstance(command["ts"], int) and abs(command["ts"] - before) < 60, command
    assert command["sig"] == expected_sig(node_secret("nd-ph-1"), command)

    final = api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)
    assert final["status"] == "DONE", final
    assert_history(final, ["QUEUED", "SENT", "ACK", "DONE"])
    assert_row_done(db, cmd_id)
    assert data["broker_id"]


def test_zone_command_by_numeric_zone_id(api, db, cmd_id):
    zone_id = sql_rows(db, "select id from zones where uid = 'zn-1'")[0][0]
    assert_sent(api.post(f"/bridge/zones/{zone_id}/commands", pump_body(cmd_id)), cmd_id)
    assert api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)["status"] == "DONE"


def test_node_command_is_sent_and_done(api, db, commands_on_mqtt, node_secret, cmd_id):
    body = {"cmd": "run_pump", "channel": "pump_acid", "cmd_id": cmd_id,
            "params": {"duration_ms": 500}}
    assert_sent(api.post("/bridge/nodes/nd-ph-1/commands", body), cmd_id)

    command = commands_on_mqtt.wait_for(cmd_id).json()
    assert command["sig"] == expected_sig(node_secret("nd-ph-1"), command)

    final = api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)
    assert final["status"] == "DONE", final
    assert_history(final, ["QUEUED", "SENT", "ACK", "DONE"])
    assert_row_done(db, cmd_id)


def test_missing_token_is_401(api, db, cmd_id):
    assert_error(api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id), token=None), 401)
    assert sql_rows(db, "select 1 from commands where cmd_id = %s", cmd_id) == []


def test_wrong_token_is_401(api, db, cmd_id):
    r = api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id), token="not-the-token")
    assert_error(r, 401)
    assert sql_rows(db, "select 1 from commands where cmd_id = %s", cmd_id) == []


@pytest.mark.parametrize("path,body", [
    ("/bridge/zones/zn-nope/commands", pump_body()),
    ("/bridge/zones/zn-1/commands", pump_body(node_uid="nd-nope-1")),
    ("/bridge/zones/zn-1/commands", pump_body(channel="no_such_channel")),
    ("/bridge/nodes/nd-nope-1/commands", {"cmd": "run_pump", "channel": "pump_acid"}),
], ids=["unknown-zone", "unknown-node", "unknown-channel", "unknown-node-path"])
def test_unknown_target_is_404(api, path, body):
    assert_error(api.post(path, body), 404)


def test_legacy_type_field_is_rejected_by_name(api, db, cmd_id):
    body = assert_error(api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id, type="run_pump")),
                        400)
    assert "type" in body["message"], body
    assert sql_rows(db, "select 1 from commands where cmd_id = %s", cmd_id) == []


def test_missing_cmd_is_rejected(api, cmd_id):
    body = pump_body(cmd_id)
    del body["cmd"]
    assert_error(api.post("/bridge/zones/zn-1/commands", body), 400, 422)


def test_same_cmd_id_same_body_is_idempotent(api, db, commands_on_mqtt, cmd_id):
    body = pump_body(cmd_id)
    first = assert_sent(api.post("/bridge/zones/zn-1/commands", body), cmd_id)
    second = api.post("/bridge/zones/zn-1/commands", body)
    assert second.status_code == 200, second.text
    assert second.json()["data"]["command_id"] == first["command_id"] == cmd_id

    api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)
    # A second publish would have followed the second POST, which came before the
    # node's answers; allow a little delivery slack before counting.
    time.sleep(1)
    assert len(commands_on_mqtt.for_cmd(cmd_id)) == 1
    assert sql_rows(db, "select count(*) from commands where cmd_id = %s", cmd_id) == [(1,)]


def test_same_cmd_id_other_body_is_409(api, db, cmd_id):
    assert_sent(api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id)), cmd_id)
    other = pump_body(cmd_id, params={"duration_ms": 9999})
    assert_error(api.post("/bridge/zones/zn-1/commands", other), 409)
    assert sql_rows(db, "select count(*) from commands where cmd_id = %s", cmd_id) == [(1,)]


def test_unknown_command_ends_invalid(api, db, cmd_id):
    body = pump_body(cmd_id, cmd="no_such_command", params={})
    assert_sent(api.post("/bridge/zones/zn-1/commands", body), cmd_id)
    final = api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)
    assert final["status"] == "INVALID", final
    rows = sql_rows(db, "select status, error_code, finished_at from commands where cmd_id = %s",
                    cmd_id)
    assert len(rows) == 1 and rows[0][0] == "INVALID", rows
    assert rows[0][1], f"error_code not set: {rows}"
    assert rows[0][2], f"finished_at not set: {rows}"


def test_health_and_metrics(bridge, sim):
    r = requests.get(bridge.url + "/health", timeout=10)
    assert r.status_code == 200, r.text
    assert isinstance(r.json(), dict)

    r = requests.get(bridge.url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert "# TYPE " in r.text, r.text[:500]
    assert "http_requests_total{" in r.text, r.text[:500]
    assert "commands_created_total{" in r.text, r.text[:500]

    assert requests.get(sim.url + "/health", timeout=10).status_code == 200


def test_unanswered_command_times_out(api, db, sim, cmd_id):
    r = requests.put(sim.url + "/sim/faults", json={"drop_responses": 1.0}, timeout=10,
                     headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.ok, f"PUT /sim/faults: {r.status_code} {r.text}"
    try:
        assert_sent(api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id)), cmd_id)
        final = api.wait_status(cmd_id, FINAL, COMMAND_TIMEOUT_SEC + 15)
        assert final["status"] == "TIMEOUT", final
        rows = sql_rows(db, "select status, extract(epoch from finished_at - sent_at) "
                            "from commands where cmd_id = %s", cmd_id)
        assert rows[0][0] == "TIMEOUT", rows
        # Not before its time: the sweeper waits COMMAND_TIMEOUT_SEC after the send.
        assert float(rows[0][1]) >= COMMAND_TIMEOUT_SEC - 0.5, rows
    finally:
        requests.put(sim.url + "/sim/faults", json={"drop_responses": 0.0}, timeout=10,
                     headers={"Authorization": f"Bearer {API_TOKEN}"})


def test_faults_restored_commands_complete_again(api, cmd_id):
    # Runs after the timeout test (file order): the node answers again.
    assert_sent(api.post("/bridge/zones/zn-1/commands", pump_body(cmd_id)), cmd_id)
    assert api.wait_status(cmd_id, FINAL, LIFECYCLE_TIMEOUT)["status"] == "DONE"
