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
# The S3 stand-in (s3.sh, moto; it checks no signature, any key works). BLOB_S3_BUCKET is NOT set
# here: it would switch every process started from this shell to S3 blobs; the S3 adapter's test
# reads the bucket from S3_TEST_BUCKET instead.
BLOB_S3_ENDPOINT="http://127.0.0.1:${S3_PORT:-9000}"
S3_TEST_BUCKET="${S3_TEST_BUCKET:-afterglow-test}"
BLOB_S3_ACCESS_KEY_ID=local
BLOB_S3_SECRET_ACCESS_KEY=local
export KAFKA_BROKERS REDIS_URL NATS_URL CLICKHOUSE_URL BLOB_S3_ENDPOINT S3_TEST_BUCKET BLOB_S3_ACCESS_KEY_ID BLOB_S3_SECRET_ACCESS_KEY

if ! (return 0 2>/dev/null); then
  # Executed, not sourced.
  set -euo pipefail
  printf 'export KAFKA_BROKERS=%s\nexport REDIS_URL=%s\nexport NATS_URL=%s\nexport CLICKHOUSE_URL=%s\n' \
    "$KAFKA_BROKERS" "$REDIS_URL" "$NATS_URL" "$CLICKHOUSE_URL"
  printf 'export BLOB_S3_ENDPOINT=%s\nexport S3_TEST_BUCKET=%s\nexport BLOB_S3_ACCESS_KEY_ID=%s\nexport BLOB_S3_SECRET_ACCESS_KEY=%s\n' \
    "$BLOB_S3_ENDPOINT" "$S3_TEST_BUCKET" "$BLOB_S3_ACCESS_KEY_ID" "$BLOB_S3_SECRET_ACCESS_KEY"
fi
