import { triggerScenario } from './triggers.js';

// The embedded adapters: in-process bus, memory hot state, in-process fan-out, chDB.
triggerScenario('triggers embedded', () => ({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }));
