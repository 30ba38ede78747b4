"""automation-engine and scheduler from outside: zones and nodes are registered
in SQL, readings arrive as node telemetry over MQTT (history-logger stores them),
and what the services decide is seen on MQTT (signed commands) and in SQL
(`commands`, `zone_events`, `schedule_fires`) — the way an operator would check."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import NODE_DEFAULT_SECRET, _common_env, sql_rows, start_service, wait_until
from test_commands import expected_sig
from test_ingest import publish, telemetry_topic


@pytest.fixture(scope="module")
def automation(services, database_url, log_dir):
    svc = start_service("automation-engine", log_dir, {
        **_common_env(database_url),
        "AUTOMATION_INTERVAL_SEC": "1",
        "AUTOMATION_EVENT_REPEAT_SEC": "0",
    })
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def scheduler(services, database_url, log_dir):
    svc = start_service("scheduler", log_dir, {**_common_env(database_url), "SCHEDULER_TICK_SEC": "1"})
    yield svc
    svc.stop()


def new_zone(db, gh: str, channels: dict[str, str | None], capabilities: dict | None = None):
    """A zone of its own with one node; `channels` maps channel -> metric (None: actuator)."""
    suffix = uuid.uuid4().hex[:8]
    zone, node = f"zn-compat-{suffix}", f"nd-compat-{suffix}"
    sql_rows(db, """
        with z as (insert into zones (uid, greenhouse_id, name, capabilities)
                   select %s, id, 'compat', %s::jsonb from greenhouses where uid = %s returning id)
        insert into nodes (uid, zone_id, type) select %s, id, 'compat' from z returning id""",
             zone, json.dumps(capabilities or {}), gh, node)
    for channel, metric in channels.items():
        sql_rows(db, """
            insert into node_channels (node_id, channel, type, metric_type)
            select id, %s, %s, %s from nodes where uid = %s returning id""",
                 channel, "sensor" if metric else "actuator", metric, node)
    return zone, node


def start_recipe(db, zone: str, targets: dict, phase_age: timedelta = timedelta(0)) -> None:
    started = datetime.now(timezone.utc) - phase_age
    sql_rows(db, """
        with r as (insert into recipes (name) values (%s) returning id),
             p as (insert into recipe_phases (recipe_id, phase_index, name, duration_hours, targets)
                   select id, 0, 'compat', 48, %s::jsonb from r)
        insert into zone_recipe_instances (zone_id, recipe_id, started_at, phase_started_at)
        select z.id, r.id, %s, %s from zones z, r where z.uid = %s returning id""",
             f"compat-{uuid.uuid4().hex}", json.dumps(targets), started, started, zone)


def send_ph(gh: str, zone: str, node: str, value: float, age_sec: int = 0) -> None:
    body = {"metric_type": "PH", "value": value, "ts": int(time.time()) - age_sec, "stable": True}
    publish(telemetry_topic(gh, zone, node, "ph_sensor"), json.dumps(body))


def zone_events(db, zone: str, kind: str) -> list[dict]:
    rows = sql_rows(db, """
        select e.payload_json from zone_events e join zones z on z.id = e.zone_id
        where z.uid = %s and e.type = %s order by e.id""", zone, kind)
    return [r[0] for r in rows]


def zone_commands(db, zone: str) -> list[tuple]:
    return sql_rows(db, """
        select c.cmd_id, c.channel, c.cmd, c.params, c.source from commands c
        join zones z on z.id = c.zone_id where z.uid = %s order by c.created_at""", zone)


def metric_value(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values)


PH_NODE = {"ph_sensor": "PH", "pump_acid": None, "pump_base": None}


def test_both_services_are_healthy_and_export_their_metrics(automation, scheduler):
    for svc in (automation, scheduler):
        r = requests.get(svc.url + "/health", timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["dependencies"]["postgres"]["state"] == "up"
    wait_until(lambda: "optimal_concurrency" in requests.get(automation.url + "/metrics").text,
               30, 0.5, "optimal_concurrency on /metrics")
    wait_until(lambda: "active_schedules" in requests.get(scheduler.url + "/metrics").text,
               30, 0.5, "active_schedules on /metrics")


def test_high_ph_gets_a_signed_acid_dose(automation, db, seeded, commands_on_mqtt):
    zone, node = new_zone(db, seeded, PH_NODE, {"automation": {"ph": {"min_interval_sec": 3600}}})
    send_ph(seeded, zone, node, 6.8)
    start_recipe(db, zone, {"ph": {"target": 5.8, "min": 5.6, "max": 6.0}})

    rows = wait_until(lambda: zone_commands(db, zone), 60, 0.3, f"a dose for {zone}")
    cmd_id, channel, cmd, params, source = rows[0]
    assert (channel, cmd, source) == ("pump_acid", "run_pump", "automation")
    assert params == {"duration_ms": 5000}
    message = commands_on_mqtt.wait_for(cmd_id)
    assert message.topic == f"hydro/{seeded}/{zone}/{node}/pump_acid/command"
    payload = message.json()
    assert payload["sig"] == expected_sig(NODE_DEFAULT_SECRET, payload)
    dose = wait_until(lambda: zone_events(db, zone, "AUTOMATION_DOSE"), 30, 0.3, "the dose event")[0]
    assert dose["cmd_id"] == cmd_id and dose["direction"] == "down" and dose["value"] == 6.8
    # The next decisions wait out the interval; still one dose.
    wait_until(lambda: any(e["reason"] == "min_interval" for e in zone_events(db, zone, "AUTOMATION_SKIP")),
               30, 0.3, "a min_interval skip")
    assert len(zone_commands(db, zone)) == 1


@pytest.mark.parametrize("value,age_sec,reason", [(5.8, 0, "in_dead_band"), (6.8, 600, "stale_reading")])
def test_on_target_or_stale_readings_get_no_dose(automation, db, seeded, value, age_sec, reason):
    zone, node = new_zone(db, seeded, PH_NODE)
    send_ph(seeded, zone, node, value, age_sec)
    # The reading is stored before the recipe starts: the first decision sees it.
    wait_until(lambda: sql_rows(db, """
        select 1 from telemetry_last l join nodes n on n.id = l.node_id
        where n.uid = %s and l.value = %s""", node, value), 30, 0.3, f"{node}'s reading stored")
    start_recipe(db, zone, {"ph": {"target": 5.8}})
    skips = wait_until(lambda: zone_events(db, zone, "AUTOMATION_SKIP"), 60, 0.3, f"a decision for {zone}")
    assert skips[0]["reason"] == reason, skips
    assert zone_commands(db, zone) == []


def test_a_due_irrigation_slot_fires_once(scheduler, db, seeded, commands_on_mqtt):
    zone, node = new_zone(db, seeded, {"pump_irrigation": None, "water_level": "WATER_LEVEL"})
    slot = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%H:%M")
    start_recipe(db, zone, {"irrigation": {"times": slot, "duration_sec": 2}}, timedelta(hours=1))

    rows = wait_until(lambda: zone_commands(db, zone), 60, 0.3, f"the irrigation of {zone}")
    cmd_id, channel, cmd, params, source = rows[0]
    assert (channel, cmd, params, source) == ("pump_irrigation", "run_pump", {"duration_ms": 2000}, "scheduler")
    assert commands_on_mqtt.wait_for(cmd_id).topic == f"hydro/{seeded}/{zone}/{node}/pump_irrigation/command"
    fires = sql_rows(db, """
        select f.outcome, f.cmd_id from schedule_fires f join zones z on z.id = f.zone_id
        where z.uid = %s and f.kind = 'irrigation'""", zone)
    assert fires == [("fired", cmd_id)]
    fired = wait_until(lambda: zone_events(db, zone, "IRRIGATION_FIRED"), 30, 0.3, "the fire event")
    assert fired[0]["cmd_id"] == cmd_id
    # Two more ticks later the slot has not fired again.
    ticks = metric_value(scheduler.url, "schedule_tick_duration_seconds_count")
    wait_until(lambda: metric_value(scheduler.url, "schedule_tick_duration_seconds_count") >= ticks + 2,
               60, 0.3, "two more scheduler ticks")
    assert len(zone_commands(db, zone)) == 1
    assert len(zone_events(db, zone, "IRRIGATION_FIRED")) == 1
