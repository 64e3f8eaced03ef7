// The official socket.io-client against an intraday-live server.
//
// Usage: node js_client.mjs URL ORG [--auth JSON] [--transports polling,websocket]
//
// Connects to URL with path /ws and the authenticate object in the handshake,
// waits for `authenticated`, subscribes to the kpi channel with an ack and
// prints one JSON line per step or event received:
//   {"type":"connected","id":...}
//   {"type":"authenticated","data":{...}}
//   {"type":"subscribed","ack":{...}}
//   {"type":"event","event":"kpi:update","data":{...}}
//   {"type":"connect_error","message":...,"data":{...}}
// Exits 0 after one `kpi:update`, 3 on connect_error, 4 on a refused
// subscription, 2 on timeout.
import { io } from "socket.io-client";

const [url, org, ...rest] = process.argv.slice(2);
if (!url || !org) {
  console.error("usage: node js_client.mjs URL ORG [--auth JSON] [--transports LIST]");
  process.exit(64);
}
const options = {};
for (let i = 0; i < rest.length; i += 2) options[rest[i].replace(/^--/, "")] = rest[i + 1];

const auth = options.auth ? JSON.parse(options.auth) : { user_id: "js_user", organization_id: org };
const transports = (options.transports || "polling,websocket").split(",");
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(url, { path: "/ws", auth, transports, reconnection: false, timeout: 5000 });

const timer = setTimeout(() => {
  say({ type: "timeout" });
  socket.close();
  process.exit(2);
}, Number(options.timeout || 15000));

socket.on("connect", () => say({ type: "connected", id: socket.id }));

socket.on("connect_error", (err) => {
  say({ type: "connect_error", message: err.message, data: err.data ?? null });
  clearTimeout(timer);
  socket.close();
  process.exit(3);
});

socket.on("authenticated", async (body) => {
  say({ type: "authenticated", data: body });
  try {
    const ack = await socket.timeout(5000).emitWithAck("subscribe", { channels: ["kpi"] });
    say({ type: "subscribed", ack });
    if (!ack || ack.success !== true) {
      clearTimeout(timer);
      socket.close();
      process.exit(4);
    }
  } catch (err) {
    say({ type: "subscribe_timeout", message: String(err) });
    clearTimeout(timer);
    socket.close();
    process.exit(4);
  }
});

socket.onAny((event, data) => {
  if (event === "authenticated") return;
  say({ type: "event", event, data });
  if (event === "kpi:update") {
    clearTimeout(timer);
    socket.close();
    process.exit(0);
  }
});
