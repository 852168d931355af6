#!/usr/bin/env bash
# The scale run: many idle subscribed connections (100,000 by default) on
# one Herald broker, reporting the time to open them and the broker's
# memory. Usage, from anywhere in the repository:
#
#     bash bench/scale.sh                  # 100,000 connections
#     bash bench/scale.sh --conns 20000    # any `herald-bench scale` option
#
# The broker and the load generator each hold one file descriptor per
# connection, so this raises the open-files limit of its shell first (to
# 1048576, or to the hard limit where that is lower; raising the hard limit
# itself needs root with CAP_SYS_RESOURCE). herald-bench checks the limit and
# says which --conns fits when it is too low. The client sockets are spread
# over 127.0.0.1, 127.0.0.2, ... (one per 25,000 connections), which Linux
# routes locally without any setup.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=1048576
if ! ulimit -n "$wanted" 2>/dev/null; then
    hard="$(ulimit -Hn)"
    ulimit -n "$hard" 2>/dev/null || true
    echo "scale.sh: the open-files limit stays at $(ulimit -n) (hard limit $hard; raising the hard limit needs root with CAP_SYS_RESOURCE)" >&2
fi
exec cargo run --release -p herald-bench -- scale "$@"
