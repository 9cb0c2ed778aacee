#!/usr/bin/env bash
# Start TimescaleDB and Mosquitto (unless already up or given by SEMON_*_URL) and run `semon demo`
# in the foreground. Ctrl-C stops the demo and whatever this script started.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SEMON_ROOT_DIR"

db_state=""; mqtt_state=""
cleanup() {
    trap - EXIT INT TERM
    [ "$mqtt_state" = started ] && scripts/mosquitto.sh stop
    [ "$db_state" = started ] && scripts/timescaledb.sh stop
}
trap cleanup EXIT
# Ctrl-C is how a demo ends: a clean stop, not an error.
trap 'exit 0' INT TERM

db_state=$(scripts/timescaledb.sh start) || exit 1
mqtt_state=$(scripts/mosquitto.sh start) || exit 1
"$VENV/bin/semon" demo
