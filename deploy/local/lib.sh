# shellcheck shell=bash
# Shared helpers for deploy/local/*.sh. Sourced, never executed.
# Callers set AG_NAME (used as the log prefix) before sourcing, and run with
# `set -euo pipefail`.

# shellcheck disable=SC2034 # used by the scripts that source this file
AG_LOCAL_SCRIPTS="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
AFTERGLOW_LOCAL_DIR="${AFTERGLOW_LOCAL_DIR:-$HOME/.cache/afterglow-local}"
AG_BIND=127.0.0.1 # everything binds to loopback only

log() { printf '[%s] %s\n' "${AG_NAME:-local}" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "${AG_NAME:-local}" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "${AG_NAME:-local}" "$*" >&2
  exit 1
}

# now_ms: monotonic-enough wall clock in milliseconds (for progress lines).
now_ms() { date +%s%3N; }

# pid_from_file PIDFILE PATTERN [CWD]
# Prints the pid and returns 0 if PIDFILE names a live process whose command
# line contains PATTERN (and whose working directory is CWD, if given). The
# pattern/cwd must be specific to this state dir, so that another copy of the
# same server (someone else's redis, say) is never mistaken for ours. A stale
# pid file (dead pid, or pid reused by some other program) is removed.
pid_from_file() {
  local pidfile=$1 pattern=$2 cwd=${3:-} pid
  [[ -f $pidfile ]] || return 1
  pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" &&
    { [[ -z $cwd ]] || [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(readlink -f -- "$cwd")" ]]; }; then
    printf '%s\n' "$pid"
    return 0
  fi
  rm -f -- "$pidfile"
  return 1
}

# port_open PORT [HOST]: something accepts TCP connections there.
port_open() {
  # shellcheck disable=SC2016
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${2:-$AG_BIND}" "$1" 2>/dev/null
}

# wait_for TIMEOUT_S DESCRIPTION CMD...: polls CMD every 0.25s (0.5s after
# the first 5s) until it succeeds; returns 1 on timeout, or as soon as the
# process AG_WAIT_PID (if set) has exited.
wait_for() {
  local timeout_s=$1 what=$2
  shift 2
  local start end
  start=$(now_ms)
  end=$((start + timeout_s * 1000))
  while true; do
    if "$@" >/dev/null 2>&1; then
      log "$what ready ($(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.1fs", ms / 1000 }'))"
      return 0
    fi
    (($(now_ms) < end)) || return 1
    if [[ -n ${AG_WAIT_PID:-} ]] && ! kill -0 "$AG_WAIT_PID" 2>/dev/null; then
      printf '[%s] process %s exited during startup\n' "${AG_NAME:-local}" "$AG_WAIT_PID" >&2
      return 1
    fi
    if (($(now_ms) - start < 5000)); then sleep 0.25; else sleep 0.5; fi
  done
}

# stop_pidfile PIDFILE PATTERN CWD [TIMEOUT_S]: SIGTERM, wait, then SIGKILL.
stop_pidfile() {
  local pidfile=$1 pattern=$2 cwd=$3 timeout_s=${4:-30} pid i
  if ! pid=$(pid_from_file "$pidfile" "$pattern" "$cwd"); then
    log "not running"
    return 0
  fi
  log "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout_s * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    warn "pid $pid still alive after ${timeout_s}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f -- "$pidfile"
  log "stopped"
}

# take_lock NAME: serialises concurrent start/stop of the same service.
# The lock fd (9) must not leak into daemons: launch them with `9>&-`.
take_lock() {
  mkdir -p "$AFTERGLOW_LOCAL_DIR"
  exec 9>"$AFTERGLOW_LOCAL_DIR/.$1.lock"
  flock -w 300 9 || die "could not take lock $AFTERGLOW_LOCAL_DIR/.$1.lock within 300s"
}

# find_bin NAME: like `command -v`, but also looks in sbin dirs (Debian puts
# nats-server in /usr/sbin, which is not on a normal user's PATH).
find_bin() {
  local d
  command -v "$1" 2>/dev/null && return 0
  for d in /usr/local/sbin /usr/sbin /sbin; do
    [[ -x $d/$1 ]] && { printf '%s\n' "$d/$1"; return 0; }
  done
  return 1
}

# ensure_apt BIN PACKAGE: installs PACKAGE from apt when BIN is missing.
ensure_apt() {
  local bin=$1 pkg=$2 sudo=()
  find_bin "$bin" >/dev/null && return 0
  command -v apt-get >/dev/null || die "$bin not found and apt-get is unavailable; install $pkg yourself"
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "$bin not found; run as root or install $pkg (apt-get install -y $pkg)"
    sudo=(sudo)
  fi
  log "installing $pkg with apt-get"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >/dev/null; then
    log "apt-get install failed, running apt-get update and retrying"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >/dev/null
  fi
  find_bin "$bin" >/dev/null || die "$pkg installed but $bin still not found"
}

# tail_logs FILE...: prints the end of each existing file (for failures).
tail_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] || continue
    printf -- '----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 -- "$f" >&2
  done
}

usage_svc() {
  echo "usage: $0 start|stop|restart|status|logs" >&2
  exit 2
}
