// The admin UI: a page over the management API (/api/ws) and /metrics, nothing private.
// The token lives in this tab's sessionStorage (gone when the tab closes) and travels
// only in the Authorization header. Every figure is refreshed in place every 2 s.
"use strict";

const API = "/api/ws";
const REFRESH_MS = 2000;
const HISTORY = 150; // samples in the chart: 5 minutes at 2 s
const KEY = "intraday-admin-token";
const history = [];
let selected = null;
let timer = null;

const $ = (id) => document.getElementById(id);

class Refused extends Error {}

async function call(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) throw new Refused("the server refused the token");
  const text = await response.text();
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = JSON.parse(text).error.message; } catch (_) { /* not our JSON */ }
    throw new Error(message);
  }
  return response.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text ?? "–";
  if (className) td.className = className;
  return td;
}

function ago(stamp) {
  const seconds = Math.max(0, (Date.now() - Date.parse(stamp)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(0)} s ago`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(0)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// -- login ----------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("token").value);
  $("token").value = "";
  try {
    await call(`${API}/stats`); // proves the token before showing anything
  } catch (error) {
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = error instanceof Refused ? "Wrong token: refused by the server." : error.message;
    return;
  }
  show(true);
}

function logOut() {
  sessionStorage.removeItem(KEY);
  show(false);
}

function show(loggedIn) {
  $("login-view").hidden = loggedIn;
  $("dashboard").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("login-error").textContent = "";
  clearInterval(timer);
  if (loggedIn) {
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
}

// -- the live figures -----------------------------------------------------

async function refresh() {
  try {
    const [stats, connections, rooms] = await Promise.all([
      call(`${API}/stats`), call(`${API}/connections`), call(`${API}/rooms`),
    ]);
    renderStats(stats);
    renderConnections(connections.connections);
    renderRooms(rooms.rooms);
    if (selected) await renderDetail(selected);
    renderErrors(await call("/metrics").catch(() => ""));
  } catch (error) {
    if (error instanceof Refused) logOut();
  }
  renderHealth();
}

async function renderHealth() {
  const badge = $("health");
  try {
    const health = await call(`${API}/health`);
    badge.textContent = `${health.status} · v${health.version} · ${health.auth_mode}`;
    badge.className = `badge ${health.status === "ok" ? "ok" : "warn"}`;
    if (Array.isArray(health.nodes)) $("t-nodes").textContent = String(health.nodes.length);
  } catch (_) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

function renderStats(stats) {
  $("t-connections").textContent = stats.active_connections;
  $("t-rooms").textContent = stats.active_rooms;
  $("t-rate").textContent = stats.messages_per_second.toFixed(1);
  $("t-latency").textContent = stats.average_latency_ms == null ? "–" : stats.average_latency_ms.toFixed(1);
  $("t-errors").textContent = stats.error_count;
  history.push({ rate: stats.messages_per_second, latency: stats.average_latency_ms ?? 0 });
  if (history.length > HISTORY) history.shift();
  drawChart();
}

function line(values, scale, className) {
  const svg = "http://www.w3.org/2000/svg";
  const path = document.createElementNS(svg, "polyline");
  const step = 600 / (HISTORY - 1);
  const start = HISTORY - values.length;
  path.setAttribute("points", values.map((v, i) => `${(start + i) * step},${150 - (v / scale) * 140}`).join(" "));
  path.setAttribute("class", className);
  return path;
}

function drawChart() {
  const chart = $("chart");
  chart.replaceChildren();
  const rates = history.map((h) => h.rate);
  const latencies = history.map((h) => h.latency);
  chart.append(line(rates, Math.max(1, ...rates), "rate"), line(latencies, Math.max(1, ...latencies), "latency"));
}

function renderConnections(all) {
  const org = $("f-org").value.trim();
  const user = $("f-user").value.trim();
  const transport = $("f-transport").value;
  const byActivity = $("f-sort").value === "activity";
  const shown = all
    .filter((c) => (!org || (c.organization_id || "").includes(org))
      && (!user || (c.user_id || "").includes(user))
      && (!transport || c.transport === transport))
    .sort((a, b) => byActivity
      ? Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at)
      : Date.parse(b.connected_at) - Date.parse(a.connected_at));
  const body = $("connections");
  body.replaceChildren();
  for (const c of shown) {
    const row = body.insertRow();
    row.dataset.socket = c.socket_id;
    row.className = c.socket_id === selected ? "selected" : "";
    cell(row, c.socket_id, "mono");
    cell(row, c.user_id);
    cell(row, c.organization_id);
    cell(row, c.transport);
    cell(row, c.status);
    cell(row, ago(c.connected_at));
    cell(row, ago(c.last_activity_at));
    row.addEventListener("click", () => { selected = c.socket_id; renderDetail(selected); });
  }
  if (!shown.length) cell(body.insertRow(), "no connection", "muted").colSpan = 7;
}

async function renderDetail(socketId) {
  let c;
  try {
    const body = await call(`${API}/connections/${encodeURIComponent(socketId)}`);
    c = body.connection ?? body; // {"success", "connection"} (section 9), or the older flat body
  } catch (_) {
    selected = null;
    $("detail").hidden = true;
    return;
  }
  $("detail").hidden = false;
  $("d-socket").textContent = c.socket_id;
  const fields = $("d-fields");
  fields.replaceChildren();
  for (const [name, value] of [["user", c.user_id], ["organization", c.organization_id],
    ["transport", c.transport], ["status", c.status], ["connected", c.connected_at],
    ["last activity", c.last_activity_at]]) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value ?? "–";
    fields.append(dt, dd);
  }
  const rooms = $("d-rooms");
  rooms.replaceChildren(...c.subscriptions.map((room) => {
    const li = document.createElement("li");
    li.textContent = room;
    return li;
  }));
  if (!c.subscriptions.length) rooms.innerHTML = "<li class=\"muted\">no subscription</li>";
}

async function disconnectSelected() {
  if (!selected || !confirm(`Disconnect ${selected}?`)) return;
  await call(`${API}/connections/${encodeURIComponent(selected)}`, { method: "DELETE" });
  selected = null;
  $("detail").hidden = true;
  refresh();
}

function renderRooms(rooms) {
  const body = $("rooms");
  body.replaceChildren();
  for (const room of rooms) {
    const row = body.insertRow();
    cell(row, room.name, "mono");
    cell(row, room.type);
    cell(row, String(room.member_count));
  }
  if (!rooms.length) cell(body.insertRow(), "no room", "muted").colSpan = 3;
}

function renderErrors(exposition) {
  // intraday_errors_total{code="AUTH_FAILED"} 3.0 -- the one family read from /metrics.
  const counts = [...exposition.matchAll(/^intraday_errors_total\{code="([A-Z_]+)"\} ([0-9.e+]+)$/gm)];
  const body = $("errors");
  body.replaceChildren();
  for (const [, code, count] of counts) {
    const row = body.insertRow();
    cell(row, code, "mono");
    cell(row, String(Number(count)));
  }
  if (!counts.length) cell(body.insertRow(), "none", "muted");
}

// -- sending --------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const name = $("s-event").value;
  const org = $("s-org").value.trim();
  const data = { message: $("s-message").value, level: $("s-level").value };
  if ($("s-title").value) data.title = $("s-title").value;
  if (!confirm(`Send ${name} to every socket of ${org}?`)) return;
  try {
    const result = await call(`${API}/broadcast`, {
      method: "POST",
      body: JSON.stringify({ event: name, data, target: { organization_id: org }, priority: "high" }),
    });
    $("s-result").textContent = `Sent ${result.message_id} to ${result.recipients} socket(s).`;
  } catch (error) {
    $("s-result").textContent = `Not sent: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("send").addEventListener("submit", send);
  $("disconnect").addEventListener("click", disconnectSelected);
  for (const id of ["f-org", "f-user", "f-transport", "f-sort"]) $(id).addEventListener("input", refresh);
  renderHealth();
  if (sessionStorage.getItem(KEY)) show(true);
});
