#!/usr/bin/env node
// A Socket.IO client (socket.io-client on Node) scripted by JSON lines: one
// command per stdin line, one output per stdout line (protocol:
// tests/src/sioclient.rs). Exits when stdin closes or on {"cmd":"exit"}.
"use strict";
const readline = require("readline");
const { io } = require("socket.io-client");
const { createDriver } = require("./driver-core.js");

function out(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

const driver = createDriver(io, out, {
  encode: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64"),
  decode: (text) => Buffer.from(text, "base64"),
});

function exit() {
  driver.closeAll();
  // Let the sockets' close frames go out, then stop whatever timers remain.
  setTimeout(() => process.exit(0), 50);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (driver.handleLine(line)) exit();
});
lines.on("close", exit);
out({ type: "ready", client: "node socket.io-client " + require("socket.io-client/package.json").version });
