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

// A server without an admin token needs no login: the page says the API is open
// instead of accepting any string as a "token".
async function tokenRequired() {
  try {
    const response = await fetch("settings.json");
    return (await response.json()).admin_token !== false;
  } catch (_) {
    return true;
  }
}

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

let openServer = false; // no admin token on this server: nothing to log in or out of

function show(loggedIn) {
  $("login-view").hidden = loggedIn;
  $("dashboard").hidden = !loggedIn;
  $("logout").hidden = !loggedIn || openServer;
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
    if (error instanceof Refused && !openServer) logOut();
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

// The chart's plot area inside the 600x180 viewBox: room for the axes' values.
const PLOT = { left: 48, right: 552, top: 10, bottom: 150 };
const SVG = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function y(value, scale) {
  return PLOT.bottom - (value / scale) * (PLOT.bottom - PLOT.top);
}

function line(values, scale, className) {
  const step = (PLOT.right - PLOT.left) / (HISTORY - 1);
  const start = HISTORY - values.length;
  const points = values.map((v, i) => `${PLOT.left + (start + i) * step},${y(v, scale)}`);
  return svgElement("polyline", { points: points.join(" "), class: className });
}

// A round top for an axis: 1, 2 or 5 times a power of ten, at least the largest value.
function niceMax(values) {
  const top = Math.max(...values, 0);
  if (top <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(top));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= top);
}

function axes(rateMax, latencyMax) {
  const parts = [];
  for (const fraction of [0, 0.5, 1]) {
    const at = y(fraction * rateMax, rateMax);
    parts.push(svgElement("line", { x1: PLOT.left, x2: PLOT.right, y1: at, y2: at, class: "grid" }));
    parts.push(svgElement("text", { x: PLOT.left - 6, y: at + 4, "text-anchor": "end", class: "axis rate" },
      `${+(fraction * rateMax).toPrecision(3)}`));
    parts.push(svgElement("text", { x: PLOT.right + 6, y: at + 4, "text-anchor": "start", class: "axis latency" },
      `${+(fraction * latencyMax).toPrecision(3)}`));
  }
  const minutes = (HISTORY * REFRESH_MS) / 60000;
  for (const [fraction, label] of [[0, `-${minutes} min`], [0.5, `-${minutes / 2} min`], [1, "now"]]) {
    const x = PLOT.left + fraction * (PLOT.right - PLOT.left);
    parts.push(svgElement("text", { x, y: PLOT.bottom + 18, "text-anchor": "middle", class: "axis" }, label));
  }
  return parts;
}

function drawChart() {
  const chart = $("chart");
  const rates = history.map((h) => h.rate);
  const latencies = history.map((h) => h.latency);
  const rateMax = niceMax(rates);
  const latencyMax = niceMax(latencies);
  chart.replaceChildren(...axes(rateMax, latencyMax),
    line(rates, rateMax, "rate"), line(latencies, latencyMax, "latency"));
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
  // Wrong admin tokens are operators' (or a scraper's), not clients' errors: apart.
  const refused = [...exposition.matchAll(/^intraday_admin_auth_failures_total\{route="(\w+)"\} ([0-9.e+]+)$/gm)]
    .reduce((sum, [, , count]) => sum + Number(count), 0);
  $("admin-refused").textContent = refused
    ? `Requests refused for a wrong admin token (not client errors): ${refused}` : "";
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

document.addEventListener("DOMContentLoaded", async () => {
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("send").addEventListener("submit", send);
  $("disconnect").addEventListener("click", disconnectSelected);
  for (const id of ["f-org", "f-user", "f-transport", "f-sort"]) $(id).addEventListener("input", refresh);
  renderHealth();
  openServer = !(await tokenRequired());
  $("open-warning").hidden = !openServer;
  if (openServer || sessionStorage.getItem(KEY)) show(true);
});
