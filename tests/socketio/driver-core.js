// The command interpreter shared by the Node driver (driver.js) and the
// browser page (page.js): it runs socket.io-client sockets as JSON commands
// say, and reports what happens as JSON outputs. The protocol (one JSON
// object per command / output) is documented in tests/src/sioclient.rs.
//
// Binary values travel as {"$bin":"<base64>"} both ways: a command's
// {"$bin":..} becomes a binary argument (a Buffer on Node, a Uint8Array in
// the browser), and a received Buffer / ArrayBuffer / typed array is
// reported as {"$bin":..}.
(function (root, factory) {
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.HeraldSioDriver = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  function isBinary(value) {
    return (
      value instanceof ArrayBuffer ||
      (typeof ArrayBuffer.isView === "function" && ArrayBuffer.isView(value))
    );
  }

  function bytesOf(value) {
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }

  // `b64` = { encode(Uint8Array) -> string, decode(string) -> binary value }.
  function createDriver(io, out, b64) {
    const sockets = new Map();

    function encode(value) {
      if (value === undefined || value === null) return null;
      if (isBinary(value)) return { $bin: b64.encode(bytesOf(value)) };
      if (Array.isArray(value)) return value.map(encode);
      if (typeof value === "object") {
        const object = {};
        for (const key of Object.keys(value)) object[key] = encode(value[key]);
        return object;
      }
      return value;
    }

    function decode(value) {
      if (Array.isArray(value)) return value.map(decode);
      if (value !== null && typeof value === "object") {
        const keys = Object.keys(value);
        if (keys.length === 1 && keys[0] === "$bin") return b64.decode(value.$bin);
        const object = {};
        for (const key of keys) object[key] = decode(value[key]);
        return object;
      }
      return value;
    }

    function entry(id) {
      const found = sockets.get(id);
      if (!found) throw new Error("no client with id " + JSON.stringify(id));
      return found;
    }

    function transportOf(socket) {
      const engine = socket.io.engine;
      return engine && engine.transport ? engine.transport.name : null;
    }

    function connect(cmd) {
      const id = cmd.id;
      const old = sockets.get(id);
      if (old) old.socket.disconnect();
      const namespace = cmd.namespace || "/";
      const url = String(cmd.url).replace(/\/+$/, "") + namespace;
      const reconnection = !!cmd.reconnection;
      const socket = io(url, {
        forceNew: true,
        path: cmd.path || "/socket.io/",
        transports: cmd.transports || ["polling", "websocket"],
        upgrade: cmd.upgrade !== false,
        auth: cmd.auth,
        timeout: cmd.timeout_ms || 5000,
        reconnection: reconnection,
        reconnectionDelay: 100,
        reconnectionDelayMax: 500,
        randomizationFactor: 0,
      });
      const state = { socket: socket, listen: new Set(cmd.listen || ["*"]), replies: new Map() };
      sockets.set(id, state);

      socket.on("connect", function () {
        out({
          type: "connected",
          id: id,
          sid: socket.id,
          transport: transportOf(socket),
          recovered: !!socket.recovered,
        });
      });
      socket.on("connect_error", function (err) {
        out({
          type: "connect_error",
          id: id,
          message: err && err.message,
          data: encode(err && err.data),
        });
      });
      socket.on("disconnect", function (reason) {
        out({ type: "disconnect", id: id, reason: reason });
      });
      socket.onAny(function (event) {
        const args = Array.prototype.slice.call(arguments, 1);
        let ack = null;
        if (args.length > 0 && typeof args[args.length - 1] === "function") ack = args.pop();
        if (state.listen.has("*") || state.listen.has(event)) {
          out({ type: "event", id: id, event: event, args: encode(args), ack: ack !== null });
        }
        if (ack !== null) {
          const reply = state.replies.get(event) || state.replies.get("*") || [];
          ack.apply(null, decode(reply));
        }
      });
      const manager = socket.io;
      manager.on("open", function () {
        manager.engine.on("upgrade", function (transport) {
          out({ type: "upgrade", id: id, transport: transport.name });
        });
      });
      manager.on("reconnect_attempt", function (attempt) {
        out({ type: "reconnect_attempt", id: id, attempt: attempt });
      });
      manager.on("reconnect", function (attempt) {
        out({ type: "reconnect", id: id, attempt: attempt });
      });
      return {};
    }

    function emit(cmd) {
      const socket = entry(cmd.id).socket;
      const args = decode(cmd.args || []);
      if (!cmd.ack) {
        socket.emit.apply(socket, [cmd.event].concat(args));
        return {};
      }
      const id = cmd.id;
      const seq = cmd.seq;
      // With a timeout the callback gets (err, ...args), without it (...args).
      const target = cmd.timeout_ms ? socket.timeout(cmd.timeout_ms) : socket;
      const callback = function () {
        const res = Array.prototype.slice.call(arguments);
        if (cmd.timeout_ms && res.shift()) {
          out({ type: "ack_timeout", id: id, seq: seq });
        } else {
          out({ type: "ack", id: id, seq: seq, args: encode(res) });
        }
      };
      target.emit.apply(target, [cmd.event].concat(args, [callback]));
      return {};
    }

    function emitSeq(cmd) {
      const socket = entry(cmd.id).socket;
      const from = cmd.from || 0;
      for (let i = from; i < from + cmd.count; i++) socket.emit(cmd.event, i);
      return {};
    }

    const commands = {
      connect: connect,
      emit: emit,
      emit_seq: emitSeq,
      on: function (cmd) {
        const state = entry(cmd.id);
        state.listen.add(cmd.event);
        if (cmd.reply) state.replies.set(cmd.event, cmd.reply);
        return {};
      },
      off: function (cmd) {
        entry(cmd.id).listen.delete(cmd.event);
        return {};
      },
      transport: function (cmd) {
        const socket = entry(cmd.id).socket;
        return { transport: transportOf(socket), connected: socket.connected, sid: socket.id || null };
      },
      disconnect: function (cmd) {
        entry(cmd.id).socket.disconnect();
        return {};
      },
      close: function (cmd) {
        entry(cmd.id).socket.disconnect();
        sockets.delete(cmd.id);
        return {};
      },
    };

    // Runs one command; always answers {"type":"done","req":..} (with the
    // command's results) or {"type":"error","req":..,"message":..}.
    function handle(cmd) {
      const req = cmd && cmd.req;
      try {
        const run = cmd && commands[cmd.cmd];
        if (!run) throw new Error("unknown command " + JSON.stringify(cmd && cmd.cmd));
        const result = run(cmd);
        result.type = "done";
        result.req = req;
        result.cmd = cmd.cmd;
        out(result);
      } catch (error) {
        out({ type: "error", req: req, message: String((error && error.message) || error) });
      }
    }

    function closeAll() {
      for (const state of sockets.values()) state.socket.disconnect();
      sockets.clear();
    }

    // Runs one command line; returns true for `exit` (every socket is
    // closed and answered; the caller ends the program).
    function handleLine(line) {
      if (line.trim() === "") return false;
      let cmd;
      try {
        cmd = JSON.parse(line);
      } catch (error) {
        out({ type: "error", req: null, message: "not JSON: " + error.message });
        return false;
      }
      if (cmd && cmd.cmd === "exit") {
        closeAll();
        out({ type: "done", req: cmd.req, cmd: "exit" });
        return true;
      }
      handle(cmd);
      return false;
    }

    return { handleLine: handleLine, closeAll: closeAll };
  }

  return { createDriver: createDriver };
});
