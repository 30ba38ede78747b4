// The operator's dashboard: reads the JSON API, follows /api/stream (SSE),
// and sends the operator's changes with the token and name asked for once.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_MINUTES = 60;
const STATUS_ICON = { GOOD: "●", DEGRADED: "▲", CRITICAL: "◆", OFFLINE: "✕",
  ONLINE: "●", RESTARTING: "▲", UNKNOWN: "?" };
const state = { brokers: [], history: {}, nodes: [], sort: { key: "uid", dir: 1 } };

/** Text-safe element: `h("td", {class: "num"}, "12")`. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function statusBadge(status) {
  return h("span", { class: `status ${status}`, "data-status": status }, `${STATUS_ICON[status] || "?"} ${status}`);
}
const fmt = (v, digits = 0) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
function ago(at) {
  if (!at) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}
function say(text, ok) { const m = $("message"); m.textContent = text; m.className = ok ? "ok" : "error"; }

// ---------------------------------------------------------------- API
/** A read; with the token when the operator gave one (reads may require it). */
async function getJson(path) {
  const { token } = credentials();
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, { headers });
  if (r.status === 404) return { missing: true };
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function credentials() {
  return { token: sessionStorage.getItem("hydro.token") || "", operator: sessionStorage.getItem("hydro.operator") || "" };
}

/** A write with the operator's token and name; asks for them first when missing. */
async function send(method, path, body) {
  const { token, operator } = credentials();
  if (!token || !operator) {
    say("Enter your name and the API token first (Controls).", false);
    $("auth-operator").focus();
    throw new Error("no credentials");
  }
  const r = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, "X-Operator": operator },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await r.json().catch(() => ({}));
  if (r.status === 401) sessionStorage.removeItem("hydro.token");
  if (!r.ok) {
    say(`${method} ${path}: ${answer.message || "HTTP " + r.status}`, false);
    showAuth();
    throw new Error(answer.message || r.status);
  }
  return answer;
}

function showAuth() {
  const { token, operator } = credentials();
  $("auth-operator").value = operator;
  $("auth-state").textContent = token && operator ? `signed in as ${operator}` : "not signed in";
}

// ---------------------------------------------------------------- brokers
function renderBrokers() {
  const box = $("broker-cards");
  box.replaceChildren(...state.brokers.map((b) => {
    const series = state.history[b.id] || [];
    const chart = (key, label, color) => h("div", { class: "chart" }, label,
      sparkline(series.map((p) => ({ at: p.at, value: p[key] })), HISTORY_MINUTES, color, `chart-${b.id}-${key}`));
    const tags = [h("span", { class: "tag" }, b.role)];
    if (b.draining) tags.push(h("span", { class: "tag warn", "data-testid": "draining" }, "draining"));
    if (!b.enabled) tags.push(h("span", { class: "tag bad" }, "disabled"));
    return h("div", { class: `card ${b.status}`, "data-testid": "broker-card", "data-broker": b.id, "data-status": b.status },
      h("h3", {}, b.id, statusBadge(b.status)),
      h("div", { class: "row" }, tags),
      h("div", { class: "figures" },
        h("div", {}, "load index", h("b", {}, fmt(b.load_index, 2))),
        h("div", {}, "clients", h("b", {}, fmt(b.connections))),
        h("div", {}, "msg/s", h("b", {}, fmt(b.msgs_per_sec, 1))),
        h("div", {}, "latency ms", h("b", {}, fmt(b.latency_ms, 1))),
        h("div", {}, "nodes", h("b", { "data-testid": "node-count" }, b.nodes)),
        h("div", {}, "moving", h("b", {}, b.unconfirmed))),
      h("div", { class: "charts" },
        chart("load_index", "load index", "#56B4E9"),
        chart("msgs_per_sec", "msg/s", "#E69F00"),
        chart("latency_ms", "latency ms", "#CC79A7")),
      h("div", { class: "row" },
        h("button", { "data-action": "drain", onclick: () => changeBroker(b.id, { draining: !b.draining }) },
          b.draining ? "Undrain" : "Drain"),
        h("button", { class: "danger", "data-action": "enable", onclick: () => changeBroker(b.id, { enabled: !b.enabled }) },
          b.enabled ? "Disable" : "Enable"),
        h("span", { class: "muted" }, `seen ${ago(b.last_seen_at)}`)));
  }));
}

