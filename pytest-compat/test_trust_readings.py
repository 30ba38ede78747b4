"""Readings are checked before they are stored (issue 11), from outside.

Against the suite's history-logger: each bad reading is refused with its own
reason, counted on /metrics (`telemetry_dropped_total{reason}`) and kept aside
in the dead-letter list; the valid readings interleaved with the bad ones are
stored exactly once; `telemetry_last` is never frozen by a reading from the
future; two readings of one second are never silently lost; only the
firmware's last will (`offline`) marks a node OFFLINE; the services stay
healthy.

Every test uses a node of its own (created in SQL in node-sim's zn-1, with its
channels), so node-sim's simulated readings never share its keys. MQTT clients
come from `conftest.mqtt_client()` (the suite's backend login, which may
publish any topic: misrouted topics are simulated that way)."""
from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from conftest import sql_rows, wait_until
from test_ingest import dead_letters, publish, telemetry_topic

# The logger's default HISTORY_MAX_FUTURE_SKEW_SEC.
MAX_FUTURE_SKEW_SEC = 300


def dropped(logger, reason: str) -> float:
    """`telemetry_dropped_total{reason="…"}` on the logger's /metrics (0 if absent)."""
    text = requests.get(logger.url + "/metrics", timeout=10).text
    needle = f'reason="{reason}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("telemetry_dropped_total{") and needle in line)


def reading(metric: str, value, ts: int) -> str:
    return json.dumps({"metric_type": metric, "value": value, "ts": ts})


@pytest.fixture
def node(seeded, db) -> str:
    """A quiet node of this test's own in zn-1: `ph_sensor` (PH), `temp_air`
    (TEMPERATURE) and the actuator `pump_acid`."""
    uid = f"nd-compat-rd-{uuid.uuid4().hex[:8]}"
    sql_rows(db, """insert into nodes (uid, zone_id, type)
                    select %s, id, 'ph' from zones where uid = 'zn-1' returning id""", uid)
    for channel, kind, metric in [("ph_sensor", "sensor", "PH"),
                                  ("temp_air", "sensor", "TEMPERATURE"),
                                  ("pump_acid", "actuator", None)]:
        sql_rows(db, """insert into node_channels (node_id, channel, type, metric_type)
                        select id, %s, %s, %s from nodes where uid = %s returning id""",
                 channel, kind, metric, uid)
    return uid


def samples(db, node: str) -> list[tuple]:
    """(channel, metric, value, ts) of every stored reading of `node`."""
    return sql_rows(db, """
        select s.channel, s.metric_type, s.value, extract(epoch from s.ts)::int8
        from telemetry_samples s join nodes n on n.id = s.node_id
        where n.uid = %s order by s.ts, s.channel""", node)


def last(db, node: str, channel: str = "ph_sensor") -> tuple | None:
    rows = sql_rows(db, """
        select l.value, extract(epoch from l.ts)::int8 from telemetry_last l
        join nodes n on n.id = l.node_id where n.uid = %s and l.channel = %s""", node, channel)
    return rows[0] if rows else None


def letters_of(node: str) -> list[dict]:
    return [d for d in dead_letters() if f"/{node}/" in d["topic"]]


def wait_letters(node: str, n: int) -> list[dict]:
    return wait_until(lambda: (lambda l: l if len(l) >= n else None)(letters_of(node)),
                      30, 0.2, f"{n} dead letters of {node}")


