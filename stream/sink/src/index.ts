export { EventSink, type FlushReport, type SinkOptions } from './sink.js';
export { startSink, type RunningSink, type SinkDeps } from './start.js';
