"""A node that speaks only the firmware's protocol (firmware_node.py), from its
first boot to a DONE command, against the running services: time sync first,
unbound hello, bind through device-registry, NodeConfig on the temp topic,
config_report from its zone, telemetry stored under the zone, status ONLINE,
and a command with a float param signed the way the firmware checks it."""

from __future__ import annotations

import uuid

import pytest

from conftest import (MQTT_HOST, MQTT_PORT, NODE_DEFAULT_SECRET, PROVISION_LOGIN, Api, sql_rows,
                      wait_until)
from firmware_node import FirmwareNode


@pytest.fixture
def node():
    n = FirmwareNode(MQTT_HOST, MQTT_PORT, default_secret=NODE_DEFAULT_SECRET,
                     login=PROVISION_LOGIN)
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def registry(services) -> Api:
    return Api(services["device-registry"].url)


def test_time_request_is_answered(node):
    wait_until(lambda: node.synced, 15, 0.05, "hydro/time/response")
    import time
    assert abs(node.now() - time.time()) <= 2


def test_a_real_node_from_first_boot_to_a_done_command(node, registry, api, seeded, db):
    wait_until(lambda: node.synced, 15, 0.05, "hydro/time/response")
    node.hello()
    node.online()
    node.telemetry("ph_sensor", "PH", 6.1)

    # Listed, waiting for a bind; its temp traffic is not dead-lettered.
    def listed():
        r = registry.get("/api/nodes?state=unbound")
        assert r.status_code == 200, r.text
        return [n for n in r.json()["data"] if n["hardware_id"] == node.hardware_id]
    [entry] = wait_until(listed, 20, 0.3, "the unbound node in device-registry")
    assert entry["type"] == "ph"
    assert entry["fw_version"] == "2.0.1"

    uid = f"nd-real-{uuid.uuid4().hex[:6]}"
    r = registry.post(f"/api/nodes/{node.hardware_id}/bind",
                      {"greenhouse_uid": seeded, "zone_uid": "zn-1", "node_uid": uid,
                       "name": "real pH node"})
    assert r.status_code in (200, 202), r.text

    # The NodeConfig arrives on the temp topic, with a secret of its own.
    config = wait_until(lambda: node.config, 20, 0.1, "a NodeConfig for the node")
    assert config["node_id"] == uid and config["zone_uid"] == "zn-1"
    assert config["gh_uid"] == seeded and config["version"] == 3
    assert len(config["node_secret"]) >= 32
    assert config["mqtt"]["port"] == MQTT_PORT

    # Bound only once the config_report from its zone has arrived.
    def bound():
        rows = sql_rows(db, "select z.uid, n.secret, n.fw_version from nodes n "
                            "join zones z on z.id = n.zone_id where n.uid = %s", uid)
        return rows[0] if rows else None
    zone, secret, fw = wait_until(bound, 20, 0.2, f"{uid} bound to zn-1")
    assert zone == "zn-1" and secret == config["node_secret"] and fw == "2.0.1"

    # Telemetry under its zone, status ONLINE.
    ts = node.telemetry("ph_sensor", "PH", 5.9)
    node.heartbeat()
    wait_until(lambda: sql_rows(db, "select 1 from telemetry_samples s join nodes n on n.id = s.node_id "
                                    "join zones z on z.id = s.zone_id where n.uid = %s and z.uid = 'zn-1' "
                                    "and s.ts = to_timestamp(%s)", uid, ts),
               30, 0.3, "the bound node's telemetry stored under zn-1")
    wait_until(lambda: sql_rows(db, "select 1 from nodes where uid = %s and status = 'ONLINE'", uid),
               20, 0.3, f"{uid} ONLINE")

    # A command with an integral float: signed over `2`, as the firmware checks it.
    cmd_id = f"compat-real-{uuid.uuid4().hex[:12]}"
    r = api.post(f"/bridge/nodes/{uid}/commands",
                 {"cmd": "dose", "channel": "pump_acid", "params": {"ml": 2.0, "rate": 0.5},
                  "cmd_id": cmd_id})
    assert r.status_code == 200, r.text
    done = api.wait_status(cmd_id, {"DONE", "ERROR", "TIMEOUT", "SEND_FAILED"}, 30)
    errors = [x for x in node.responses if x["cmd_id"] == cmd_id and x["status"] == "ERROR"]
    assert done["status"] == "DONE", f"{done}; node said {errors}"
