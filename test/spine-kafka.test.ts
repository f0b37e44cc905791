import { uniqueName } from '@afterglow/core/testing';
import { spineScenario } from './spine.js';

// Real Kafka (deploy/local) + chDB. CI sets KAFKA_BROKERS; locally the suite skips without it.
spineScenario('kafka', () => {
  const brokers = process.env.KAFKA_BROKERS;
  if (!brokers && process.env.CI) throw new Error('KAFKA_BROKERS is not set: CI must start the local services (deploy/local/up.sh)');
  return brokers ? { KAFKA_BROKERS: brokers, KAFKA_NAMESPACE: uniqueName('test') } : undefined;
});
