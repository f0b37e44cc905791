#!/usr/bin/env bash
# Stops the local test services started by up.sh. Safe to run when they are
# already stopped. With --wipe, also deletes their data (topics, JetStream
# streams, Redis dump) but keeps the cached Kafka jars.
# usage: deploy/local/down.sh [--wipe]
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
state="${AFTERGLOW_LOCAL_DIR:-$HOME/.cache/afterglow-local}"
wipe=0
case "${1:-}" in
  "") ;;
  --wipe) wipe=1 ;;
  *) echo "usage: $0 [--wipe]" >&2; exit 2 ;;
esac
rc=0
"$here/clickhouse.sh" stop || rc=1
"$here/s3.sh" stop || rc=1
"$here/kafka.sh" stop || rc=1
"$here/nats.sh" stop || rc=1
"$here/redis.sh" stop || rc=1
if ((wipe)); then
  if ((rc)); then
    echo "[down] not wiping: a service failed to stop" >&2
  else
    echo "[down] wiping data under $state (keeping cached jars)"
    rm -rf -- "$state/kafka/data" "$state/kafka/cluster.id" "$state/kafka/logs" \
      "$state/nats/jetstream" "$state/redis/data" "$state/clickhouse/data"
  fi
fi
exit "$rc"
