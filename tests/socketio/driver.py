"""A Socket.IO client (python-socketio's asyncio client) scripted by JSON lines.

One command per stdin line, one output per stdout line; the protocol is the
one driver.js speaks (documented in tests/src/sioclient.rs). Binary values
travel as {"$bin": "<base64>"} both ways (bytes in python-socketio). Exits
when stdin closes or on {"cmd": "exit"}.

python-socketio reports no reconnection of its own: a `connect` after the
first of a client is reported as {"type": "reconnect"} followed by
{"type": "connected"}, as the Node client's manager does. Its engine
upgrades to websocket inside `connect`, so there is no `upgrade` output; the
`connected` output and the `transport` command say which transport is used.
"""

import asyncio
import base64
import json
import os
import sys
from importlib import metadata

import engineio.payload
import socketio

DEBUG = bool(os.environ.get("HERALD_SIO_DEBUG"))


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def encode(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if list(value.keys()) == ["$bin"]:
            return base64.b64decode(value["$bin"])
        return {k: decode(v) for k, v in value.items()}
    return value


class Client:
    """One python-socketio AsyncClient connected to one namespace."""

    def __init__(self, cmd):
        self.id = cmd["id"]
        self.namespace = cmd.get("namespace") or "/"
        self.listen = set(cmd.get("listen", ["*"]))
        self.replies = {}
        self.connects = 0
        self.sio = socketio.AsyncClient(
            reconnection=bool(cmd.get("reconnection")),
            reconnection_delay=0.1,
            reconnection_delay_max=0.5,
            randomization_factor=0,
            # HERALD_SIO_DEBUG=1: the library's own logs, on stderr (the
            # driver's log file).
            logger=DEBUG,
            engineio_logger=DEBUG,
        )
        ns = self.namespace
        self.sio.on("connect", self.on_connect, namespace=ns)
        self.sio.on("connect_error", self.on_connect_error, namespace=ns)
        self.sio.on("disconnect", self.on_disconnect, namespace=ns)
        self.sio.on("*", self.on_any, namespace=ns)
        self.connect_error_reported = False

    async def on_connect(self):
        self.connects += 1
        if self.connects > 1:
            out({"type": "reconnect", "id": self.id, "attempt": self.connects - 1})
        out({
            "type": "connected",
            "id": self.id,
            "sid": self.sio.get_sid(self.namespace),
            "transport": self.sio.transport(),
        })

    async def on_connect_error(self, data=None):
        self.connect_error_reported = True
        message = data.get("message") if isinstance(data, dict) else data
        out({"type": "connect_error", "id": self.id, "message": message,
             "data": encode(data.get("data")) if isinstance(data, dict) else None})

    async def on_disconnect(self, reason=None):
        out({"type": "disconnect", "id": self.id, "reason": reason})

    async def on_any(self, event, *args):
        if "*" in self.listen or event in self.listen:
            out({"type": "event", "id": self.id, "event": event, "args": encode(list(args))})
        reply = self.replies.get(event, self.replies.get("*"))
        if reply is not None:
            return tuple(decode(reply))
        return None

    async def connect(self, cmd):
        url = str(cmd["url"]).rstrip("/")
        try:
            await self.sio.connect(
                url,
                namespaces=[self.namespace],
                transports=cmd.get("transports") or ["polling", "websocket"],
                auth=cmd.get("auth"),
                socketio_path=cmd.get("path") or "socket.io",
                wait_timeout=(cmd.get("timeout_ms") or 5000) / 1000,
            )
        except Exception as error:  # reported, the test decides
            if not self.connect_error_reported:
                out({"type": "connect_error", "id": self.id, "message": str(error), "data": None})


clients = {}
tasks = set()


def spawn(coroutine):
    task = asyncio.ensure_future(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def client(cmd):
    found = clients.get(cmd.get("id"))
    if found is None:
        raise ValueError("no client with id " + json.dumps(cmd.get("id")))
    return found


async def cmd_connect(cmd):
    # python-engineio refuses (and drops the connection on) a polling
    # response of more than 16 packets; servers that answer a poll with
    # everything queued (the Node reference server does) exceed that under
    # a burst. A test may raise the limit (it is process-wide).
    if cmd.get("max_decode_packets"):
        engineio.payload.Payload.max_decode_packets = int(cmd["max_decode_packets"])
    old = clients.pop(cmd["id"], None)
    if old is not None:
        await old.sio.disconnect()
    c = Client(cmd)
    clients[c.id] = c
    spawn(c.connect(cmd))
    return {}


async def cmd_emit(cmd):
    c = client(cmd)
    args = tuple(decode(cmd.get("args") or []))
    if not cmd.get("ack"):
        await c.sio.emit(cmd["event"], args, namespace=c.namespace)
        return {}
    seq = cmd.get("seq")
    answered = asyncio.Event()

    def callback(*res):
        if not answered.is_set():
            answered.set()
            out({"type": "ack", "id": c.id, "seq": seq, "args": encode(list(res))})

    await c.sio.emit(cmd["event"], args, namespace=c.namespace, callback=callback)
    timeout_ms = cmd.get("timeout_ms")
    if timeout_ms:
        async def expire():
            try:
                await asyncio.wait_for(answered.wait(), timeout_ms / 1000)
            except asyncio.TimeoutError:
                answered.set()
                out({"type": "ack_timeout", "id": c.id, "seq": seq})
        spawn(expire())
    return {}


async def cmd_emit_seq(cmd):
    c = client(cmd)
    start = cmd.get("from", 0)
    for i in range(start, start + cmd["count"]):
        await c.sio.emit(cmd["event"], i, namespace=c.namespace)
    return {}


async def cmd_on(cmd):
    c = client(cmd)
    c.listen.add(cmd["event"])
    if "reply" in cmd:
        c.replies[cmd["event"]] = cmd["reply"]
    return {}


async def cmd_off(cmd):
    client(cmd).listen.discard(cmd["event"])
    return {}


async def cmd_transport(cmd):
    c = client(cmd)
    # `sio.connected` turns true only when `connect()` returns, after the
    # connect handler ran; the namespace entry is there from the CONNECT.
    connected = c.namespace in c.sio.namespaces and c.sio.eio.state == "connected"
    return {
        "transport": c.sio.transport() if connected else None,
        "connected": connected,
        "sid": c.sio.get_sid(c.namespace) if connected else None,
    }


async def cmd_disconnect(cmd):
    await client(cmd).sio.disconnect()
    return {}


async def cmd_close(cmd):
    c = client(cmd)
    await c.sio.disconnect()
    del clients[c.id]
    return {}


COMMANDS = {
    "connect": cmd_connect,
    "emit": cmd_emit,
    "emit_seq": cmd_emit_seq,
    "on": cmd_on,
    "off": cmd_off,
    "transport": cmd_transport,
    "disconnect": cmd_disconnect,
    "close": cmd_close,
}


async def close_all():
    for c in list(clients.values()):
        try:
            await asyncio.wait_for(c.sio.disconnect(), 2)
        except Exception:  # leaving anyway
            pass
    clients.clear()


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out({"type": "ready", "client": "python-socketio " + metadata.version("python-socketio")})
    while True:
        line = await reader.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
        except ValueError as error:
            out({"type": "error", "req": None, "message": "not JSON: " + str(error)})
            continue
        req = cmd.get("req") if isinstance(cmd, dict) else None
        if isinstance(cmd, dict) and cmd.get("cmd") == "exit":
            out({"type": "done", "req": req, "cmd": "exit"})
            break
        run = COMMANDS.get(cmd.get("cmd")) if isinstance(cmd, dict) else None
        try:
            if run is None:
                raise ValueError("unknown command " + json.dumps(cmd))
            result = await run(cmd)
            result.update({"type": "done", "req": req, "cmd": cmd["cmd"]})
            out(result)
        except Exception as error:  # reported to the test, which fails on it
            out({"type": "error", "req": req, "message": repr(error)})
    await close_all()


if __name__ == "__main__":
    asyncio.run(main())
