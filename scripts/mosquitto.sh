#!/usr/bin/env bash
# Run semon's own Mosquitto on 127.0.0.1 with scripts/mosquitto.conf.in: start | stop | status.
# With SEMON_MQTT_URL set, that broker is used and nothing is started. Authentication is on: `semon monitors`
# writes the accounts into the broker's directory and reloads it (docs/monitors.md). With mqtt_url mqtts://, the
# listener speaks TLS with mosquitto_tls_cert_file and mosquitto_tls_key_file.
# `start` prints "started" when it started the broker, "running" when it already ran.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR=$(setting mosquitto_dir)
DIR=${DIR:-$SEMON_VAR/mosquitto}
PIDFILE="$DIR/mosquitto.pid"
MQTT_URL=$(setting mqtt_url)
TLS="#"; TLS_CERT=""; TLS_KEY=""; CLIENT_CA="#"; CLIENT_CA_FILE=""
if [[ $MQTT_URL == mqtts://* ]]; then
    PORT=$(url_port "$MQTT_URL" 8883)
    TLS=""; TLS_CERT=$(setting mosquitto_tls_cert_file); TLS_KEY=$(setting mosquitto_tls_key_file)
    CLIENT_CA_FILE=$(setting mosquitto_tls_client_ca_file)
    [ -n "$CLIENT_CA_FILE" ] && CLIENT_CA=""
else
    PORT=$(url_port "$MQTT_URL" 1883)
fi

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
    ensure_debs mosquitto
    if running; then echo running; return 0; fi
    port_in_use 127.0.0.1 "$PORT" && fail "starting Mosquitto: port $PORT on 127.0.0.1 is taken by another program"
    if [ -z "$TLS" ] && { [ ! -f "$TLS_CERT" ] || [ ! -f "$TLS_KEY" ]; }; then
        fail "mqtt_url is mqtts:// but mosquitto_tls_cert_file or mosquitto_tls_key_file is not a file (semon monitors tls-init DIR makes a pair to try)"
    fi
    mkdir -p "$DIR"
    # The accounts: empty until `semon monitors` (or `semon demo`) writes them; a restart keeps what was written.
    for file in passwords acl; do [ -f "$DIR/$file" ] || install -m 600 /dev/null "$DIR/$file"; done
    sed -e "s|@PORT@|$PORT|" -e "s|@DIR@|$DIR|g" -e "s|@USER@|$(id -un)|" -e "s|@ANONYMOUS@|false|" \
        -e "s|@TLS@|$TLS|" -e "s|@TLS_CERT@|$TLS_CERT|" -e "s|@TLS_KEY@|$TLS_KEY|" \
        -e "s|@CLIENT_CA@|$CLIENT_CA|" -e "s|@CLIENT_CA_FILE@|$CLIENT_CA_FILE|" \
        "$SEMON_ROOT_DIR/scripts/mosquitto.conf.in" >"$DIR/mosquitto.conf"
    step "starting Mosquitto on 127.0.0.1:$PORT"
    # setsid: a Ctrl-C meant for the demo must not reach the broker before the demo has flushed.
    setsid mosquitto -c "$DIR/mosquitto.conf" >>"$DIR/stdout.log" 2>&1 &
    echo $! >"$PIDFILE"
    wait_for_port 127.0.0.1 "$PORT" 15 || { tail -n 5 "$DIR/mosquitto.log" >&2 || true; fail "Mosquitto did not start (log: $DIR/mosquitto.log)"; }
    echo started
}

stop() {
    running || return 0
    step "stopping Mosquitto"
    local pid; pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
}

if [ -n "${SEMON_MQTT_URL:-}" ]; then
    step "using the broker at SEMON_MQTT_URL; nothing to start"
    [ "${1:-}" = start ] && echo running
    exit 0
fi
case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && echo running || { echo stopped; exit 3; } ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
