/** The behaviour every adapter of a core port must show, run against each adapter by its own test. */
export * from './bus.js';
export * from './fanout.js';
export * from './hot.js';
export * from './blob.js';
