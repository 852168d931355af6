#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server, for the cluster tests, which start their own on a free
# loopback port; the Socket.IO clients of the real-client tests, by
# scripts/socketio-deps.sh), then `cargo test --workspace`. Extra arguments
# go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/apt-ensure.sh
apt_ensure redis-server redis-server "the cluster tests start their own"
bash scripts/socketio-deps.sh

cargo test --workspace "$@"
