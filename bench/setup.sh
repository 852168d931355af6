#!/usr/bin/env bash
# Installs the peers `herald-bench compare` measures Herald against
# (nats-server and redis-server, from Debian's packages) and checks the
# tools it uses (taskset). Run as root (or with sudo) on a Debian or Ubuntu
# machine:
#
#     sudo bash bench/setup.sh
#
# The socketioxide relay and the floor forwarder are built into herald-bench
# itself and need nothing installed. The open-files limit for the scale run is
# raised by bench/scale.sh, in the shell that runs it.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (sudo bash bench/setup.sh)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
for package in nats-server redis-server; do
    # (captured first: grep -q closing the pipe early would fail it under pipefail)
    policy="$(apt-cache policy "$package")"
    if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
        echo "setup.sh: the package $package is not available from this machine's apt sources" >&2
        exit 1
    fi
done
# util-linux provides taskset (pinning the servers and the load generator).
apt-get install -y --no-install-recommends nats-server redis-server util-linux

# The Debian packages start system services on their default ports; the
# benchmark starts its own instances on free ports, so stop those (where
# systemd runs) to keep them off the measured CPU.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now redis-server nats-server 2>/dev/null || true
fi

echo
echo "installed:"
echo "  $(command -v nats-server): $(nats-server --version 2>&1 | head -n 1)"
echo "  $(command -v redis-server): $(redis-server --version 2>&1 | head -n 1)"
echo "  $(command -v taskset)"
echo "open files limit of this shell: $(ulimit -n) (bench/scale.sh raises it for the scale run)"