async function changeBroker(id, change) {
  const what = Object.entries(change).map(([k, v]) => `${k}=${v}`).join(" ");
  if (change.enabled === false && !confirm(`Disable broker ${id}? Its connections are closed.`)) return;
  await send("PATCH", `/api/brokers/${encodeURIComponent(id)}`, change);
  say(`${id}: ${what}`, true);
  refreshAll();
}

async function loadBrokers() {
  const r = await getJson("/api/brokers");
  if (r.data) { state.brokers = r.data; renderBrokers(); }
}

async function loadHistory() {
  const r = await getJson(`/api/brokers/history?minutes=${HISTORY_MINUTES}`);
  if (!r.missing) { state.history = r.data.brokers; renderBrokers(); }
}

// ---------------------------------------------------------------- zone map
async function loadZoneMap() {
  const r = await getJson("/api/zones/map");
  const cells = r.data || [];
  const zones = [...new Map(cells.map((c) => [c.zone_uid, c.zone_name])).entries()];
  const brokers = [...new Set([...state.brokers.map((b) => b.id), ...cells.map((c) => c.broker_id || "default")])];
  const at = (z, b) => cells.find((c) => c.zone_uid === z && (c.broker_id || "default") === b);
  const head = h("tr", {}, h("th", {}, "zone"), brokers.map((b) => h("th", { class: "num" }, b)));
  const rows = zones.map(([uid, name]) => h("tr", { "data-zone": uid }, h("td", {}, uid, " ", h("span", { class: "muted" }, name)),
    brokers.map((b) => {
      const c = at(uid, b);
      if (!c) return h("td", { class: "num cell-zero" }, "·");
      const flags = [];
      if (c.moving) flags.push(h("span", { class: "tag warn" }, `⇄ ${c.moving} moving`));
      if (c.stranded) flags.push(h("span", { class: "tag bad" }, `⚠ ${c.stranded} stranded`));
      if (c.offline) flags.push(h("span", { class: "tag" }, `✕ ${c.offline} offline`));
      return h("td", { class: "num", "data-broker": b }, h("span", { class: "cell-count" }, c.nodes), h("span", { class: "cell-flags" }, flags));
    })));
  $("zone-table").replaceChildren(zones.length ? h("table", {}, h("thead", {}, head), h("tbody", {}, rows))
    : h("p", { class: "muted" }, "No zone has nodes yet."));
}

// ---------------------------------------------------------------- nodes
const NODE_COLUMNS = [
  ["uid", "node"], ["zone_uid", "zone"], ["status", "status"], ["broker_id", "broker"],
  ["observed_broker_id", "observed"], ["last_seen_at", "last seen"], ["rssi", "RSSI", "num"],
  ["readings_per_min", "readings/min", "num"], ["commands_last_hour", "cmds/h", "num"],
];

async function loadNodes() {
  const r = await getJson("/api/nodes");
  state.nodes = r.data || [];
  renderNodes();
}

function renderNodes() {
  const text = $("node-filter").value.trim().toLowerCase(), show = $("node-show").value;
  const { key, dir } = state.sort;
  const rows = state.nodes.filter((n) =>
    (!text || [n.uid, n.zone_uid, n.broker_id, n.observed_broker_id, n.name].some((v) => v && v.toLowerCase().includes(text))) &&
    (show === "all" || (show === "ONLINE" && n.status === "ONLINE") || (show === "offline" && n.status !== "ONLINE") ||
      (show === "moving" && n.moving) || (show === "unbound" && n.unbound)));
  rows.sort((a, b) => {
    const x = a[key], y = b[key];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * dir;
  });
  const table = $("node-table");
  table.tHead.rows[0].replaceChildren(...NODE_COLUMNS.map(([k, label, cls]) =>
    h("th", { class: `sortable ${cls || ""}`, "data-key": k, onclick: () => { state.sort = { key: k, dir: key === k ? -dir : 1 }; renderNodes(); } },
      label, key === k ? (dir > 0 ? " ▲" : " ▼") : "")));
  table.tBodies[0].replaceChildren(...rows.map((n) => h("tr", { "data-node": n.uid },
    h("td", {}, n.uid, n.unbound ? h("span", { class: "tag warn", "data-testid": "unbound" }, n.bind_pending ? " bind pending" : " waiting for a bind") : null),
    h("td", {}, n.zone_uid || "—"), h("td", {}, statusBadge(n.status)),
    h("td", {}, n.broker_id || "default", n.moving ? h("span", { class: "tag warn" }, " ⇄ moving") : null),
    h("td", {}, n.observed_broker_id || "—"), h("td", {}, ago(n.last_seen_at)),
    h("td", { class: "num" }, fmt(n.rssi)), h("td", { class: "num" }, fmt(n.readings_per_min, 1)),
    h("td", { class: "num" }, n.commands_last_hour))));
  const unbound = state.nodes.filter((n) => n.unbound).length, online = state.nodes.filter((n) => n.status === "ONLINE").length;
  $("node-summary").textContent = `— ${state.nodes.length} nodes, ${online} online, ${unbound} waiting for a bind; showing ${rows.length}`;
}

