#!/usr/bin/env bash
# Local single-node Apache Kafka (4.x by default, 3.9.x via KAFKA_VERSION) in KRaft mode (combined broker+controller),
# jars resolved from Maven Central, run with the machine's java.
#   broker:     PLAINTEXT://127.0.0.1:${KAFKA_PORT:-9092}
#   controller: 127.0.0.1:${KAFKA_CONTROLLER_PORT:-9093}
# usage: deploy/local/kafka.sh start|stop|restart|status|logs
#        deploy/local/kafka.sh topics ARGS...   # TopicCommand, --bootstrap-server added
#        deploy/local/kafka.sh groups ARGS...   # ConsumerGroupCommand, --bootstrap-server added
#        deploy/local/kafka.sh tool CLASS ARGS... # any main class on the Kafka classpath
set -euo pipefail
AG_NAME=kafka
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# Current stable 4.x from Maven Central; a 3.9.x version still works (the last 3.x line, which
# clusters not yet upgraded run).
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"
# Start from empty storage when more partitions than this piled up (see prune_stale_storage).
KAFKA_MAX_PARTITIONS="${KAFKA_MAX_PARTITIONS:-2000}"
# Extra server.properties lines (newline separated); they override the defaults below.
KAFKA_EXTRA_PROPERTIES="${KAFKA_EXTRA_PROPERTIES:-}"

POM="$AG_LOCAL_SCRIPTS/kafka/pom.xml"
DIR="$AFTERGLOW_LOCAL_DIR/kafka"
DATA="$DIR/data"
LOGDIR="$DIR/logs"
CONFDIR="$DIR/config"
CONF="$CONFDIR/server.properties"
PIDFILE="$DIR/kafka.pid"
OUTFILE="$LOGDIR/kafka.out" # JVM stdout/stderr; log4j writes $LOGDIR/server.log
PID_PATTERN="kafka.Kafka $CONF" # main class + our server.properties

# 4.x logs through log4j 2, 3.9 through reload4j (log4j 1.x): pom profile and config differ.
case "$KAFKA_VERSION" in
  4.*)
    MVN_PROFILE=kafka4
    log_config() { printf -- '-Dlog4j2.configurationFile=%s\n' "$AG_LOCAL_SCRIPTS/kafka/$1log4j2.properties"; }
    ;;
  3.9.*)
    MVN_PROFILE=kafka3
    log_config() { printf -- '-Dlog4j.configuration=file:%s\n' "$AG_LOCAL_SCRIPTS/kafka/$1log4j.properties"; }
    ;;
  *) die "KAFKA_VERSION=$KAFKA_VERSION is not supported: use 4.x or 3.9.x" ;;
esac

java_bin() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java
  fi
}

