export { EventSink, type SinkOptions, type FlushReport } from './sink.js';
export { startSink, type SinkDeps, type RunningSink } from './start.js';
