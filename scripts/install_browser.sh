#!/usr/bin/env bash
# Install what the MLflow UI browser test needs: Debian's chromium (system package) and the
# Playwright Python driver (no browser download: the test points Playwright at /usr/bin/chromium).
# Idempotent: does nothing when both are present. Used by `make test` (CI).
#   scripts/install_browser.sh [PYTHON]   (PYTHON defaults to .venv/bin/python)
set -euo pipefail
PY="${1:-.venv/bin/python}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: $CHROMIUM missing and apt-get not available; install Chromium and set CHROMIUM=/path" >&2
        exit 2
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "error: $CHROMIUM missing and not root (no sudo): run 'apt-get install -y chromium' as root" >&2
            exit 2
        fi
    fi
    echo "installing Debian chromium ..."
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version

if [ -x "$PY" ] && ! "$PY" -c "import playwright" >/dev/null 2>&1; then
    echo "installing the playwright Python package (driver only; never 'playwright install') ..."
    "$PY" -m pip install -q "playwright>=1.45"
fi
