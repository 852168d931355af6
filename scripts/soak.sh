#!/usr/bin/env bash
# Soak the release broker: builds herald-broker and herald (release), starts
# the broker on a free loopback port, runs `herald bench soak` against it,
# stops the broker by its PID, and exits with the soak's status (non-zero on
# any loss or error).
#
#   bash scripts/soak.sh                 # 30 minutes, a report every minute
#   bash scripts/soak.sh 60s             # the CI smoke run (a report every 10 s)
#   bash scripts/soak.sh 30m --load 0.5  # extra options go to `herald bench soak`
#
# Set HERALD_SOAK_PIN=1 to pin the broker to CPU 0 and the load generator to
# CPU 1 with taskset (as herald-bench does); the broker's log goes to
# $HERALD_SOAK_LOG (default: a temporary file, printed when the soak fails).
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything is in a function, parsed whole before it runs: editing this
# file while a soak runs does not change what the running one does next.
main() {
    duration="${1:-30m}"
    shift || true
    case "$duration" in
        [0-9]*) ;;
        *) echo "usage: bash scripts/soak.sh [DURATION] [herald bench soak options...]" >&2; exit 2 ;;
    esac
    # Short runs (up to 300 s) report every 10 s, longer ones every minute.
    every=1m
    if [[ "$duration" =~ ^([0-9]+)s?$ ]] && [ "${BASH_REMATCH[1]}" -le 300 ]; then every=10s; fi
    if [[ "$duration" =~ ^([0-5])m$ ]]; then every=10s; fi
    report_every=(--report-every "$every")
    for arg in "$@"; do
        case "$arg" in --report-every|--report-every=*) report_every=() ;; esac
    done

    cargo build --release --locked -p herald-broker -p herald-cli
    bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

    pin_broker=()
    pin_load=()
    if [ "${HERALD_SOAK_PIN:-0}" = 1 ] && command -v taskset >/dev/null 2>&1; then
        pin_broker=(taskset -c 0)
        pin_load=(taskset -c 1)
    fi

    command -v python3 >/dev/null 2>&1 || { echo "scripts/soak.sh needs python3 (to pick a free port)" >&2; exit 1; }
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    log="${HERALD_SOAK_LOG:-$(mktemp -t herald-soak-broker.XXXXXX.log)}"
    "${pin_broker[@]}" "$bin/herald-broker" --listen "127.0.0.1:$port" --log-level warn >"$log" 2>&1 &
    broker_pid=$!
    stop_broker() {
        if kill -0 "$broker_pid" 2>/dev/null; then
            kill -TERM "$broker_pid"
            wait "$broker_pid" || true
        fi
    }
    trap stop_broker EXIT

    # Ready when /healthz answers (bounded: 15 s).
    ready=0
    for _ in $(seq 150); do
        if "$bin/herald-broker" healthcheck --url "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
            ready=1
            break
        fi
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "the broker exited during start-up; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [ "$ready" -ne 1 ]; then
        echo "the broker did not answer /healthz on 127.0.0.1:$port within 15 s; its log:" >&2
        cat "$log" >&2
        exit 1
    fi

    status=0
    "${pin_load[@]}" "$bin/herald" bench soak --url "ws://127.0.0.1:$port" \
        --server-pid "$broker_pid" --duration "$duration" "${report_every[@]}" "$@" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "--- soak failed (exit $status); the end of the broker's log ($log):" >&2
        tail -n 50 "$log" >&2
    fi
    exit "$status"
}

main "$@"
