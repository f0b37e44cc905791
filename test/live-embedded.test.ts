import { liveScenario } from './live.js';

// The same flow on the embedded adapters: in-process bus, memory hot state, in-process fan-out.
liveScenario('live embedded', () => ({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }));
