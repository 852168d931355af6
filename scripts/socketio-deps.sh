#!/usr/bin/env bash
# Installs what the real Socket.IO client tests (tests/tests/socketio_clients.rs)
# need, from the project's own pins; idempotent, and a no-op taking well under
# a second when everything is in place:
#   - the npm packages of tests/socketio/package.json + package-lock.json
#     (socket.io-client 4, socket.io 4 for the reference server, and
#     @socket.io/admin-ui, whose built UI the admin console test loads) into the
#     repo-local, git-ignored tests/socketio/node_modules (`npm ci`);
#   - python-socketio with its websocket and long-polling client transports,
#     pinned by tests/socketio/requirements.txt, into the venv
#     tests/socketio/.cache/venv (git-ignored);
#   - Debian's chromium (apt-get), only if no `chromium` is on the PATH (and
#     Debian's nodejs / npm likewise, if missing).
# Each step is redone only when its pins changed (a stamp holds their hash).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/tests/socketio"

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "socketio-deps: '$1' is missing (the Socket.IO client tests need it; $2)" >&2
        exit 1
    }
}

# A hash of the files that pin a step, plus the tool version it was built with.
stamp_of() { { cat "$@"; "${TOOL[@]}" --version 2>&1; } | sha256sum | cut -d' ' -f1; }

. "$root/scripts/apt-ensure.sh"

# --- npm packages (Node and npm are on the usual machine; Debian's otherwise)
apt_ensure node nodejs "the Node Socket.IO client and reference server run on it"
apt_ensure npm npm "it installs the Socket.IO npm packages"
TOOL=(node)
npm_stamp="$(stamp_of package.json package-lock.json)"
if [ "$(cat node_modules/.herald-stamp 2>/dev/null || true)" != "$npm_stamp" ]; then
    echo "--- installing the Socket.IO npm packages into tests/socketio/node_modules"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$npm_stamp" > node_modules/.herald-stamp
fi

# --- python-socketio
PY="${PYTHON:-python3}"
need "$PY" "Debian: apt-get install python3 python3-venv"
TOOL=("$PY")
venv=.cache/venv
py_stamp="$(stamp_of requirements.txt)"
if [ "$(cat "$venv/.herald-stamp" 2>/dev/null || true)" != "$py_stamp" ]; then
    echo "--- installing python-socketio into tests/socketio/$venv"
    rm -rf "$venv"
    "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$py_stamp" > "$venv/.herald-stamp"
fi

# --- chromium (Debian's package; a browser download of a test tool's own fails here)
apt_ensure chromium chromium "the browser client test runs it headless"