// ---------------------------------------------------------------- failovers
async function loadFailovers() {
  const r = await getJson("/api/failovers?limit=30");
  const events = r.data || [];
  $("failover-list").replaceChildren(...(events.length ? events.map((e) => {
    const d = e.details || {};
    const end = e.finished_at ? Date.parse(e.finished_at) : Date.now();
    const took = Math.round((end - Date.parse(e.started_at)) / 1000);
    return h("li", { class: e.finished_at ? "done" : "open", "data-testid": "failover-event", "data-broker": e.broker_id },
      h("b", {}, `${e.broker_id} ${e.kind}`), " ",
      h("span", { class: "when" }, new Date(e.started_at).toLocaleString(), e.finished_at ? ` · took ${took} s` : ` · running ${took} s`),
      h("div", {}, `moved ${d.moved ?? e.nodes_moved} · confirmed ${d.confirmed ?? "…"} · stranded ${d.stranded ?? "…"}`,
        d.moved_to ? h("span", { class: "muted" }, ` → ${Object.entries(d.moved_to).map(([b, n]) => `${b}: ${n}`).join(", ")}`) : null));
  }) : [h("li", { class: "muted done" }, "No failover yet.")]));
}

// ---------------------------------------------------------------- advisor
/** Suggestion statuses that can still be applied (not applied, superseded or refused). */
const APPLICABLE = new Set(["proposed", "open"]);

function suggestionEl(s, refused) {
  const moves = (s.moves || []).map((m) => `${m.node_uid}: ${m.from} → ${m.to}`).join(", ");
  return h("div", { class: `suggestion${refused ? " refused" : ""}`, "data-testid": refused ? "refused" : "suggestion", "data-id": s.id,
    "data-moves": (s.moves || []).length },
    h("b", {}, `${s.kind}`), " ", h("span", {}, s.summary), " ", h("span", { class: "tag" }, s.source || "rules"),
    refused ? h("div", { class: "muted" }, `refused: ${s.refused_reason}`) : null,
    moves ? h("div", { class: "muted" }, `moves: ${moves}`) : null,
    h("pre", {}, JSON.stringify(s.evidence || {}, null, 1)),
    refused ? null : h("button", { "data-action": "apply-suggestion", disabled: APPLICABLE.has(s.status || "proposed") ? null : "",
      onclick: () => applySuggestion(s.id) }, "Apply"));
}

async function loadAdvisor() {
  const r = await getJson("/api/advisor").catch(() => ({ missing: true }));
  const box = $("advisor-body");
  if (r.missing || !r.data || !Array.isArray(r.data.suggestions)) {
    box.replaceChildren(h("p", { class: "unavailable", "data-testid": "advisor-unavailable" }, "Advisor unavailable."));
    return;
  }
  const { suggestions, refused = [], generated_at } = r.data;
  box.replaceChildren(h("p", { class: "muted" }, `generated ${ago(generated_at)}`),
    ...(suggestions.length ? suggestions.map((s) => suggestionEl(s, false)) : [h("p", { class: "muted" }, "Nothing to suggest.")]),
    ...refused.map((s) => suggestionEl(s, true)));
}

