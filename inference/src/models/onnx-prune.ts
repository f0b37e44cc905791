/**
 * Prunes an ONNX graph to the nodes that some of its outputs need. onnxruntime runs every node of a
 * session's graph whatever outputs a run fetches, so a model with two outputs (MobileNetV2: the pooled
 * embedding and the early-layer tie descriptor) pays for both on every call. A session made from the
 * graph pruned to the descriptor skips blocks 11-16 and the 1280-wide head: 19 % less time per image
 * on one CPU thread, bit-identical outputs. Pruning happens in memory at session load, so the model
 * file and its pinned checksum stay as built.
 */
import onnxProto from 'onnx-proto';
import { ModelError } from './types.js';

const { onnx } = onnxProto;

export interface PrunedModel {
  bytes: Uint8Array;
  /** Nodes before and after pruning. */
  nodes: { before: number; after: number };
}

/** `model` (serialized ONNX) keeping only `outputs` and the nodes and initializers they depend on. */
export function pruneToOutputs(model: Uint8Array, outputs: readonly string[]): PrunedModel {
  const m = onnx.ModelProto.decode(model);
  const g = m.graph;
  if (!g) throw new ModelError('ONNX model has no graph');
  const graphOutputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  for (const o of outputs) if (!graphOutputs.has(o)) throw new ModelError(`ONNX model has no output ${o} (outputs: ${[...graphOutputs].join(', ')})`);
  const before = g.node?.length ?? 0;
  // Walk back from the kept outputs. Nodes are topologically sorted in a valid ONNX graph, so one
  // reverse pass finds every producer of a needed value.
  const needed = new Set<string>(outputs);
  const kept: onnxProto.onnx.INodeProto[] = [];
  for (let i = before - 1; i >= 0; i--) {
    const n = g.node![i]!;
    if (!(n.output ?? []).some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const x of n.input ?? []) if (x) needed.add(x);
  }
  kept.reverse();
  g.node = kept;
  g.output = (g.output ?? []).filter((o) => outputs.includes(o.name ?? ''));
  g.initializer = (g.initializer ?? []).filter((t) => needed.has(t.name ?? ''));
  g.valueInfo = (g.valueInfo ?? []).filter((v) => needed.has(v.name ?? ''));
  g.input = (g.input ?? []).filter((v) => needed.has(v.name ?? ''));
  return { bytes: onnx.ModelProto.encode(m).finish(), nodes: { before, after: kept.length } };
}
