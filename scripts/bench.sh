#!/usr/bin/env bash
# Run the ingest benchmarks (bench/ingest.py, then bench/flood.py) against a real TimescaleDB (started here
# if needed) and a private Mosquitto (each benchmark starts its own). Stops the database only if it started it.
# Arguments and BENCH_* / SEMON_* variables are passed through (see bench/ingest.py).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SEMON_ROOT_DIR"
db_state=$(scripts/timescaledb.sh start) || exit 1
cleanup() { [ "$db_state" = started ] && scripts/timescaledb.sh stop; }
trap cleanup EXIT
ensure_debs mosquitto
"$VENV/bin/python" bench/ingest.py "$@" || exit 1
"$VENV/bin/python" bench/flood.py
