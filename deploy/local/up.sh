#!/usr/bin/env bash
# Starts the local test services (Redis, NATS+JetStream, Kafka KRaft, the chDB stand-in for a
# ClickHouse server, and moto's S3 server for the S3 blob adapter) on 127.0.0.1
# and waits until each is ready. Idempotent: services that are already running
# and healthy are left alone, so a second run is a quick no-op.
# usage: deploy/local/up.sh
set -euo pipefail
here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
t0=$(date +%s%3N)
"$here/redis.sh" start
"$here/nats.sh" start
"$here/kafka.sh" start
"$here/clickhouse.sh" start
"$here/s3.sh" start
awk -v ms=$(($(date +%s%3N) - t0)) 'BEGIN { printf "[up] all services ready (%.1fs)\n", ms / 1000 }'
"$here/env.sh" | sed 's/^export /[up]   /'
