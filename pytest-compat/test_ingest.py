"""The ingest path from outside: what nodes publish on MQTT ends up in
PostgreSQL exactly once; what is malformed is counted and kept aside in Redis;
a node's OFFLINE/ONLINE status raises and resolves its alert."""
from __future__ import annotations

import json
import random
import time

import pytest
import redis
import requests

from conftest import (HISTORY_DEAD_LETTER_KEY, MQTT_HOST, MQTT_PORT, REDIS_URL, mqtt_client,
                      sql_rows, wait_until)


def publish(topic: str, payload: bytes | str, qos: int = 1) -> None:
    """Publishes one message with QoS 1 and waits for the broker's PUBACK."""
    client = mqtt_client("compat-pub")
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"broker did not acknowledge {topic}"
    finally:
        client.disconnect()
        client.loop_stop()


def telemetry_topic(gh: str, zone: str, node: str, channel: str) -> str:
    return f"hydro/{gh}/{zone}/{node}/{channel}/telemetry"


def samples_at(db, node: str, channel: str, ts: int) -> int:
    return sql_rows(db, """
        select count(*) from telemetry_samples s join nodes n on n.id = s.node_id
        where n.uid = %s and s.channel = %s and s.ts = to_timestamp(%s)""", node, channel, ts)[0][0]


def dead_letters() -> list[dict]:
    r = redis.Redis.from_url(REDIS_URL)
    return [json.loads(x) for x in r.lrange(HISTORY_DEAD_LETTER_KEY, 0, -1)]


@pytest.fixture
def unique_ts() -> int:
    # Seconds in the past (valid, >= 1e9) that no simulated node uses.
    return 1_600_000_000 + random.randrange(10_000_000)


def test_simulated_telemetry_lands(logger, seeded, db):
    def every_node_stored():
        n = sql_rows(db, "select count(distinct node_id) from telemetry_samples")[0][0]
        return n >= 20 or None
    wait_until(every_node_stored, 60, 0.5, "telemetry from all 20 simulated nodes")
    last = sql_rows(db, """
        select l.value, l.ts from telemetry_last l join nodes n on n.id = l.node_id
        where n.uid = 'nd-ph-1' and l.channel = 'ph_sensor' and l.metric_type = 'PH'""")
    assert len(last) == 1 and 3.5 <= last[0][0] <= 9.0, last


def test_a_redelivered_message_is_stored_once(logger, seeded, db, unique_ts):
    topic = telemetry_topic(seeded, "zn-1", "nd-ph-1", "ph_sensor")
    body = json.dumps({"metric_type": "PH", "value": 6.1, "ts": unique_ts})
    publish(topic, body)
    publish(topic, body)
    # A marker published after both: once it is stored, both were processed.
    marker = unique_ts + 1
    publish(topic, json.dumps({"metric_type": "PH", "value": 6.2, "ts": marker}))
    wait_until(lambda: samples_at(db, "nd-ph-1", "ph_sensor", marker) == 1 or None, 30, 0.2, "the marker row")
    assert samples_at(db, "nd-ph-1", "ph_sensor", unique_ts) == 1


def test_malformed_and_unknown_messages_are_kept_aside(logger, seeded, db, unique_ts):
    bad_topic = telemetry_topic(seeded, "zn-1", "nd-ph-1", "ph_sensor")
    ghost_topic = telemetry_topic(seeded, "zn-1", "nd-ghost", "ph_sensor")
    publish(bad_topic, b"this is not json")
    publish(ghost_topic, json.dumps({"metric_type": "PH", "value": 6.0, "ts": unique_ts}))
    good = unique_ts + 2
    publish(bad_topic, json.dumps({"metric_type": "PH", "value": 6.0, "ts": good}))

    def kept_aside():
        reasons = {(d["topic"], d["reason"]) for d in dead_letters()}
        return ({(bad_topic, "invalid_json"), (ghost_topic, "node_id_not_found")} <= reasons) or None
    wait_until(kept_aside, 30, 0.3, "both messages in the dead-letter list with their reasons")
    wait_until(lambda: samples_at(db, "nd-ph-1", "ph_sensor", good) == 1 or None, 30, 0.2,
               "the good message around them")
    metrics = requests.get(logger.url + "/metrics", timeout=10).text
    assert 'telemetry_dropped_total{reason="invalid_json"}' in metrics
    assert 'telemetry_dropped_total{reason="node_id_not_found"}' in metrics


def test_offline_raises_and_online_resolves_the_node_alert(logger, seeded, db):
    # A node of our own that sends nothing else: any uplink of a simulated
    # node would bring it back ONLINE at once (and resolve the alert) after
    # the OFFLINE this test publishes for it.
    node = "nd-compat-quiet"
    sql_rows(db, """insert into nodes (uid, zone_id, type)
                    select %s, id, 'ph' from zones where uid = 'zn-1'
                    on conflict (uid) do nothing returning id""", node)
    topic = f"hydro/{seeded}/zn-1/{node}/status"

    def alert_status():
        rows = sql_rows(db, """
            select a.status from alerts a join nodes n on n.id = a.node_id
            where n.uid = %s and a.type = 'node_offline' order by a.id desc limit 1""", node)
        return rows[0][0] if rows else None

    publish(topic, json.dumps({"status": "OFFLINE", "ts": int(time.time())}))
    wait_until(lambda: alert_status() == "ACTIVE" or None, 30, 0.2, "an ACTIVE node_offline alert")
    assert sql_rows(db, "select status from nodes where uid = %s", node)[0][0] == "OFFLINE"
    publish(topic, json.dumps({"status": "ONLINE", "ts": int(time.time())}))
    wait_until(lambda: alert_status() == "RESOLVED" or None, 30, 0.2, "the alert RESOLVED")
