"""A node that speaks only the hydro2.0 firmware's protocol, written from the
upstream specs (docs/protocol.md), independently of the Rust code: MQTT 3.1.1
like the ESP32's esp-mqtt, unbound at first boot (temp namespace + hello),
nothing with a `ts` before `hydro/time/response`, no `config/update`, NodeConfig
applied from the `config` topic and confirmed with `config_report`, commands
checked with the firmware's HMAC algorithm (cJSON canonical form) and window.

Broker login (issue 11): unbound, it logs in as the provision account
(`MQTT_PROVISION_USER` / `MQTT_PROVISION_PASS`, client id = hardware id); a
NodeConfig whose `mqtt` section carries a login (`username`/`password`, or
`user`/`pass`) makes it reconnect with that login, as the firmware does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from signing_vectors import canonical  # noqa: E402  (the firmware's algorithm, in Python)

TEMP_GH, TEMP_ZONE = "gh-temp", "zn-temp"
HMAC_WINDOW_SEC = 10


class FirmwareNode:
    def __init__(self, host: str, port: int, node_type: str = "ph",
                 default_secret: str = "", fw_version: str = "2.0.1",
                 login: tuple[str, str] | None = None):
        self.hardware_id = "esp32-" + uuid.uuid4().hex[:12]
        self.node_type = node_type
        self.fw_version = fw_version
        self.host, self.port = host, port
        self.gh, self.zone, self.node = TEMP_GH, TEMP_ZONE, self.hardware_id
        self.secret = default_secret
        # The broker login: given, else the provision account from the
        # environment, else none (a broker without authentication).
        if login is None and os.environ.get("MQTT_PROVISION_PASS"):
            login = (os.environ.get("MQTT_PROVISION_USER", "hydro-provision"),
                     os.environ["MQTT_PROVISION_PASS"])
        self.login = login
        # What the backend pushed and the node applied (None before a bind).
        self.config: dict | None = None
        # The factory NodeConfig (NVS defaults): what it reports until bound.
        self.own_config = {
            "node_id": self.hardware_id, "version": 3, "type": node_type,
            "fw_version": fw_version, "gh_uid": TEMP_GH, "zone_uid": TEMP_ZONE,
            "channels": [
                {"name": "ph_sensor", "type": "SENSOR", "metric": "PH", "poll_interval_ms": 3000},
                {"name": "pump_acid", "type": "ACTUATOR", "actuator_type": "PUMP",
                 "safe_limits": {"max_duration_ms": 5000, "min_off_ms": 3000}},
                {"name": "pump_base", "type": "ACTUATOR", "actuator_type": "PUMP",
                 "safe_limits": {"max_duration_ms": 5000, "min_off_ms": 3000}},
            ],
            "wifi": {"configured": True}, "mqtt": {"host": host, "port": port, "keepalive": 30},
        }
        self.clock_offset: float | None = None  # set by the time response
        self.lock = threading.Lock()
        self.configs: list[dict] = []
        self.responses: list[dict] = []
        self.commands: list[dict] = []
        self.time_responses = 0
        self.connected = threading.Event()
        # Namespaces it left a retained status or will in (cleared by stop()).
        self.namespaces: set[str] = set()
        self.client = self._client()

    # ------------------------------------------------------------ clock
    def now(self) -> int:
        assert self.clock_offset is not None, "no time sync yet"
        return int(time.time() + self.clock_offset)

    @property
    def synced(self) -> bool:
        return self.clock_offset is not None

    # ------------------------------------------------------------ MQTT
    def _ns(self) -> str:
        return f"hydro/{self.gh}/{self.zone}/{self.node}"

    def _client(self) -> mqtt.Client:
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                        client_id=self.hardware_id, protocol=mqtt.MQTTv311)
        c.will_set(f"{self._ns()}/lwt", b"offline", qos=1, retain=True)
        # Unbound: the shared provisioning login (the broker holds it to the
        # temp namespace of its client id, the hardware id); bound: the login
        # its NodeConfig carries.
        if self.login is not None:
            c.username_pw_set(*self.login)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        return c

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(15), f"{self.hardware_id}: no CONNACK from {self.port}"

    def stop(self) -> None:
        """Disconnects, clearing the retained status and will it left, so a
        later run on the same broker does not meet this test's node."""
        for ns in sorted(self.namespaces | {self._ns()}):
            for kind in ("status", "lwt"):
                self.client.publish(f"{ns}/{kind}", b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, c, userdata, flags, reason_code, properties):
        # The firmware's order: config topics, commands, time; then ask the time.
        c.subscribe(f"{self._ns()}/config", qos=1)
        c.subscribe(f"hydro/{TEMP_GH}/{TEMP_ZONE}/{self.hardware_id}/config", qos=1)
        c.subscribe(f"{self._ns()}/+/command", qos=1)
        c.subscribe("hydro/time/response", qos=1)
        c.publish("hydro/time/request", json.dumps({"message_type": "time_request"}), qos=1)
        self.connected.set()

    def _on_message(self, c, userdata, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if msg.topic == "hydro/time/response":
            with self.lock:
                first = self.clock_offset is None
                self.clock_offset = float(body["unix_ts"]) - time.time()
                self.time_responses += 1
            if first:
                # As the firmware on connect, once the clock is set: the
                # NodeConfig it runs.
                threading.Thread(target=self.report_config, daemon=True).start()
            return
        if msg.topic.endswith("/config"):
            with self.lock:
                self.configs.append(body)
            threading.Thread(target=self._apply_config, args=(body,), daemon=True).start()
            return
        if msg.topic.endswith("/command"):
            channel = msg.topic.split("/")[-2]
            with self.lock:
                self.commands.append(body)
            self._answer(channel, body)

    # ------------------------------------------------------------ uplink
    def publish(self, suffix: str, body: dict, retain: bool = False) -> None:
        if retain:
            self.namespaces.add(self._ns())
        info = self.client.publish(f"{self._ns()}/{suffix}", json.dumps(body), qos=1,
                                   retain=retain)
        info.wait_for_publish(10)

    def hello(self) -> None:
        self.client.publish("hydro/node_hello", json.dumps({
            "message_type": "node_hello", "hardware_id": self.hardware_id,
            "node_type": self.node_type, "fw_version": self.fw_version,
            "hardware_revision": "v1.0", "capabilities": ["ph", "temperature"],
            "provisioning_meta": {"node_name": None, "greenhouse_token": None, "zone_id": None},
        }), qos=1).wait_for_publish(10)

    def report_config(self) -> None:
        running = self.config or self.own_config
        report = {k: v for k, v in running.items() if k != "node_secret"}
        # The broker password never goes back up.
        report["mqtt"] = {k: v for k, v in running.get("mqtt", {}).items()
                          if k not in ("password", "pass")}
        report["fw_version"] = self.fw_version
        self.publish("config_report", report)

    def online(self) -> None:
        self.publish("status", {"status": "ONLINE", "ts": self.now()}, retain=True)

    def telemetry(self, channel: str, metric: str, value: float) -> int:
        ts = self.now()
        self.publish(f"{channel}/telemetry", {"metric_type": metric, "value": value, "ts": ts})
        return ts

    def heartbeat(self) -> None:
        self.publish("heartbeat", {"uptime": 60, "free_heap": 100000, "rssi": -60,
                                   "fw_version": self.fw_version})

    # ------------------------------------------------------------ NodeConfig
    def _apply_config(self, config: dict) -> None:
        for field in ("node_id", "version", "type", "gh_uid", "zone_uid", "channels", "mqtt"):
            if field not in config:
                return  # the firmware logs and keeps its config
        if config["gh_uid"] == TEMP_GH and self.gh == TEMP_GH:
            return  # temp -> temp: acknowledged, nothing to apply
        mqtt_section = config["mqtt"]
        moving = ("host" in mqtt_section and
                  (mqtt_section["host"], int(mqtt_section["port"])) != (self.host, self.port))
        user = mqtt_section.get("username") or mqtt_section.get("user")
        password = mqtt_section.get("password") or mqtt_section.get("pass")
        login = (user, password) if user and password else None
        relogin = login is not None and login != self.login
        with self.lock:
            self.config = config
            if config.get("node_secret"):
                self.secret = config["node_secret"]
            old_ns = self._ns()
            self.gh, self.zone, self.node = config["gh_uid"], config["zone_uid"], config["node_id"]
        if moving or relogin:
            self.client.loop_stop()
            self.client.disconnect()
            if moving:
                self.host, self.port = mqtt_section["host"], int(mqtt_section["port"])
            if relogin:
                self.login = login
            self.connected.clear()
            self.client = self._client()
            self.start()
        else:
            # Same broker: a new namespace, its subscriptions and last will.
            self.client.unsubscribe([f"{old_ns}/config", f"{old_ns}/+/command"])
            self.client.subscribe(f"{self._ns()}/config", qos=1)
            self.client.subscribe(f"{self._ns()}/+/command", qos=1)
        if not self.synced:
            return
        self.report_config()
        self.online()

    # ------------------------------------------------------------ commands
    def _respond(self, channel: str, cmd_id: str, status: str, **extra) -> None:
        body = {"cmd_id": cmd_id, "status": status, "ts": int(time.time() * 1000), **extra}
        with self.lock:
            self.responses.append(body)
        self.client.publish(f"{self._ns()}/{channel}/command_response", json.dumps(body), qos=1)

    def _answer(self, channel: str, command: dict) -> None:
        cmd_id = str(command.get("cmd_id", ""))
        if not self.synced:
            return self._respond(channel, cmd_id, "ERROR", error_code="time_not_synced")
        ts, sig = command.get("ts"), command.get("sig")
        if not isinstance(ts, (int, float)) or not isinstance(sig, str) or len(sig) != 64:
            return self._respond(channel, cmd_id, "ERROR", error_code="invalid_hmac_format")
        if abs(self.now() - int(ts)) > HMAC_WINDOW_SEC:
            return self._respond(channel, cmd_id, "ERROR", error_code="timestamp_expired")
        unsigned = {k: v for k, v in command.items() if k != "sig"}
        expected = hmac.new(self.secret.encode(), canonical(unsigned).encode("utf-8"),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig.lower()):
            return self._respond(channel, cmd_id, "ERROR", error_code="invalid_signature")
        self._respond(channel, cmd_id, "ACK")
        self._respond(channel, cmd_id, "DONE", details={"result": "ok"})
