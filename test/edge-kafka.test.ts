import { edgeScenario } from './edge.js';
import { realServicesEnv } from './support.js';

// Real Kafka + Redis + NATS (deploy/local) + chDB. CI sets the variables; locally the suite skips without them.
edgeScenario('edge on kafka+redis', realServicesEnv);
