export { startEdge, EdgeHub, EdgeSession, type EdgeDeps, type EdgeHubOptions, type RunningEdge } from './server.js';
export { PlacementPosteriors, betaSample, gammaSample, type PlacementState, type Posterior, type PosteriorOptions } from './posterior.js';
export { TenantLru, type EvictReason } from '@afterglow/core';
export { EdgeClient, EdgeError, type EdgeClientOptions, type Ack } from './client.js';
export { EDGE_CLOSE, EDGE_ERROR, type ClientMessage, type ServerMessage, type Decision } from './protocol.js';
