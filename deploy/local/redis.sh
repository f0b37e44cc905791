#!/usr/bin/env bash
# Local Redis (Debian's redis-server) on 127.0.0.1:${REDIS_PORT:-6379}.
# usage: deploy/local/redis.sh start|stop|restart|status|logs
set -euo pipefail
AG_NAME=redis
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
DIR="$AFTERGLOW_LOCAL_DIR/redis"
PIDFILE="$DIR/redis.pid"
LOGFILE="$DIR/redis.log"

redis_ping() {
  [[ "$(timeout 3 redis-cli -h "$AG_BIND" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

# other_port PID: when our running redis listens on another port than
# requested now, prints its address (redis shows it in its process title).
other_port() {
  local title
  title=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)
  [[ $title != *" $AG_BIND:$REDIS_PORT "* ]] && awk '{ print $2 }' <<<"$title"
}

cmd_status() {
  local pid other
  if pid=$(pid_from_file "$PIDFILE" redis-server "$DIR/data"); then
    if other=$(other_port "$pid"); then
      log "running (pid $pid) but on $other, not on port $REDIS_PORT"
      return 2
    fi
    if redis_ping; then
      log "running (pid $pid) on $AG_BIND:$REDIS_PORT, healthy"
      return 0
    fi
    log "running (pid $pid) but not answering PING on $AG_BIND:$REDIS_PORT"
    return 2
  fi
  if command -v redis-cli >/dev/null && redis_ping; then
    log "not managed by us, but a Redis answers on $AG_BIND:$REDIS_PORT"
    return 0
  fi
  log "not running"
  return 1
}

cmd_start() {
  ensure_apt redis-server redis-server
  command -v redis-cli >/dev/null || ensure_apt redis-cli redis-tools
  take_lock redis
  local pid bin other
  if pid=$(pid_from_file "$PIDFILE" redis-server "$DIR/data"); then
    if other=$(other_port "$pid"); then
      die "already running (pid $pid) on $other; to change ports run: $0 stop, then start again"
    fi
    if redis_ping || wait_for "$REDIS_START_TIMEOUT" "redis (pid $pid)" redis_ping; then
      log "already running (pid $pid) on $AG_BIND:$REDIS_PORT"
      return 0
    fi
    tail_logs "$LOGFILE"
    die "pid $pid is alive but does not answer PING; run: $0 restart"
  fi
  if port_open "$REDIS_PORT"; then
    if redis_ping; then
      log "a Redis not started by this script already answers on $AG_BIND:$REDIS_PORT; leaving it alone"
      return 0
    fi
    die "port $AG_BIND:$REDIS_PORT is taken by something that is not Redis (set REDIS_PORT)"
  fi
  mkdir -p "$DIR/data"
  bin=$(find_bin redis-server)
  log "starting $("$bin" --version | awk '{print $3}') on $AG_BIND:$REDIS_PORT (dir $DIR)"
  # No config file: compiled-in defaults (RDB snapshots, no AOF), daemonized by
  # redis itself, which writes the pid file.
  "$bin" --bind "$AG_BIND" --port "$REDIS_PORT" --protected-mode yes \
    --daemonize yes --pidfile "$PIDFILE" --dir "$DIR/data" \
    --logfile "$LOGFILE" --loglevel notice 9>&- </dev/null ||
    { tail_logs "$LOGFILE"; die "redis-server failed to start"; }
  if ! wait_for "$REDIS_START_TIMEOUT" redis redis_ping; then
    tail_logs "$LOGFILE"
    die "redis did not answer PING on $AG_BIND:$REDIS_PORT within ${REDIS_START_TIMEOUT}s (log: $LOGFILE)"
  fi
}

cmd_stop() {
  take_lock redis
  stop_pidfile "$PIDFILE" redis-server "$DIR/data" 20
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) tail -n "${LINES:-100}" -- "$LOGFILE" ;;
  *) usage_svc ;;
esac
