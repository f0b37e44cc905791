#!/usr/bin/env bash
# Connection settings for the local services started by deploy/local/up.sh.
#   source deploy/local/env.sh        # exports the variables into your shell
#   deploy/local/env.sh               # prints `export ...` lines
#   eval "$(deploy/local/env.sh)"     # same as sourcing
# Honours the same port overrides as the start scripts.
# (No `set -euo pipefail` at top level: that would leak into the sourcing shell.)

KAFKA_BROKERS="127.0.0.1:${KAFKA_PORT:-9092}"
REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}"
NATS_URL="nats://127.0.0.1:${NATS_PORT:-4222}"
# The chDB stand-in for a ClickHouse server (clickhouse.sh); production points this at a real server.
CLICKHOUSE_URL="http://127.0.0.1:${CLICKHOUSE_PORT:-8123}"
export KAFKA_BROKERS REDIS_URL NATS_URL CLICKHOUSE_URL

if ! (return 0 2>/dev/null); then
  # Executed, not sourced.
  set -euo pipefail
  printf 'export KAFKA_BROKERS=%s\nexport REDIS_URL=%s\nexport NATS_URL=%s\nexport CLICKHOUSE_URL=%s\n' \
    "$KAFKA_BROKERS" "$REDIS_URL" "$NATS_URL" "$CLICKHOUSE_URL"
fi
