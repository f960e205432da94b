#!/usr/bin/env bash
# Make sure the Debian packages we need are installed: python3-venv, and for the tests redis-server,
# prometheus (which brings promtool), nodejs and npm (the pinned npm packages in tests/npm),
# chromium (a real browser's EventSource) and faketime (libfaketime: the torture tests step one
# replica's wall clock). As root they are installed with apt-get; otherwise we say
# what to run.
set -euo pipefail

# `system-deps.sh venv`: only what creating the virtualenv needs (make run); `bench`: that plus
# redis-server and the wrk load generator (make bench); no argument: the virtualenv and the
# servers the test suite starts (make test).
missing=()
case "${1:-}" in
venv) ;;
bench)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v wrk >/dev/null || missing+=(wrk)
    ;;
*)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v faketime >/dev/null || missing+=(faketime)
    ;;
esac
"${PYTHON:-python3}" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start their own services; the tests start their own servers on free ports.
for service in redis-server prometheus prometheus-node-exporter; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service" || true
    fi
done
