export { EventSink, type SinkOptions, type FlushReport } from './sink.js';
