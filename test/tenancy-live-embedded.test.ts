import { tenantIsolationScenario } from './tenancy-live.js';

// In-process bus, memory hot state, in-process fan-out.
tenantIsolationScenario('tenant isolation embedded', () => ({ KAFKA_BROKERS: '', REDIS_URL: '', NATS_URL: '' }));
