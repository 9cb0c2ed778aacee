#!/usr/bin/env bash
# Create .venv with Python 3.11+ and install semon with its dev tools (idempotent).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            PYTHON=$candidate; break
        fi
    done
fi
[ -n "$PYTHON" ] || fail "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"

stamp="$VENV/.semon-installed"
if [ -f "$stamp" ] && [ "$stamp" -nt "$SEMON_ROOT_DIR/pyproject.toml" ]; then exit 0; fi
if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV" || fail "python -m venv failed (on Debian: apt-get install python3-venv)"
fi
step "installing semon and its dependencies into $VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -e "$SEMON_ROOT_DIR[dev]" 2>&1 | grep -v "is ignored: it is neither" >&2 || true
"$VENV/bin/python" -c "import semon, paho.mqtt, psycopg, flask, flask_login, flask_wtf, apscheduler, sklearn, skops" \
    || fail "installing the Python packages failed (see the pip output above)"
touch "$stamp"
