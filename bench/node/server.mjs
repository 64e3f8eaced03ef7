// The Node.js baseline of bench/compare.py: the same fan-out as our server, in socket.io 4.8.
//
// What it does, and nothing more (it is a yardstick, not a second implementation):
// - handshake auth (protocol section 3): `auth` {user_id, organization_id, capabilities?}
//   with ids checked against section 2; a bad one is refused with {code: "AUTH_FAILED", ...}
//   as connect_error data; a good one joins `org:{org}` and gets `authenticated`;
// - `subscribe` (section 4) with the channel filter, answered by ack, then `client:subscribe`;
// - POST /api/ws/broadcast/kpi (section 9): the payload is the body, its own organization,
//   department and queue are the target; the envelope of section 5 goes to the union of the
//   matching rooms in one emit (socket.io sends it once per socket).
// It does not validate payload fields beyond the target ids (our server validates the whole
// schema): the comparison is of the fan-out path, and this only makes Node's side cheaper.
//
// socket.io options are the defaults but for the path (/ws). Note: engine.io 6 leaves
// permessage-deflate OFF by default; `--deflate` turns it on with ws's 1 KiB threshold.
//
// Usage: node server.mjs [--port 0] [--host 127.0.0.1] [--deflate]
// Prints `READY <port>` on stdout once listening; exits on SIGTERM, SIGINT or stdin EOF.

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    deflate: { type: "boolean", default: false },
  },
});

const IDENTIFIER = /^[A-Za-z0-9_.@-]{1,128}$/;
const CHANNELS = ["kpi", "backlog", "attendance", "alerts", "notifications"];
const EPOCH = randomUUID().slice(0, 8);
let seq = 0;

function error(code, message) {
  return { code, message, retryable: false };
}

function validId(value) {
  return typeof value === "string" && IDENTIFIER.test(value);
}

function optionalId(value) {
  return value === undefined || value === null || validId(value);
}

function rooms(channel, org, dept, queue) {
  const base = `${channel}:org:${org}`;
  const out = [base];
  if (dept) out.push(`${base}:dept:${dept}`);
  if (queue) out.push(`${base}:queue:${queue}`);
  if (dept && queue) out.push(`${base}:dept:${dept}:queue:${queue}`);
  return out;
}

function filterRoom(channel, org, dept, queue) {
  let room = `${channel}:org:${org}`;
  if (dept) room += `:dept:${dept}`;
  if (queue) room += `:queue:${queue}`;
  return room;
}

const httpServer = createServer();
const io = new Server(httpServer, {
  path: "/ws",
  ...(opts.deflate ? { perMessageDeflate: { threshold: 1024 } } : {}),
});

io.use((socket, next) => {
  const auth = socket.handshake.auth ?? {};
  if (!validId(auth.user_id) || !validId(auth.organization_id)) {
    const err = new Error("authentication failed");
    err.data = error("AUTH_FAILED", "user_id and organization_id are required identifiers");
    next(err);
    return;
  }
  socket.data.user = auth.user_id;
  socket.data.org = auth.organization_id;
  next();
});

io.on("connection", (socket) => {
  const org = socket.data.org;
  socket.join(`org:${org}`);
  socket.emit("authenticated", {
    success: true,
    user_id: socket.data.user,
    organization_id: org,
    socket_id: socket.id,
    server_time: new Date().toISOString(),
    server: {
      name: "bench-node-socket.io",
      version: "4.8",
      protocol: 1,
      capabilities: ["acks"],
      limits: { max_message_size_bytes: 1048576 },
    },
  });

  socket.on("subscribe", (data, ack) => {
    const reply = typeof ack === "function" ? ack : () => {};
    const filter = data ?? {};
    const wanted = filter.channels ?? [];
    const channels = wanted.includes("all") ? CHANNELS : wanted;
    const target = filter.organization_id ?? org;
    if (
      !Array.isArray(wanted) ||
      channels.some((c) => !CHANNELS.includes(c)) ||
      !optionalId(filter.department_id) ||
      !optionalId(filter.queue_name)
    ) {
      reply({ success: false, error: error("INVALID_MESSAGE", "bad subscription filter") });
      return;
    }
    if (target !== org) {
      reply({ success: false, error: error("UNAUTHORIZED", "another organization") });
      return;
    }
    const added = channels
      .map((c) => filterRoom(c, org, filter.department_id, filter.queue_name))
      .filter((room) => !socket.rooms.has(room));
    socket.join(added);
    reply({ success: true, subscriptions: [...socket.rooms].filter((r) => r !== socket.id) });
    socket.emit("client:subscribe", { rooms: added });
  });
});

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function broadcastKpi(body, res) {
  let data;
  try {
    data = JSON.parse(body);
  } catch {
    answer(res, 400, { success: false, error: error("INVALID_MESSAGE", "not JSON") });
    return;
  }
  const org = data?.organization_id;
  if (
    !validId(org) ||
    typeof data.timestamp !== "string" ||
    !optionalId(data.department_id) ||
    !optionalId(data.queue_name)
  ) {
    answer(res, 400, { success: false, error: error("INVALID_MESSAGE", "bad KPI payload") });
    return;
  }
  const dept = data.department_id ?? null;
  const queue = data.queue_name ?? null;
  seq += 1;
  const envelope = {
    id: randomUUID().replaceAll("-", ""),
    event: "kpi:update",
    channel: "kpi",
    timestamp: new Date().toISOString(),
    priority: "medium",
    requires_ack: false,
    seq,
    epoch: EPOCH,
    target: { organization_id: org, department_id: dept, queue_name: queue },
    data,
  };
  const targets = rooms("kpi", org, dept, queue);
  const adapterRooms = io.of("/").adapter.rooms;
  const members = new Set();
  for (const room of targets) for (const sid of adapterRooms.get(room) ?? []) members.add(sid);
  io.to(targets).emit("kpi:update", envelope);
  answer(res, 200, { success: true, message_id: envelope.id, recipients: members.size });
}

// socket.io answers its own path first; everything else reaches this listener.
httpServer.on("request", (req, res) => {
  if (req.url?.startsWith("/ws")) return;
  if (req.method === "POST" && req.url === "/api/ws/broadcast/kpi") {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => broadcastKpi(Buffer.concat(chunks).toString("utf8"), res));
    return;
  }
  if (req.method === "GET" && req.url === "/api/ws/health") {
    answer(res, 200, { status: "ok", connections: io.engine.clientsCount });
    return;
  }
  answer(res, 404, { success: false, error: error("INVALID_MESSAGE", "no such route") });
});

function stop() {
  io.close();
  process.exit(0);
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();

httpServer.listen(Number(opts.port), opts.host, () => {
  process.stdout.write(`READY ${httpServer.address().port}\n`);
});
