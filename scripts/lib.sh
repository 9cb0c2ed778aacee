# Shared helpers for the provisioning scripts: sourced, not run.
# shellcheck shell=bash

SEMON_ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEMON_CACHE=${SEMON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/semon}
SEMON_VAR=${SEMON_VAR:-$SEMON_ROOT_DIR/var}
VENV=${VENV:-$SEMON_ROOT_DIR/.venv}

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

step() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'semon setup failed: %s\n' "$*" >&2; exit 1; }

# The value of one setting, as the application sees it (config.yaml overridden by SEMON_*).
setting() { "$VENV/bin/semon" config "$1"; }

# Host and port of a URL such as postgresql://u:p@127.0.0.1:55432/db or mqtt://127.0.0.1:11883.
url_host() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; printf '%s' "${rest%%:*}"; }
url_port() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; [[ $rest == *:* ]] && printf '%s' "${rest##*:}" || printf '%s' "$2"; }

apt_updated=""
# Install Debian packages that are missing; apt-get update runs at most once per script.
ensure_debs() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ -z "$apt_updated" ]; then
        step "updating the package lists (apt-get update)"
        $SUDO apt-get update -q >/dev/null || fail "apt-get update failed"
        apt_updated=1
    fi
    step "installing ${missing[*]} from the distribution's packages"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "apt-get install ${missing[*]} failed"
}

# Wait until something listens on host:port, or give up after $3 seconds.
wait_for_port() {
    local host=$1 port=$2 deadline=$((SECONDS + ${3:-30}))
    while [ $SECONDS -lt "$deadline" ]; do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

port_in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
