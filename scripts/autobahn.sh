#!/usr/bin/env bash
# Runs the Autobahn TestSuite (wstest -m fuzzingclient) against the broker's
# own WebSocket reader and writer, through the echo endpoint that
# `testing.echo_endpoint` enables. See docs/autobahn.md.
#
#   bash scripts/autobahn.sh                 # builds the release broker
#   bash scripts/autobahn.sh path/to/herald-broker
#
# Installs the suite (Python 2.7 from pyenv, exact pinned versions) into a
# cache directory when it is missing, starts the broker on a free loopback
# port, runs the cases, prints a summary by result and the ids of the
# failing cases, stops the broker, and exits non-zero unless every case is
# OK, NON-STRICT or INFORMATIONAL. Loopback only; bounded in time.
#
# Environment:
#   HERALD_BROKER_BIN   broker binary (instead of building the release one)
#   AUTOBAHN_CACHE      where the suite is installed
#                       [${XDG_CACHE_HOME:-$HOME/.cache}/herald-autobahn]
#   AUTOBAHN_PYTHON     a Python 2.7 [$(pyenv root)/versions/2.7.18/bin/python]
#   AUTOBAHN_OUT        the run's files: config, spec, broker log, reports
#                       [target/autobahn]
#   AUTOBAHN_CASES      comma-separated case patterns [the CI set below]
#   AUTOBAHN_TIMEOUT    seconds the whole fuzzing run may take [900]
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE_VERSION=25.10.1
# Cases run by default: all of 1-7, 9 (every limits/performance case, up
# to 16 MiB messages: about 25 s of the run) and 10; not compression (12.*,
# 13.*: no permessage-deflate is negotiated). See docs/autobahn.md.
DEFAULT_CASES="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*"
CASES="${AUTOBAHN_CASES:-$DEFAULT_CASES}"
TIMEOUT="${AUTOBAHN_TIMEOUT:-900}"
CACHE="${AUTOBAHN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/herald-autobahn}"
OUT="${AUTOBAHN_OUT:-$PWD/target/autobahn}"
ECHO_PATH=/v1/echo

die() { echo "autobahn: $*" >&2; exit 1; }

# --- Python 2.7 (the suite has not been ported to Python 3)
PY="${AUTOBAHN_PYTHON:-}"
if [ -z "$PY" ]; then
    command -v pyenv >/dev/null 2>&1 \
        || die "no Python 2.7: install it with pyenv (pyenv install 2.7.18) or set AUTOBAHN_PYTHON"
    PY="$(pyenv root)/versions/2.7.18/bin/python"
fi
[ -x "$PY" ] || die "$PY is not there: run 'pyenv install 2.7.18' or set AUTOBAHN_PYTHON"

# --- the suite, installed once per version into the cache
SITE="$CACHE/autobahntestsuite-$SUITE_VERSION"
if [ ! -f "$SITE/.installed" ]; then
    echo "--- installing autobahntestsuite $SUITE_VERSION into $SITE"
    rm -rf "$SITE.partial"
    mkdir -p "$SITE.partial"
    # Every package pinned: the suite's own wheel pins its direct
    # dependencies; these are the newest of the rest that still support
    # Python 2.7 (a range would let a py3-only release in).
    cat >"$SITE.partial/constraints.txt" <<'EOF'
autobahntestsuite==25.10.1
autobahn==0.10.9
Twisted==19.10.0
txaio==2.1.0
six==1.16.0
zope.interface==4.6.0
setuptools==44.0.0
incremental==16.10.1
pyOpenSSL==19.1.0
cryptography==3.3.2
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
service-identity==18.1.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
attrs==21.4.0
Automat==22.10.0
constantly==15.1.0
hyperlink==21.0.0
idna==2.10
typing==3.10.0.0
PyHamcrest==1.10.1
klein==17.10.0
Werkzeug==1.0.1
jinja2==2.11.3
markupsafe==1.1.1
unittest2==1.1.0
traceback2==1.4.0
linecache2==1.0.0
argparse==1.4.0
wsaccel==0.6.6
ujson==2.0.3
EOF
    "$PY" -m pip install --quiet --disable-pip-version-check \
        --no-warn-script-location \
        --target "$SITE.partial" -c "$SITE.partial/constraints.txt" \
        "autobahntestsuite==$SUITE_VERSION" \
        || die "pip could not install autobahntestsuite $SUITE_VERSION (see above)"
    touch "$SITE.partial/.installed"
    rm -rf "$SITE"
    mv "$SITE.partial" "$SITE"
fi
# zope is a namespace package: only site.addsitedir reads the .pth files
# that make it importable (PYTHONPATH does not).
WSTEST="$CACHE/wstest.py"
cat >"$WSTEST" <<'EOF'
import site, sys; site.addsitedir(sys.argv.pop(1))
from autobahntestsuite import wstest; wstest.run()
EOF

