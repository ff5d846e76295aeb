#!/usr/bin/env bash
# Runs LocalStack on the host, without Docker, from its Python package.
#
#   infra/localstack.sh install   create the venv (pinned versions) if it is missing
#   infra/localstack.sh start     install if needed, start in the background, wait until healthy
#   infra/localstack.sh ensure    like start, but reuse a LocalStack that is already healthy
#   infra/localstack.sh stop      stop the LocalStack this script started
#   infra/localstack.sh status    exit 0 when the endpoint is healthy
#
# Why the pins: localstack-core 4.9.2 is the newest release that runs on Python 3.11, and
# it needs cbor2<6, pyOpenSSL<25 and cryptography<45 plus service_identity; the full
# known-good set is infra/localstack/constraints.txt. The `localstack` CLI package wants
# Docker, so the runtime module is started directly.
#
# Settings (environment): LOCALSTACK_PORT (4566), BRIDGE_TOOLS_DIR (<repo>/.tools),
# LOCALSTACK_SERVICES (sqs,cloudformation,sts,s3,iam,cloudwatch), PYTHON (python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${BRIDGE_TOOLS_DIR:-$repo/.tools}"
venv="$tools/localstack-venv"
state="$tools/localstack-state"
port="${LOCALSTACK_PORT:-4566}"
endpoint="http://127.0.0.1:$port"
services="${LOCALSTACK_SERVICES:-sqs,cloudformation,sts,s3,iam,cloudwatch}"
python="${PYTHON:-python3}"
mkdir -p "$tools" "$state"

log() { printf '[localstack] %s\n' "$*" >&2; }

healthy() {
  local body
  body="$(curl -fsS --max-time 2 "$endpoint/_localstack/health" 2>/dev/null)" || return 1
  # The health document lists each service; "sqs": "running" (or "available") means usable.
  grep -Eq '"sqs": *"(running|available)"' <<<"$body"
}

# Done when the stamp, written last, is there: an interrupted install is redone.
installed() {
  [ -f "$venv/.installed" ] && [ -x "$venv/bin/aws" ] && [ -x "$venv/bin/python" ]
}

install() {
  installed && return 0
  # Parallel callers (test processes) install once: the others wait, then find it done.
  exec 8>"$tools/install.lock"
  flock -w 900 8 || { log "another install still holds $tools/install.lock"; exit 1; }
  if installed; then
    exec 8>&-
    return 0
  fi
  log "installing localstack-core 4.9.2 into $venv (about a minute)"
  # An existing venv (an interrupted install, or an older one without the stamp) is
  # completed in place: a LocalStack may be running from it.
  if [ ! -x "$venv/bin/python" ] && ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian splits venv support out of python3.
    if command -v apt-get >/dev/null; then
      log "python3 -m venv failed; installing python3-venv with apt-get"
      local as_root=()
      [ "$(id -u)" = 0 ] || as_root=(sudo)
      "${as_root[@]}" apt-get update -qq
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$venv"
      "$python" -m venv "$venv"
    else
      log "python3 -m venv failed and apt-get is not available: install python3-venv"
      exit 1
    fi
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$venv/bin/pip" install -q --disable-pip-version-check \
    -c "$repo/infra/localstack/constraints.txt" \
    'localstack-core[runtime]==4.9.2' service_identity awscli
  touch "$venv/.installed"
  exec 8>&-
}

start() {
  # Installed even when a LocalStack is already running (from another checkout, or not
  # by this project): the deploy script and the infra check use the venv's aws CLI.
  install
  if healthy; then
    log "already running at $endpoint"
    return 0
  fi
  # A second caller (a parallel test process) waits for the first one's start.
  exec 9>"$state/start.lock"
  flock -w 120 9 || { log "another start still holds $state/start.lock after 120 s"; exit 1; }
  if healthy; then
    log "started by another process at $endpoint"
    return 0
  fi
  log "starting on $endpoint (services: $services); log: $state/localstack.log"
  (
    cd "$state"
    export GATEWAY_LISTEN="127.0.0.1:$port" SERVICES="$services" \
      LOCALSTACK_HOST="127.0.0.1:$port" SQS_ENDPOINT_STRATEGY=off EAGER_SERVICE_LOADING=1 \
      DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 FILESYSTEM_ROOT="$state/fs"
    # `9>&-`: LocalStack must not inherit the start lock, or it would hold it for as long
    # as it runs and a second caller would wait on `flock` for ever.
    setsid "$venv/bin/python" -m localstack.runtime.main >"$state/localstack.log" 2>&1 9>&- &
    echo $! >"$state/pid"
  )
  local deadline=$((SECONDS + 90))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if healthy; then
      log "healthy"
      return 0
    fi
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "LocalStack exited; last lines of its log:"
      tail -n 30 "$state/localstack.log" >&2
      rm -f "$state/pid"
      exit 1
    fi
    sleep 0.5
  done
  log "not healthy after 90 s; stopping it. Last lines of its log:"
  tail -n 30 "$state/localstack.log" >&2
  stop
  exit 1
}

stop() {
  [ -f "$state/pid" ] || { log "not started by this script"; return 0; }
  local pid
  pid="$(cat "$state/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "stopped"
  fi
  rm -f "$state/pid"
}

case "${1:-}" in
  install) install ;;
  start | ensure) start ;;
  stop) stop ;;
  status) healthy ;;
  endpoint) echo "$endpoint" ;;
  *) echo "usage: $0 install|start|ensure|stop|status|endpoint" >&2; exit 2 ;;
esac
