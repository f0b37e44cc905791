import { triggerScenario } from './triggers.js';
import { realServicesEnv } from './support.js';

// Real Kafka + Redis + NATS (deploy/local) + chDB. CI sets the variables; locally the suite skips without them.
triggerScenario('triggers on kafka+redis+nats', realServicesEnv);
