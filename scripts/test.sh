#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server, for the cluster tests, which start their own on a free
# loopback port; the Socket.IO clients of the real-client tests, by
# scripts/socketio-deps.sh), then `cargo test --workspace`. Extra arguments
# go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "--- installing redis-server (the cluster tests start their own)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "redis-server is missing and cannot be installed (not root, no sudo):" >&2
        echo "install it with your package manager (Debian: apt-get install redis-server)" >&2
        exit 1
    fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q redis-server
fi

bash scripts/socketio-deps.sh

cargo test --workspace "$@"
