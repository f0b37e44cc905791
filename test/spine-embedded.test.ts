import { spineScenario } from './spine.js';

// The embedded default: in-process log as the bus, chDB as the store — what `npm start` runs.
spineScenario('embedded', () => ({}));
