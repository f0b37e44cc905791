#!/usr/bin/env bash
# Local S3-compatible server for the S3 blob adapter's tests: moto's server (PyPI `moto[server]`,
# pinned below, installed once into a venv under the state dir) on 127.0.0.1:${S3_PORT:-9000},
# with the bucket ${S3_TEST_BUCKET:-afterglow-test}. In memory: a restart starts empty (this script
# creates the bucket again). A stand-in for S3 in tests, NOT what production runs.
# usage: deploy/local/s3.sh start|stop|restart|status|logs
set -euo pipefail
AG_NAME=s3
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

S3_PORT="${S3_PORT:-9000}"
S3_TEST_BUCKET="${S3_TEST_BUCKET:-afterglow-test}"
S3_START_TIMEOUT="${S3_START_TIMEOUT:-60}"
MOTO_VERSION=5.2.5
DIR="$AFTERGLOW_LOCAL_DIR/s3"
VENV="$DIR/venv-moto-$MOTO_VERSION"
PIDFILE="$DIR/moto.pid"
LOGFILE="$DIR/moto.log"
PID_PATTERN="$VENV/bin/moto_server"

# moto answers ListBuckets without checking signatures; the bucket must exist too.
s3_ready() {
  curl -fsS --max-time 3 "http://$AG_BIND:$S3_PORT/$S3_TEST_BUCKET" -o /dev/null 2>/dev/null
}
s3_answers() {
  curl -fsS --max-time 3 "http://$AG_BIND:$S3_PORT/" -o /dev/null 2>/dev/null
}
make_bucket() {
  s3_ready || curl -fsS --max-time 5 -X PUT "http://$AG_BIND:$S3_PORT/$S3_TEST_BUCKET" -o /dev/null
}

ensure_moto() {
  [[ -f $VENV/.complete ]] && return 0
  command -v python3 >/dev/null || ensure_apt python3 python3
  log "installing moto[server]==$MOTO_VERSION into $VENV (once)"
  rm -rf -- "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf -- "$VENV"
    ensure_apt python3 python3-venv # Debian splits venv/ensurepip out of python3
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" || { rm -rf -- "$VENV"; die "pip install moto[server]==$MOTO_VERSION failed"; }
  touch "$VENV/.complete"
}

cmd_status() {
  local pid
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if s3_ready; then
      log "running (pid $pid) on $AG_BIND:$S3_PORT with bucket $S3_TEST_BUCKET, healthy"
      return 0
    fi
    log "running (pid $pid) but bucket $S3_TEST_BUCKET does not answer on $AG_BIND:$S3_PORT"
    return 2
  fi
  if s3_ready; then
    log "not managed by us, but an S3 with bucket $S3_TEST_BUCKET answers on $AG_BIND:$S3_PORT"
    return 0
  fi
  log "not running"
  return 1
}

cmd_start() {
  command -v curl >/dev/null || ensure_apt curl curl
  take_lock s3
  local pid
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if s3_answers || AG_WAIT_PID=$pid wait_for "$S3_START_TIMEOUT" "s3 (pid $pid)" s3_answers; then
      make_bucket
      log "already running (pid $pid) on $AG_BIND:$S3_PORT"
      return 0
    fi
    tail_logs "$LOGFILE"
    die "pid $pid is alive but does not answer; run: $0 restart"
  fi
  if port_open "$S3_PORT"; then
    if s3_answers && make_bucket; then
      log "an S3 not started by this script already answers on $AG_BIND:$S3_PORT; leaving it alone"
      return 0
    fi
    die "port $AG_BIND:$S3_PORT is taken by something that is not S3 (set S3_PORT)"
  fi
  mkdir -p "$DIR"
  ensure_moto
  log "starting moto's S3 server $MOTO_VERSION on $AG_BIND:$S3_PORT"
  rm -f -- "$PIDFILE"
  # shellcheck disable=SC2016
  (exec setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$VENV/bin/moto_server" -H "$AG_BIND" -p "$S3_PORT" >>"$LOGFILE" 2>&1 </dev/null 9>&-) &
  local i
  for ((i = 0; i < 40; i++)); do
    pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN") && break
    sleep 0.25
  done
  [[ -n ${pid:-} ]] || { tail_logs "$LOGFILE"; die "moto_server did not start (see $LOGFILE)"; }
  if ! AG_WAIT_PID=$pid wait_for "$S3_START_TIMEOUT" s3 s3_answers; then
    tail_logs "$LOGFILE"
    die "moto did not answer on $AG_BIND:$S3_PORT within ${S3_START_TIMEOUT}s (log: $LOGFILE)"
  fi
  make_bucket || die "could not create bucket $S3_TEST_BUCKET"
}

cmd_stop() {
  take_lock s3
  stop_pidfile "$PIDFILE" "$PID_PATTERN" "" 20
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) tail -n "${LINES:-100}" -- "$LOGFILE" ;;
  *) usage_svc ;;
esac
