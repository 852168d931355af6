#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (redis-server, for the cluster tests, which start their own on a free
# loopback port; the Socket.IO clients of the real-client tests, by
# scripts/socketio-deps.sh), then `cargo test --workspace` (extra arguments
# go to it), then the Docker image test, scripts/docker-test.sh (a real
# engine: it installs and starts one when missing, and builds and runs the
# image).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/apt-ensure.sh
apt_ensure redis-server redis-server "the cluster tests start their own"
bash scripts/socketio-deps.sh

cargo test --workspace "$@"

echo "--- image (scripts/docker-test.sh)"
bash scripts/docker-test.sh
