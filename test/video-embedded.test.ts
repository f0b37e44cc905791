import { videoScenario } from './video.js';

// The embedded default: in-process log as the bus, chDB as the store.
videoScenario('embedded', () => ({}));
