/**
 * GbtBag -> ONNX-ML `TreeEnsembleRegressor` (domain ai.onnx.ml, opset 3), so the workers serve
 * the model through onnxruntime-node on CPU or CUDA like every other model here.
 *
 * Graph: `features` float [N, F] -> TreeEnsembleRegressor (SUM over trees) -> `score`
 * float [N, K]: one target per bag member (member k's trees write target k; its base value folded
 * into its first tree's leaves), so one call gives the prediction (mean) and the model spread.
 * Branch mode BRANCH_LEQ (go to the true branch iff x <= threshold), the same rule as
 * `predictTree`. Thresholds and leaf weights are float32 values already in the JS model (onnxruntime
 * refuses double `*_as_tensor` attributes for float input), so both sides take the same paths and
 * add the same weights; only the float32 accumulation differs (~1e-6; the parity test holds 1e-5).
 */
import onnxProto from 'onnx-proto';
import type { GbtBag } from './gbt.js';

const { onnx } = onnxProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

export const TREE_INPUT = 'features';
export const TREE_OUTPUT = 'score';
const AttrType = onnx.AttributeProto.AttributeType;

const ints = (name: string, v: number[]): IAttributeProto => ({ name, type: AttrType.INTS, ints: v });
const strs = (name: string, v: string[]): IAttributeProto => ({ name, type: AttrType.STRINGS, strings: v.map((s) => new TextEncoder().encode(s)) });
const str = (name: string, v: string): IAttributeProto => ({ name, type: AttrType.STRING, s: new TextEncoder().encode(v) });
const int = (name: string, v: number): IAttributeProto => ({ name, type: AttrType.INT, i: v });
const floats = (name: string, v: number[]): IAttributeProto => ({ name, type: AttrType.FLOATS, floats: v });

export function gbtToOnnx(bag: GbtBag, options: { graphName?: string; metadata?: Record<string, string> } = {}): Uint8Array {
  const treeIds: number[] = [];
  const nodeIds: number[] = [];
  const featureIds: number[] = [];
  const values: number[] = [];
  const modes: string[] = [];
  const trueIds: number[] = [];
  const falseIds: number[] = [];
  const missingTrue: number[] = [];
  const tTree: number[] = [];
  const tNode: number[] = [];
  const tIds: number[] = [];
  const tWeights: number[] = [];
  let treeId = 0;
  bag.members.forEach((model, member) => {
    const trees = model.trees.length ? model.trees : [{ feature: [-1], threshold: [0], left: [-1], right: [-1], value: [0] }];
    trees.forEach((t, ti) => {
      const id = treeId++;
      for (let n = 0; n < t.feature.length; n++) {
        treeIds.push(id);
        nodeIds.push(n);
        missingTrue.push(0);
        if (t.feature[n]! < 0) {
          featureIds.push(0);
          values.push(0);
          modes.push('LEAF');
          trueIds.push(0);
          falseIds.push(0);
          tTree.push(id);
          tNode.push(n);
          tIds.push(member);
          // The member's base value is folded into its first tree's leaves (onnxruntime takes
          // base_values per target, but as float only; this keeps one code path).
          tWeights.push(t.value[n]! + (ti === 0 ? model.base : 0));
        } else {
          featureIds.push(t.feature[n]!);
          values.push(t.threshold[n]!);
          modes.push('BRANCH_LEQ');
          trueIds.push(t.left[n]!);
          falseIds.push(t.right[n]!);
        }
      }
    });
  });
  const batch = { dimParam: 'N' };
  const graph: onnxProto.onnx.IGraphProto = {
    name: options.graphName ?? 'afterglow-gbt',
    node: [
      {
        opType: 'TreeEnsembleRegressor',
        domain: 'ai.onnx.ml',
        name: 'trees',
        input: [TREE_INPUT],
        output: [TREE_OUTPUT],
        attribute: [
          str('aggregate_function', 'SUM'),
          int('n_targets', bag.members.length),
          ints('nodes_falsenodeids', falseIds),
          ints('nodes_featureids', featureIds),
          ints('nodes_missing_value_tracks_true', missingTrue),
          strs('nodes_modes', modes),
          ints('nodes_nodeids', nodeIds),
          ints('nodes_treeids', treeIds),
          ints('nodes_truenodeids', trueIds),
          floats('nodes_values', values),
          str('post_transform', 'NONE'),
          ints('target_ids', tIds),
          ints('target_nodeids', tNode),
          ints('target_treeids', tTree),
          floats('target_weights', tWeights),
        ],
      },
    ],
    input: [{ name: TREE_INPUT, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: bag.nFeatures }] } } } }],
    output: [{ name: TREE_OUTPUT, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [batch, { dimValue: bag.members.length }] } } } }],
  };
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'ai.onnx.ml', version: 3 },
    ],
    producerName: 'afterglow-inference',
    producerVersion: '1',
    graph,
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(proto).finish();
}