# --- the broker
BIN="${1:-${HERALD_BROKER_BIN:-}}"
if [ -z "$BIN" ]; then
    echo "--- building the release broker"
    cargo build --release -p herald-broker --locked
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/herald-broker"
fi
[ -x "$BIN" ] || die "$BIN is not an executable broker"

rm -rf "$OUT"
mkdir -p "$OUT"
cat >"$OUT/herald.toml" <<EOF
# Written by scripts/autobahn.sh: the echo endpoint on, limits as large as
# the 9.* cases need (16 MiB messages), and no heartbeat pings (a ping the
# suite did not expect would count against the case).
[server]
listen = "127.0.0.1:0"
heartbeat_interval = "1h"
heartbeat_timeout = "2h"

[limits]
max_payload_bytes = 67108864

[delivery]
max_queued_bytes = 268435456

[testing]
echo_endpoint = "$ECHO_PATH"

[log]
format = "json"
level = "info"
EOF

BROKER_PID=""
stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
}
trap stop_broker EXIT

"$BIN" --config "$OUT/herald.toml" >"$OUT/broker.log" 2>&1 &
BROKER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
    ADDR="$(grep -o '"local_addr":"127\.0\.0\.1:[0-9]*"' "$OUT/broker.log" | head -n1 | cut -d'"' -f4 || true)"
    [ -n "$ADDR" ] && break
    kill -0 "$BROKER_PID" 2>/dev/null || { cat "$OUT/broker.log" >&2; die "the broker exited at start-up"; }
    sleep 0.1
done
[ -n "$ADDR" ] || { cat "$OUT/broker.log" >&2; die "the broker did not report its address within 10 s"; }
echo "--- broker $("$BIN" --version) on $ADDR (pid $BROKER_PID), echo at $ECHO_PATH"

# --- the run
"$PY" - "$OUT/spec.json" "ws://$ADDR$ECHO_PATH" "$OUT/reports" "$CASES" <<'EOF'
import json, sys
path, url, outdir, cases = sys.argv[1:]
spec = {
    "outdir": outdir,
    "servers": [{"agent": "herald-broker", "url": url}],
    "cases": cases.split(","),
    "exclude-cases": ["12.*", "13.*"],
    "exclude-agent-cases": {},
}
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
echo "--- wstest -m fuzzingclient, cases $CASES (at most ${TIMEOUT}s)"
started=$(date +%s)
status=0
(cd "$OUT" && timeout --kill-after=10 "$TIMEOUT" \
    "$PY" "$WSTEST" "$SITE" -m fuzzingclient -s "$OUT/spec.json" >"$OUT/wstest.log" 2>&1) \
    || status=$?
elapsed=$(( $(date +%s) - started ))
stop_broker
if [ "$status" -ne 0 ]; then
    tail -n 30 "$OUT/wstest.log" >&2
    if [ "$status" -eq 124 ]; then die "wstest did not finish within ${TIMEOUT}s"; fi
    die "wstest failed (exit $status); its log: $OUT/wstest.log"
fi
echo "--- finished in ${elapsed}s; report: $OUT/reports/index.html"

# --- the summary: counts by result, the failing cases, the exit status
"$PY" - "$OUT/reports" <<'EOF'
import json, os, sys
reports = sys.argv[1]
with open(os.path.join(reports, "index.json")) as f:
    index = json.load(f)
passing = ("OK", "NON-STRICT", "INFORMATIONAL")
def key(case):
    return tuple(int(part) for part in case.split("."))
failed = 0
for agent, cases in sorted(index.items()):
    counts = {}
    for case in cases.values():
        counts[case["behavior"]] = counts.get(case["behavior"], 0) + 1
    print("%s: %d cases" % (agent, len(cases)))
    for behavior in sorted(counts):
        print("  %-14s %d" % (behavior, counts[behavior]))
    bad = sorted((c for c in cases if cases[c]["behavior"] not in passing), key=key)
    failed += len(bad)
    for case in bad:
        entry = cases[case]
        detail = ""
        try:
            with open(os.path.join(reports, entry["reportfile"])) as f:
                report = json.load(f)
            if entry.get("behaviorClose") in passing:
                detail = report.get("result", "")
            else:
                detail = report.get("resultClose", "")
        except (IOError, ValueError, KeyError):
            pass
        print("  FAILING %-8s %s (close %s, code %s): %s" % (
            case, entry["behavior"], entry.get("behaviorClose"),
            entry.get("remoteCloseCode"), detail))
if failed:
    print("%d cases are not OK, NON-STRICT or INFORMATIONAL" % failed)
    sys.exit(1)
print("every case is OK, NON-STRICT or INFORMATIONAL")
EOF
