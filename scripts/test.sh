#!/usr/bin/env bash
# Lint, then run the test suite against a real TimescaleDB (started here if needed) and real Mosquitto
# brokers (each test session starts its own). Stops what it started.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SEMON_ROOT_DIR"

step "ruff check"
"$VENV/bin/ruff" check . || fail "ruff found problems"

db_state=$(scripts/timescaledb.sh start) || exit 1
cleanup() { [ "$db_state" = started ] && scripts/timescaledb.sh stop; }
trap cleanup EXIT

ensure_debs mosquitto
"$VENV/bin/python" -m pytest "$@"
status=$?
# pytest's 5 means no test ran: that is a failure here, never a pass.
[ $status -eq 5 ] && echo "no tests ran" >&2
exit $status