async function applySuggestion(id) {
  await send("POST", `/api/advisor/suggestions/${encodeURIComponent(id)}/apply`);
  say(`suggestion ${id} applied`, true);
  refreshAll();
}

// ---------------------------------------------------------------- controls
async function loadStrategy() {
  const r = await getJson("/api/strategy").catch(() => ({ missing: true }));
  const select = $("strategy");
  if (r.missing || !r.data) { $("strategy-note").textContent = "strategy API unavailable"; return; }
  if (document.activeElement !== select) {
    select.replaceChildren(...r.data.available.map((s) => h("option", { value: s, selected: s === r.data.strategy ? "" : null }, s)));
  }
  select.disabled = false; $("strategy-apply").disabled = false;
  $("strategy-note").textContent = `now: ${r.data.strategy}`;
}

async function loadActions() {
  const r = await getJson("/api/actions?limit=15").catch(() => ({ missing: true }));
  if (r.missing) { $("action-log").replaceChildren(h("p", { class: "unavailable" }, "Action log unavailable.")); return; }
  $("action-log").replaceChildren(h("table", {}, h("tbody", {}, (r.data || []).map((a) =>
    h("tr", { "data-testid": "action" }, h("td", {}, ago(a.at)), h("td", {}, a.actor), h("td", {}, a.action), h("td", {}, a.target || ""))))));
}

function showPlan(plan, applied) {
  const moves = plan.moves || [];
  $("plan").replaceChildren(h("div", {}, `${applied ? "Applied" : "Plan"} (${plan.strategy}): ${moves.length} move(s)`),
    ...moves.slice(0, 20).map((m) => h("div", { "data-testid": "plan-move" }, `${m.node_uid}: ${m.from} → ${m.to}`)));
}

function wireControls() {
  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const operator = $("auth-operator").value.trim(), token = $("auth-token").value;
    if (operator) sessionStorage.setItem("hydro.operator", operator);
    if (token) sessionStorage.setItem("hydro.token", token);
    $("auth-token").value = "";
    showAuth();
  });
  $("rebalance-preview").addEventListener("click", async () => {
    const r = await getJson("/api/rebalance/plan");
    showPlan(r.data, false);
  });
  $("rebalance-apply").addEventListener("click", async () => {
    const r = await send("POST", "/api/rebalance", {});
    showPlan(r.data, true); say("rebalance applied", true); refreshAll();
  });
  $("strategy-apply").addEventListener("click", async () => {
    await send("PUT", "/api/strategy", { strategy: $("strategy").value });
    say(`strategy: ${$("strategy").value}`, true); loadStrategy(); loadActions();
  });
  $("node-filter").addEventListener("input", renderNodes);
  $("node-show").addEventListener("change", renderNodes);
  showAuth();
}

// ---------------------------------------------------------------- live
function connect() {
  const live = $("live");
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => { state.live = true; live.className = "on"; live.textContent = "● LIVE"; });
  source.addEventListener("error", () => { state.live = false; live.className = "off"; live.textContent = "○ RECONNECTING"; });
  source.addEventListener("snapshot", (ev) => {
    const snap = JSON.parse(ev.data);
    const latest = snap.latest_failover && snap.latest_failover.id;
    state.brokers = snap.brokers;
    renderBrokers();
    if (latest !== state.latestFailover) { state.latestFailover = latest; loadFailovers().catch(report); }
    $("clock").textContent = new Date(snap.at).toLocaleTimeString();
  });
  source.addEventListener("broker-status", (ev) => {
    const change = JSON.parse(ev.data);
    say(`${change.broker}: ${change.from} → ${change.to}`, change.to === "GOOD");
    refreshAll();
  });
}

function report(e) { console.warn(e); }

function refreshAll() {
  // Without the stream (it cannot send a token), the brokers are polled too.
  if (!state.live) loadBrokers().catch(report);
  for (const load of [loadZoneMap, loadNodes, loadFailovers, loadAdvisor, loadActions, loadStrategy]) load().catch(report);
}

async function start() {
  wireControls();
  await loadBrokers().catch(report);
  await loadHistory().catch(report);
  refreshAll();
  connect();
  setInterval(refreshAll, 5000);
  setInterval(() => loadHistory().catch(report), 10000);
}

start();