def interleave(logger, db, node: str, bad: list[tuple[str, str, str]], t0: int) -> None:
    """Publishes a valid reading of `node` before each bad one and one after them
    all, then checks: each bad one refused with its reason, kept aside and
    counted; the valid ones stored exactly once; the logger healthy."""
    reasons = sorted({reason for _, _, reason in bad})
    before = {r: dropped(logger, r) for r in reasons}
    good_topic = telemetry_topic(gh_of(db), "zn-1", node, "ph_sensor")
    valid = []
    for i, (topic, payload, _) in enumerate(bad):
        ts = t0 + i
        publish(good_topic, reading("PH", 6.0, ts))
        valid.append(ts)
        publish(topic, payload)
    publish(good_topic, reading("PH", 6.0, t0 + len(bad)))
    valid.append(t0 + len(bad))

    letters = wait_letters(node, len(bad))
    got = sorted(d["reason"] for d in letters)
    assert got == sorted(reason for _, _, reason in bad), letters
    for d in letters:
        assert d["detail"], d
    wait_until(lambda: len(samples(db, node)) >= len(valid) or None,
               30, 0.2, f"{len(valid)} valid readings of {node}")
    time.sleep(1.0)  # anything doubled or misfiled would show by now
    stored = samples(db, node)
    assert stored == [("ph_sensor", "PH", 6.0, ts) for ts in valid], stored
    for reason in reasons:
        want = sum(1 for _, _, r in bad if r == reason)
        assert dropped(logger, reason) - before[reason] >= want, reason
    assert requests.get(logger.url + "/health", timeout=10).status_code == 200


def gh_of(db) -> str:
    return sql_rows(db, """select g.uid from greenhouses g join zones z on z.greenhouse_id = g.id
                           where z.uid = 'zn-1'""")[0][0]


def test_a_future_reading_is_refused_and_current_ones_land_in_telemetry_last(logger, db, node):
    gh = gh_of(db)
    topic = telemetry_topic(gh, "zn-1", node, "ph_sensor")
    now = int(time.time())
    publish(topic, reading("PH", 9.0, now + 3600))
    publish(topic, reading("PH", 9.1, 253402300799))  # 9999-12-31
    publish(topic, reading("PH", 6.0, now - 2))
    publish(topic, reading("PH", 6.1, now - 1))
    wait_until(lambda: len(samples(db, node)) >= 2 or None, 30, 0.2, "the current readings stored")
    assert wait_until(lambda: last(db, node) == (6.1, now - 1) or None, 30, 0.2,
                      "telemetry_last at the newest current reading")
    # Within the skew a clock a little ahead is stored as history, but is not
    # the current value …
    ahead = now + MAX_FUTURE_SKEW_SEC // 2
    publish(topic, reading("PH", 6.2, ahead))
    wait_until(lambda: len(samples(db, node)) >= 3 or None, 30, 0.2, "the reading within the skew")
    assert last(db, node) == (6.1, now - 1)
    # … and the next current reading still lands.
    current = int(time.time())
    publish(topic, reading("PH", 6.3, current))
    wait_until(lambda: last(db, node) == (6.3, current) or None, 30, 0.2,
               "a current reading after one from the future")
    letters = wait_letters(node, 2)
    # 9999-12-31T23:59:59 is still a valid timestamp: both are refused as future.
    assert sorted(d["reason"] for d in letters) == ["future_ts", "future_ts"], letters
    assert [v for _, _, v, _ in samples(db, node)] == [6.0, 6.1, 6.3, 6.2]
    assert dropped(logger, "future_ts") >= 1


def test_a_reading_under_another_zone_or_greenhouse_is_refused(logger, db, node):
    gh = gh_of(db)
    t0 = int(time.time()) - 600
    interleave(logger, db, node, [
        (telemetry_topic(gh, "zn-2", node, "ph_sensor"), reading("PH", 6.5, t0 + 100), "zone_mismatch"),
        (telemetry_topic("gh-compat-elsewhere", "zn-1", node, "ph_sensor"),
         reading("PH", 6.5, t0 + 101), "greenhouse_mismatch"),
    ], t0)
    # Nothing of it was filed under zn-2.
    assert sql_rows(db, """select count(*) from telemetry_samples s join nodes n on n.id = s.node_id
                           join zones z on z.id = s.zone_id where n.uid = %s and z.uid <> 'zn-1'""",
                    node)[0][0] == 0


def test_an_unknown_channel_or_a_wrong_metric_is_refused(logger, db, node):
    gh = gh_of(db)
    t0 = int(time.time()) - 600
    interleave(logger, db, node, [
        (telemetry_topic(gh, "zn-1", node, "ec_sensor"), reading("EC", 1.5, t0 + 100), "unknown_channel"),
        (telemetry_topic(gh, "zn-1", node, "ph_sensor"), reading("EC", 1.5, t0 + 101), "metric_mismatch"),
        (telemetry_topic(gh, "zn-1", node, "pump_acid"), reading("PH", 6.5, t0 + 102), "metric_mismatch"),
    ], t0)


