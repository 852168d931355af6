// The browser driver: the same commands and outputs as driver.js (the
// protocol is in tests/src/sioclient.rs), carried over HTTP to the Rust test
// that serves this page: commands by long-polling GET /cmd (JSON lines),
// outputs by POST /out (JSON lines, one request in flight at a time so they
// arrive in order). The Socket.IO server is another origin (CORS).
"use strict";
(function () {
  let pending = [];
  let sending = false;

  function flush() {
    if (sending || pending.length === 0) return;
    sending = true;
    const body = pending.join("\n") + "\n";
    pending = [];
    fetch("/out", { method: "POST", body: body, headers: { "Content-Type": "text/plain" } })
      .catch(function (error) {
        console.log("herald page: POST /out failed: " + error);
      })
      .then(function () {
        sending = false;
        flush();
      });
  }

  function out(object) {
    pending.push(JSON.stringify(object));
    flush();
  }

  const driver = HeraldSioDriver.createDriver(io, out, {
    encode: function (bytes) {
      let text = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
      return btoa(text);
    },
    decode: function (text) {
      const raw = atob(text);
      const bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return bytes;
    },
  });

  // The server holds a GET /cmd up to a second when it has nothing to say.
  function poll() {
    fetch("/cmd", { cache: "no-store" })
      .then(function (response) {
        return response.text();
      })
      .then(function (text) {
        for (const line of text.split("\n")) {
          if (driver.handleLine(line)) return;
        }
        poll();
      })
      .catch(function (error) {
        console.log("herald page: GET /cmd failed: " + error);
        setTimeout(poll, 100);
      });
  }

  out({ type: "ready", client: "browser socket.io-client (" + navigator.userAgent + ")" });
  poll();
})();
