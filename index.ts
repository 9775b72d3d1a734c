/**
 * The `dcnr` package entry: the public API, re-exported and nothing else. A VNode type
 * or a scenario written outside this repository imports from `dcnr` only:
 *
 * @example
 * import { defineVNodeType, z } from 'dcnr';
 * export const leakyRelu = defineVNodeType({ type: 'activation.leakyRelu', version: 1, role: 'activation', … });
 *
 * and runs with `dcnr train --types ./leaky-relu.ts …` (README: "Write your own VNode type").
 */
export { z } from 'zod';
export { defineVNodeType } from './runtime/vnode-type.js';
export type { BackwardResult, ForwardResult, LossDefinition, LossOutput, ParameterShapes, Tensors, TransformDefinition, VNodeContext, VNodeType } from './runtime/vnode-type.js';
export { decodeSafetensors, encodeSafetensors, SafetensorsError } from './runtime/safetensors.js';
export type { NamedTensor, Safetensors } from './runtime/safetensors.js';
export { getVNodeType, registerVNodeType } from './runtime/registry.js';
export type { Tensor } from './runtime/tensor.js';
export type { ActivationFn, Kernels, LayerNormGrad, LayerNormResult, LossResult, MatmulOptions, SoftmaxOptions } from './runtime/kernels/types.js';
export type { Rng } from './runtime/rng.js';
export type { ModelSpec } from './runtime/model.js';
export { defineScenario } from './scenarios/runner/define.js';
export * from './runtime/protocol.js';
