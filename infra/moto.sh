#!/usr/bin/env bash
# Installs moto's server (from PyPI, Apache-2.0): the open-source DynamoDB the event
# memory's tests run against. LocalStack's own DynamoDB runs Amazon's DynamoDB Local,
# whose licence the project can't use; SQS stays on LocalStack.
#
#   infra/moto.sh install   create the venv (pinned: infra/moto/constraints.txt) if missing
#   infra/moto.sh path      print the moto_server executable the tests start
#
# The tests start a server of their own per test (`moto_server -p PORT`), so nothing
# here runs in the background. Settings: BRIDGE_TOOLS_DIR (<repo>/.tools), PYTHON.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${BRIDGE_TOOLS_DIR:-$repo/.tools}"
venv="$tools/moto-venv"
python="${PYTHON:-python3}"
mkdir -p "$tools"

installed() { [ -f "$venv/.installed" ] && [ -x "$venv/bin/moto_server" ]; }

case "${1:-}" in
  install)
    installed && exit 0
    exec 8>"$tools/moto-install.lock"
    flock -w 900 8 || { echo "[moto] another install holds $tools/moto-install.lock" >&2; exit 1; }
    installed && exit 0
    echo "[moto] installing moto 5.2.5 (server mode) into $venv (about a minute)" >&2
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
    "$venv/bin/pip" install -q --disable-pip-version-check \
      -c "$repo/infra/moto/constraints.txt" 'moto[server,dynamodb]==5.2.5'
    touch "$venv/.installed"
    echo "[moto] installed" >&2
    ;;
  path)
    echo "$venv/bin/moto_server"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
