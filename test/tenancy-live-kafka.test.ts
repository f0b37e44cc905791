import { realServicesEnv } from './support.js';
import { tenantIsolationScenario } from './tenancy-live.js';

// Kafka + Redis keys + NATS subjects (deploy/local): where a key or subject without the tenant would merge two tenants.
tenantIsolationScenario('tenant isolation on kafka+redis+nats', realServicesEnv);
