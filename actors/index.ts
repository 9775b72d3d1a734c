/**
 * Built-in VNode types. Adding a type: write `actors/<kind>/<name>.ts`, add one line here.
 */
import { registerVNodeType } from '../runtime/registry.js';
import { aggregatorType } from '../runtime/federated/federation.js';
import { gelu } from './activation/gelu.js';
import { relu } from './activation/relu.js';
import { sigmoid } from './activation/sigmoid.js';
import { tanh } from './activation/tanh.js';
import { attention } from './layer/attention.js';
import { dense } from './layer/dense.js';
import { embedding } from './layer/embedding.js';
import { layerNorm } from './layer/layer-norm.js';
import { mse } from './loss/mse.js';
import { add } from './merge/add.js';
import { softmaxCrossEntropy } from './loss/softmax-cross-entropy.js';

for (const def of [dense, embedding, layerNorm, attention, relu, tanh, sigmoid, gelu, add, mse, softmaxCrossEntropy]) registerVNodeType(def);
// Federated rounds' aggregator (runtime/federated/): built into the runtime, listed so every PNode can host one.
registerVNodeType(aggregatorType);
