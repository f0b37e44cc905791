import { uniqueName } from '@afterglow/testkit/services';
import { videoScenario } from './video.js';

// Real Kafka and the store over the ClickHouse HTTP interface (deploy/local); CI sets both.
videoScenario('kafka', () => {
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