# ensure_libs [prune]: resolves the Kafka jars once into the state dir, keyed
# by version and pom contents, and sets LIBS. Later runs do not call mvn at
# all. With "prune" (only when no broker runs), other jar sets are deleted.
ensure_libs() {
  local key t0
  key="$KAFKA_VERSION-$(sha256sum "$POM" | cut -c1-12)"
  LIBS="$DIR/libs/$key"
  if [[ ${1:-} == prune && -d $DIR/libs ]]; then
    find "$DIR/libs" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf -- {} +
  fi
  [[ -f $LIBS/.complete ]] && return 0
  command -v mvn >/dev/null || ensure_apt mvn maven
  log "resolving kafka_2.13:$KAFKA_VERSION jars from Maven Central (first run only)"
  t0=$(now_ms)
  # Run mvn on a copy of the pom so nothing (target/) is written into the repo.
  rm -rf -- "$DIR/resolve" "$LIBS.tmp"
  mkdir -p "$DIR/resolve" "$DIR/libs"
  cp -- "$POM" "$DIR/resolve/pom.xml"
  # Output goes to a file: Debian's mvn prints ANSI resets even with -B -q.
  if ! (cd "$DIR/resolve" && mvn -B -q -Dkafka.version="$KAFKA_VERSION" -P"$MVN_PROFILE" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" \
    >mvn.log 2>&1 </dev/null 9>&-); then
    sed 's/\x1b\[[0-9;]*m//g' "$DIR/resolve/mvn.log" | tail -n 40 >&2
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable? log: $DIR/resolve/mvn.log)"
  fi
  [[ -f "$LIBS.tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] ||
    die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn copy-dependencies"
  touch "$LIBS.tmp/.complete"
  mv -- "$LIBS.tmp" "$LIBS"
  rm -rf -- "$DIR/resolve"
  log "resolved $(find "$LIBS" -name '*.jar' | wc -l) jars in $((($(now_ms) - t0) / 1000))s -> $LIBS"
}

# kafka_ready: a real Kafka protocol round trip in pure bash (no JVM): sends a
# Metadata v4 request (the oldest version Kafka 4.x still answers) and succeeds
# when the response carries our correlation id and lists at least one broker.
# A KRaft broker lists itself only once it has caught up with the controller
# and been unfenced, i.e. is usable.
kafka_ready() {
  local -a b
  # size=30 | api_key=3 (Metadata) | api_version=4 | correlation_id=0x41470001 |
  # client_id="afterglow-probe" (15 bytes) | topics=null (all) | allow_auto_topic_creation=0
  # Response: size | correlation_id | throttle_time_ms | brokers count.
  # shellcheck disable=SC2016
  read -r -a b < <(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "\x00\x00\x00\x1e\x00\x03\x00\x04\x41\x47\x00\x01\x00\x0fafterglow-probe\xff\xff\xff\xff\x00" >&3
    od -An -v -tu1 -N16 <&3
  ' "$AG_BIND" "$KAFKA_PORT" 2>/dev/null) || return 1
  ((${#b[@]} == 16)) || return 1
  [[ "${b[4]} ${b[5]} ${b[6]} ${b[7]}" == "65 71 0 1" ]] || return 1
  (((b[12] << 24) + (b[13] << 16) + (b[14] << 8) + b[15] >= 1))
}

write_config() {
  mkdir -p "$CONFDIR" "$DATA" "$LOGDIR"
  cat >"$CONF.tmp" <<EOF
# Generated by deploy/local/kafka.sh on every start; edits are overwritten.
# Use KAFKA_EXTRA_PROPERTIES to add or override settings.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$AG_BIND:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$AG_BIND:$KAFKA_PORT,CONTROLLER://$AG_BIND:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$AG_BIND:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0

# Small machine: fewer threads than Kafka's defaults.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.retention.check.interval.ms=300000
EOF
  if [[ -n $KAFKA_EXTRA_PROPERTIES ]]; then
    printf '\n# KAFKA_EXTRA_PROPERTIES\n%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$CONF.tmp"
  fi
  mv -f -- "$CONF.tmp" "$CONF"
}

# random_cluster_id: 16 random bytes, base64url without padding (what
# `kafka-storage.sh random-uuid` prints), not starting with '-'.
random_cluster_id() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [[ $id != -* ]] && { printf '%s\n' "$id"; return 0; }
  done
}

# prune_stale_storage: this broker is scratch space for development and tests,
# and the tests create uniquely named topics on every run. After a dozen runs
# ten thousand partitions had piled up (6 GB) and the broker needed over the
# 120 s start timeout just to load them, so CI failed at service start-up.
# Past KAFKA_MAX_PARTITIONS partition directories, start from empty storage.
prune_stale_storage() {
  [[ -d $DATA ]] || return 0
  local n major=${KAFKA_VERSION%%.*}
  # Storage written by another major version is not read back (4.x cannot go back to 3.9, and
  # 3.9 storage lacks what 4.x expects of an upgraded cluster): scratch space, start afresh.
  if [[ -f $DATA/meta.properties && "$(cat "$DIR/major" 2>/dev/null)" != "$major" ]]; then
    log "storage in $DATA is not from a Kafka $major.x broker: starting from empty storage"
    rm -rf -- "$DATA"
    mkdir -p "$DATA"
  fi
  printf '%s\n' "$major" >"$DIR/major"
  n=$(find "$DATA" -mindepth 1 -maxdepth 1 -type d | wc -l)
  ((n > KAFKA_MAX_PARTITIONS)) || return 0
  log "$n partition directories from earlier runs in $DATA (over KAFKA_MAX_PARTITIONS=$KAFKA_MAX_PARTITIONS): starting from empty storage"
  rm -rf -- "$DATA"
  mkdir -p "$DATA"
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  local cid java
  java=$(java_bin)
  if [[ -s $DIR/cluster.id ]]; then cid=$(<"$DIR/cluster.id"); else
    cid=$(random_cluster_id)
    printf '%s\n' "$cid" >"$DIR/cluster.id"
  fi
  log "formatting KRaft storage (cluster id $cid) in $DATA"
  "$java" -Xmx256m -XX:TieredStopAtLevel=1 \
    "$(log_config tools-)" \
    -cp "$LIBS/*" kafka.tools.StorageTool \
    format -t "$cid" -c "$CONF" --ignore-formatted 9>&- </dev/null |
    sed 's/^/[kafka]   /' || die "kafka-storage format failed"
}

# other_ports: when the running instance (whose config is $CONF, written at
# its start) listens on other ports than requested now, prints its listeners.
other_ports() {
  local running
  running=$(grep -m1 '^listeners=' "$CONF" 2>/dev/null || true)
  [[ $running != "listeners=PLAINTEXT://$AG_BIND:$KAFKA_PORT,CONTROLLER://$AG_BIND:$KAFKA_CONTROLLER_PORT" ]] &&
    printf '%s\n' "${running#listeners=}"
}

cmd_status() {
  local pid other
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if other=$(other_ports); then
      log "running (pid $pid) but on $other, not on port $KAFKA_PORT/$KAFKA_CONTROLLER_PORT"
      return 2
    fi
    if kafka_ready; then
      log "running (pid $pid) on $AG_BIND:$KAFKA_PORT, healthy"
      return 0
    fi
    log "running (pid $pid) but not serving metadata on $AG_BIND:$KAFKA_PORT (starting?)"
    return 2
  fi
  if kafka_ready; then
    log "not managed by us, but a Kafka broker answers on $AG_BIND:$KAFKA_PORT"
    return 0
  fi
  log "not running"
  return 1
}

cmd_start() {
  local pid java i other launcher
  take_lock kafka
  if pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN"); then
    if other=$(other_ports); then
      die "already running (pid $pid) on $other; to change ports run: $0 stop, then start again"
    fi
    if kafka_ready; then
      log "already running (pid $pid) on $AG_BIND:$KAFKA_PORT"
      return 0
    fi
    log "pid $pid is alive but not ready yet; waiting"
    if AG_WAIT_PID=$pid wait_for "$KAFKA_START_TIMEOUT" "kafka (pid $pid)" kafka_ready; then
      return 0
    fi
    tail_logs "$LOGDIR/server.log" "$OUTFILE"
    die "pid $pid is alive but Kafka is not ready; run: $0 restart"
  fi
  if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
    if kafka_ready; then
      log "a Kafka not started by this script already answers on $AG_BIND:$KAFKA_PORT; leaving it alone"
      return 0
    fi
    die "port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT on $AG_BIND is taken by something else (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
  fi

  java=$(java_bin) || { ensure_apt java openjdk-17-jre-headless && java=$(java_bin); }
  ensure_libs prune
  write_config
  prune_stale_storage
  format_storage

  log "starting Kafka $KAFKA_VERSION (KRaft, $("$java" -version 2>&1 | head -n1 | cut -d'"' -f2)) on $AG_BIND:$KAFKA_PORT, controller :$KAFKA_CONTROLLER_PORT (dir $DIR)"
  rm -f -- "$PIDFILE"
  printf '\n===== start %s =====\n' "$(date -Is)" >>"$OUTFILE"
  # The inner bash writes its own pid, then execs java under that same pid.
  # shellcheck disable=SC2016,SC2086
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    "$java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_OPTS \
    -Dkafka.logs.dir="$LOGDIR" \
    "$(log_config '')" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" \
    >>"$OUTFILE" 2>&1 </dev/null 9>&- &
  launcher=$!
  pid=
  for ((i = 0; i < 40; i++)); do
    pid=$(pid_from_file "$PIDFILE" "$PID_PATTERN") && break
    kill -0 "$launcher" 2>/dev/null || break # exited already (bad JVM options, ...)
    sleep 0.25
  done
  [[ -n $pid ]] || { tail_logs "$OUTFILE"; die "Kafka JVM did not start (see $OUTFILE)"; }
  if ! AG_WAIT_PID=$pid wait_for "$KAFKA_START_TIMEOUT" "kafka (pid $pid)" kafka_ready; then
    tail_logs "$LOGDIR/server.log" "$OUTFILE"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      die "Kafka did not become ready on $AG_BIND:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; stopped it (logs: $LOGDIR)"
    fi
    rm -f -- "$PIDFILE"
    die "Kafka exited during startup (logs: $LOGDIR)"
  fi
}

cmd_stop() {
  take_lock kafka
  stop_pidfile "$PIDFILE" "$PID_PATTERN" "" "$KAFKA_STOP_TIMEOUT"
}

# run_tool CLASS ARGS...: runs a Kafka CLI main class with the cached jars.
run_tool() {
  local java
  java=$(java_bin) || die "java not found"
  ensure_libs
  exec "$java" -Xmx512m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    "$(log_config tools-)" \
    -cp "$LIBS/*" "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  status) cmd_status ;;
  logs) tail -n "${LINES:-100}" -- "$LOGDIR/server.log" ;;
  topics) shift; run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$AG_BIND:$KAFKA_PORT" "$@" ;;
  groups) shift; run_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$AG_BIND:$KAFKA_PORT" "$@" ;;
  tool) shift; (($# > 0)) || die "usage: $0 tool CLASS [ARGS...]"; run_tool "$@" ;;
  *)
    echo "usage: $0 start|stop|restart|status|logs|topics ARGS|groups ARGS|tool CLASS ARGS" >&2
    exit 2
    ;;
esac
