#!/usr/bin/env node
// The Node `socket.io` 4 reference server of the real-client tests: the
// conformance handlers of issue #10 on a loopback port, so the client rig
// (drivers, page, Rust harness) can be checked against the upstream server
// before it is pointed at Herald.
//
// Usage: node reference-server.js [PORT [PING_INTERVAL_MS PING_TIMEOUT_MS]]
// (PORT 0 or none: any free port). Prints {"type":"listening","port":N} on
// stdout once it accepts connections; exits when its stdin closes (so it
// never outlives the test that started it).
//
// Settings as the upstream test suites expect: pingInterval 300 ms,
// pingTimeout 200 ms (both overridable: the real-client tests run a longer
// timeout, see tests/src/sioclient/target.rs), maxPayload 1000000,
// connectTimeout 1 s, CORS origin *, namespaces "/", "/custom", "/chat"
// (any other: CONNECT_ERROR "Invalid namespace").
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] || 0);
const pingInterval = Number(process.argv[3] || 300);
const pingTimeout = Number(process.argv[4] || 200);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: pingInterval,
  pingTimeout: pingTimeout,
  maxHttpBufferSize: 1000000,
  connectTimeout: 1000,
  cors: { origin: "*" },
});

// The last argument of an event, when the client asked for an ack.
function takeAck(args) {
  return args.length > 0 && typeof args[args.length - 1] === "function" ? args.pop() : () => {};
}

// "/" and "/custom": `auth` with the CONNECT payload ({} when none).
for (const name of ["/", "/custom"]) {
  io.of(name).on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth || {});
  });
}

io.of("/").on("connection", (socket) => {
  socket.on("message", (...args) => {
    takeAck(args);
    socket.emit("message-back", ...args);
  });
  socket.on("message-with-ack", (...args) => {
    const ack = takeAck(args);
    ack(...args);
  });
});

io.of("/chat").on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = takeAck(args);
    ack(...args);
  });
  socket.on("join", (...args) => {
    const ack = takeAck(args);
    socket.join(args[0]);
    ack({ ok: true, room: args[0] });
  });
  socket.on("leave", (...args) => {
    const ack = takeAck(args);
    socket.leave(args[0]);
    ack({ ok: true, room: args[0] });
  });
  socket.on("publish", (...args) => {
    const ack = takeAck(args);
    const message = args[0] || {};
    const room = message.room === undefined ? null : message.room;
    const nsp = socket.nsp;
    let recipients;
    if (room === null) {
      recipients = nsp.sockets.size - 1;
      socket.broadcast.emit("broadcast", { room: room, data: message.data });
    } else {
      const members = nsp.adapter.rooms.get(room) || new Set();
      recipients = members.size - (members.has(socket.id) ? 1 : 0);
      socket.to(room).emit("broadcast", { room: room, data: message.data });
    }
    ack({ ok: true, recipients: recipients });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ type: "listening", port: httpServer.address().port }) + "\n");
});
process.on("SIGTERM", () => process.exit(0));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
