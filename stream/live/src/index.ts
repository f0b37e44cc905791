export { EventSink, type SinkOptions, type FlushReport } from './sink.js';
export * from './live/index.js';
export * from './triggers/index.js';
