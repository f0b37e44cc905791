import { edgeScenario } from './edge.js';

// The embedded adapters: in-process bus, memory hot state, chDB.
edgeScenario('edge embedded', () => ({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }));
