import { uniqueName } from '@afterglow/testkit/services';
import { spineScenario } from './spine.js';

// Real Kafka (deploy/local) and, when CLICKHOUSE_URL is set (deploy/local/env.sh sets it), the store
// over the ClickHouse HTTP interface, as split roles use it; the embedded spine covers in-process
// chDB. CI sets both; locally the suite skips without KAFKA_BROKERS.
spineScenario('kafka', () => {
  const brokers = process.env.KAFKA_BROKERS;
  const clickhouse = process.env.CLICKHOUSE_URL;
  if (process.env.CI && (!brokers || !clickhouse))
    throw new Error('KAFKA_BROKERS / CLICKHOUSE_URL are not set: CI must start the local services (deploy/local/up.sh)');
  if (!brokers) return undefined;
  return {
    KAFKA_BROKERS: brokers,
    KAFKA_NAMESPACE: uniqueName('test'),
    ...(clickhouse ? { CLICKHOUSE_URL: clickhouse, CLICKHOUSE_DATABASE: uniqueName('test').replace(/-/g, '_') } : {}),
  };
});
