// A load client of bench/compare.py: --clients official socket.io-client sockets in one process.
//
// Every socket authenticates in the handshake (protocol section 3), waits for `authenticated`
// and, with --subscribe, subscribes to `kpi` of its organization (section 4). It then counts
// `kpi:update` envelopes, and with --batch each envelope of a `batch` event (section 5) as one
// delivery with its own latency. Latency is receive time minus `data.bench_sent_ms`, the wall
// clock (ms since the epoch) at which the driver sent the broadcast: one machine, one clock.
//
// Stdout (one line each, JSON after the tag):
//   CONNECTED {"connected", "failed", "batch", "errors"}   once every socket is ready or failed
//   RESULT {"received", "first", "last", "disconnects", "envelope_bytes", "latencies"}
//     (times in ms since the epoch; envelope_bytes: the first envelope's JSON) once `--messages` per
//     socket have arrived, or on the stdin line `report`
// The stdin line `quit` (or EOF) closes every socket and exits.
//
// Usage: node clients.mjs --url http://127.0.0.1:PORT [--clients 500] [--org bench]
//          [--subscribe] [--batch] [--messages 200] [--concurrency 100] [--user-prefix u]

import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { io } from "socket.io-client";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    clients: { type: "string", default: "500" },
    org: { type: "string", default: "bench" },
    subscribe: { type: "boolean", default: false },
    batch: { type: "boolean", default: false },
    messages: { type: "string", default: "0" },
    concurrency: { type: "string", default: "100" },
    "user-prefix": { type: "string", default: "u" },
    "timeout-ms": { type: "string", default: "30000" },
  },
});

const clients = Number(opts.clients);
const expected = clients * Number(opts.messages);
const timeoutMs = Number(opts["timeout-ms"]);
const sockets = [];
const latencies = [];
let received = 0;
let first = 0;
let last = 0;
let disconnects = 0;
let envelopeBytes = 0;
let ready = false;
let reported = false;

function now() {
  return performance.timeOrigin + performance.now();
}

function emitLine(tag, body) {
  process.stdout.write(`${tag} ${JSON.stringify(body)}\n`);
}

function report() {
  if (reported) return;
  reported = true;
  emitLine("RESULT", { received, first, last, disconnects, envelope_bytes: envelopeBytes, latencies });
}

function record(envelope) {
  const t = now();
  const sent = envelope?.data?.bench_sent_ms;
  if (typeof sent === "number") latencies.push(Math.round((t - sent) * 100) / 100);
  if (received === 0) {
    first = t;
    envelopeBytes = Buffer.byteLength(JSON.stringify(envelope));
  }
  last = t;
  received += 1;
  if (ready && expected > 0 && received >= expected) report();
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timeout`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Resolves with whether the server announced `batch`; rejects on connect_error or timeout.
function open(index) {
  const auth = { user_id: `${opts["user-prefix"]}${index}`, organization_id: opts.org };
  if (opts.batch) auth.capabilities = ["batch"];
  const socket = io(opts.url, {
    path: "/ws",
    transports: ["websocket"],
    auth,
    reconnection: false,
    // One Manager (one connection) per socket: without it socket.io-client multiplexes every
    // socket to the same URL over a single WebSocket.
    forceNew: true,
  });
  sockets.push(socket);
  socket.on("kpi:update", record);
  socket.on("batch", (body) => {
    for (const envelope of body?.messages ?? []) record(envelope);
  });
  socket.on("disconnect", () => {
    disconnects += 1;
  });
  const authenticated = new Promise((resolve, reject) => {
    socket.once("authenticated", (body) => resolve(body));
    socket.once("connect_error", (err) => reject(new Error(JSON.stringify(err?.data ?? err.message))));
  });
  return withTimeout(authenticated, "authenticate").then(async (body) => {
    const batch = (body?.server?.capabilities ?? []).includes("batch");
    if (opts.subscribe) {
      const ack = await withTimeout(
        socket.emitWithAck("subscribe", { channels: ["kpi"] }),
        "subscribe",
      );
      if (!ack?.success) throw new Error(`subscribe refused: ${JSON.stringify(ack?.error)}`);
    }
    return batch;
  });
}

async function openAll() {
  const wave = Math.max(1, Number(opts.concurrency));
  let connected = 0;
  let failed = 0;
  let batch = true;
  const errors = new Set();
  for (let start = 0; start < clients; start += wave) {
    const count = Math.min(wave, clients - start);
    const results = await Promise.allSettled(
      Array.from({ length: count }, (_, k) => open(start + k)),
    );
    for (const r of results) {
      if (r.status === "fulfilled") {
        connected += 1;
        batch &&= r.value;
      } else {
        failed += 1;
        if (errors.size < 5) errors.add(String(r.reason?.message ?? r.reason));
      }
    }
  }
  ready = true;
  emitLine("CONNECTED", { connected, failed, batch: connected > 0 && batch, errors: [...errors] });
  if (expected > 0 && received >= expected) report();
}

function quit() {
  for (const socket of sockets) socket.disconnect();
  process.exit(0);
}

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = line.trim();
  if (command === "report") report();
  else if (command === "quit") quit();
});
commands.on("close", quit);

openAll();