def test_out_of_range_and_nan_values_are_refused(logger, db, node):
    gh = gh_of(db)
    t0 = int(time.time()) - 600
    ph = telemetry_topic(gh, "zn-1", node, "ph_sensor")
    interleave(logger, db, node, [
        (ph, reading("PH", -5, t0 + 100), "out_of_range"),
        (ph, reading("PH", 1e308, t0 + 101), "out_of_range"),
        (telemetry_topic(gh, "zn-1", node, "temp_air"), reading("TEMPERATURE", 126, t0 + 102),
         "out_of_range"),
        # json.dumps writes NaN as the bare word NaN, which is not JSON.
        (ph, reading("PH", float("nan"), t0 + 103), "non_finite_value"),
        (ph, '{"metric_type":"PH","value":1e400,"ts":%d}' % (t0 + 104), "non_finite_value"),
    ], t0)


def test_a_second_different_reading_of_the_same_second_is_refused_not_lost(logger, db, node):
    gh = gh_of(db)
    topic = telemetry_topic(gh, "zn-1", node, "ph_sensor")
    t = int(time.time()) - 30
    before = dropped(logger, "same_second")
    # Back to back: one is stored (the first, or the first committed when they
    # fall into two batches written at once) and the other refused.
    publish(topic, reading("PH", 6.0, t))
    publish(topic, reading("PH", 6.4, t))
    wait_until(lambda: samples(db, node) or None, 30, 0.2, "one reading of the second stored")
    wait_letters(node, 1)
    kept = samples(db, node)[0][2]
    loser = 6.4 if kept == 6.0 else 6.0
    # Once one is stored: a different one is refused, the same one again (a
    # redelivery) is not; a reading of the second before marks the end.
    publish(topic, reading("PH", 6.8, t))
    publish(topic, reading("PH", kept, t))
    publish(topic, reading("PH", 6.1, t - 1))
    wait_until(lambda: len(samples(db, node)) >= 2 or None, 30, 0.2, "the marker stored")
    wait_letters(node, 2)
    time.sleep(1.0)
    letters = letters_of(node)
    assert [d["reason"] for d in letters] == ["same_second", "same_second"], letters
    assert sorted(json.loads(d["payload"])["value"] for d in letters) == sorted([loser, 6.8])
    assert samples(db, node) == [("ph_sensor", "PH", 6.1, t - 1), ("ph_sensor", "PH", kept, t)]
    # telemetry_last and telemetry_samples agree on that second.
    assert last(db, node) == (kept, t)
    assert dropped(logger, "same_second") - before >= 2


def test_only_the_firmwares_last_will_marks_a_node_offline(logger, db, node):
    gh = gh_of(db)
    base = f"hydro/{gh}/zn-1/{node}"

    def status():
        return sql_rows(db, "select status from nodes where uid = %s", node)[0][0]

    publish(f"{base}/status", json.dumps({"status": "ONLINE", "ts": int(time.time())}))
    wait_until(lambda: status() == "ONLINE" or None, 30, 0.2, f"{node} ONLINE")
    before = dropped(logger, "invalid_lwt")
    for garbage in ["", "garbage", "OFFLINE", '{"status":"OFFLINE"}']:
        publish(f"{base}/lwt", garbage)
    letters = wait_letters(node, 4)
    assert [d["reason"] for d in letters] == ["invalid_lwt"] * 4, letters
    assert status() == "ONLINE"
    assert dropped(logger, "invalid_lwt") - before >= 4
    publish(f"{base}/lwt", "offline")
    wait_until(lambda: status() == "OFFLINE" or None, 30, 0.2, f"{node} OFFLINE on its last will")


def test_every_service_is_healthy_after_the_barrage(services):
    for name, svc in services.items():
        r = requests.get(svc.url + "/health", timeout=10)
        assert r.status_code == 200, f"{name}: {r.status_code} {r.text}"
