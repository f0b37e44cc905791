#!/usr/bin/env bash
# Local ClickHouse for tests and local runs on ONE machine: the ClickHouse engine (chDB, from
# node_modules) behind a ClickHouse HTTP interface on 127.0.0.1:${CLICKHOUSE_PORT:-8123}
# (deploy/local/chdb-http.ts), so several processes (split roles, the fault tests) share one store.
# A stand-in for a ClickHouse server, NOT what production runs: deploy/ uses a real server.
# usage: deploy/local/clickhouse.sh start|stop|restart|status|logs
set -euo pipefail
AG_NAME=clickhouse
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-8123}"
CLICKHOUSE_START_TIMEOUT="${CLICKHOUSE_START_TIMEOUT:-60}"
DIR="$AFTERGLOW_LOCAL_DIR/clickhouse"
PIDFILE="$DIR/chdb-http.pid"
LOGFILE="$DIR/chdb-http.log"
REPO="$(cd -- "$AG_LOCAL_SCRIPTS/../.." && pwd)"
PID_PATTERN="chdb-http.ts --path $DIR/data"

clickhouse_ping() {
  [[ "$(curl -fsS --max-time 3 "http://$AG_BIND:$CLICKHOUSE_PORT/?query=SELECT%201" 2>/dev/null)" == 1 ]]
}

other_port() {
  local title
  title=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)
  [[ $title != *"--port $CLICKHOUSE_PORT "* ]] && sed -n 's/.*--port \([0-9]*\).*/\1/p' <<<"$title"
}

cmd_status() {
  local pid other
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if other=$(other_port "$pid"); then
      log "running (pid $pid) but on port $other, not $CLICKHOUSE_PORT"
      return 2
    fi
    if clickhouse_ping; then
      log "running (pid $pid) on $AG_BIND:$CLICKHOUSE_PORT (chDB stand-in), healthy"
      return 0
    fi
    log "running (pid $pid) but not answering SELECT 1 on $AG_BIND:$CLICKHOUSE_PORT"
    return 2
  fi
  if clickhouse_ping; then
    log "not managed by us, but a ClickHouse answers on $AG_BIND:$CLICKHOUSE_PORT"
    return 0
  fi
  log "not running"
  return 1
}

cmd_start() {
  command -v curl >/dev/null || ensure_apt curl curl
  take_lock clickhouse
  local pid other
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if other=$(other_port "$pid"); then
      die "already running (pid $pid) on port $other; to change ports run: $0 stop, then start again"
    fi
    if clickhouse_ping || AG_WAIT_PID=$pid wait_for "$CLICKHOUSE_START_TIMEOUT" "clickhouse (pid $pid)" clickhouse_ping; then
      log "already running (pid $pid) on $AG_BIND:$CLICKHOUSE_PORT"
      return 0
    fi
    tail_logs "$LOGFILE"
    die "pid $pid is alive but does not answer; run: $0 restart"
  fi
  if port_open "$CLICKHOUSE_PORT"; then
    if clickhouse_ping; then
      log "a ClickHouse not started by this script already answers on $AG_BIND:$CLICKHOUSE_PORT; leaving it alone"
      return 0
    fi
    die "port $AG_BIND:$CLICKHOUSE_PORT is taken by something that is not ClickHouse (set CLICKHOUSE_PORT)"
  fi
  [[ -f $REPO/node_modules/tsx/package.json && -d $REPO/node_modules/chdb ]] ||
    die "node_modules missing under $REPO (run npm ci first): the stand-in runs chDB with tsx"
  mkdir -p "$DIR/data"
  # The project's own Node (the `node` dev dependency), not whatever the system has.
  local node=node
  [[ -x $REPO/node_modules/.bin/node ]] && node=$REPO/node_modules/.bin/node
  log "starting the ClickHouse HTTP stand-in (chDB $("$node" -p "require('$REPO/node_modules/chdb/package.json').version")) on $AG_BIND:$CLICKHOUSE_PORT (dir $DIR)"
  rm -f -- "$PIDFILE"
  # `exec`: no subshell stays behind holding the lock fd (9) for the daemon's lifetime, which made
  # every later start/stop wait 300 s for the lock and fail.
  # shellcheck disable=SC2016
  (cd "$REPO" && exec setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$node" --import tsx deploy/local/chdb-http.ts --path "$DIR/data" --port "$CLICKHOUSE_PORT" --host "$AG_BIND" \
    >>"$LOGFILE" 2>&1 </dev/null 9>&-) &
  local i
  for ((i = 0; i < 40; i++)); do
    pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN") && break
    sleep 0.25
  done
  [[ -n ${pid:-} ]] || { tail_logs "$LOGFILE"; die "chdb-http did not start (see $LOGFILE)"; }
  if ! AG_WAIT_PID=$pid wait_for "$CLICKHOUSE_START_TIMEOUT" clickhouse clickhouse_ping; then
    tail_logs "$LOGFILE"
    die "clickhouse stand-in did not answer on $AG_BIND:$CLICKHOUSE_PORT within ${CLICKHOUSE_START_TIMEOUT}s (log: $LOGFILE)"
  fi
}

cmd_stop() {
  take_lock clickhouse
  stop_pidfile "$PIDFILE" "$PID_PATTERN" "" 30
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) tail -n "${LINES:-100}" -- "$LOGFILE" ;;
  *) usage_svc ;;
esac
