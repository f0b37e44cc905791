import { uniqueName } from '@afterglow/testkit/services';
import { liveScenario } from './live.js';

// Real Kafka + Redis + NATS (deploy/local) + chDB. CI sets the variables; locally the suite skips without them.
liveScenario('live on kafka+redis+nats', () => {
  const vars = ['KAFKA_BROKERS', 'REDIS_URL', 'NATS_URL'] as const;
  const missing = vars.filter((v) => !process.env[v]);
  if (missing.length > 0 && process.env.CI) throw new Error(`${missing.join(', ')} not set: CI must start the local services (deploy/local/up.sh)`);
  if (missing.length > 0) return undefined;
  return {
    KAFKA_BROKERS: process.env.KAFKA_BROKERS!,
    KAFKA_NAMESPACE: uniqueName('test'),
    REDIS_URL: process.env.REDIS_URL!,
    NATS_URL: process.env.NATS_URL!,
  };
});
