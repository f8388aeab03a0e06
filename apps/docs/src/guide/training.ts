/**
 * "Training": learn a relative-position bias table with flexAttention and flexAttentionBackward.
 * A teacher attention with a fixed bias produces targets; a student with the same mod but a
 * learnable table (zeros at first) fits them by gradient descent on the table alone. The docs page
 * includes this file region by region; test/guide.test.ts runs it and checks that the loss falls.
 */
// #region mod
import {
  type BackendChoice, type ScoreMod, type Tensor, buffer, causal, createBlockMask, flexAttention, flexAttentionBackward, randomTensor,
} from "flexattn";

/** Causal attention whose score gains table[q − kv + n − 1]: one bias per relative position. */
function relativeBias(table: Float32Array, n: number): ScoreMod {
  const bias = buffer(table, { name: "relBias" });
  return (s, _b, _h, q, kv) => s.add(bias.at(q.sub(kv).add(n - 1)));
}
// #endregion mod

export interface TrainOptions {
  n: number;
  heads: number;
  headDim: number;
  steps: number;
  learningRate: number;
  backend?: BackendChoice;
}

// #region train
/** Fit a zero-initialised bias table to a teacher's outputs; returns the loss before each step. */
export async function trainRelativeBias(o: TrainOptions): Promise<{ losses: number[]; table: Float32Array; teacher: Float32Array }> {
  const shape = [1, o.heads, o.n, o.headDim];
  const [q, k, v] = [1, 2, 3].map((seed) => randomTensor(shape, { seed }));
  const blockMask = createBlockMask(causal(), { qLen: o.n, kvLen: o.n, blockSize: 32 });

  // The teacher: a recency bias the student has to discover.
  const teacher = Float32Array.from({ length: 2 * o.n - 1 }, (_, i) => -0.05 * Math.abs(i - (o.n - 1)));
  const target = (await flexAttention(q, k, v, { blockMask, scoreMod: relativeBias(teacher, o.n), backend: o.backend })) as Tensor;

  // The student: the same mod over a table we update in place (the compiled kernel is reused).
  const table = new Float32Array(2 * o.n - 1);
  const options = { blockMask, scoreMod: relativeBias(table, o.n), backend: o.backend };
  const losses: number[] = [];
  for (let step = 0; step < o.steps; step++) {
    const { out, lse } = await flexAttention(q, k, v, { ...options, returnLse: true });
    // L = ½‖out − target‖², so ∂L/∂out = out − target.
    const dOut = new Float32Array(out.data.length);
    let loss = 0;
    for (let i = 0; i < dOut.length; i++) {
      dOut[i] = out.data[i] - target.data[i];
      loss += 0.5 * dOut[i] * dOut[i];
    }
    losses.push(loss);
    const grads = await flexAttentionBackward(q, k, v, out, lse, { ...out, data: dOut }, options);
    const dTable = grads.dBuffers.find((g) => g.data === table)!.grad;
    for (let i = 0; i < table.length; i++) table[i] -= o.learningRate * dTable[i];
  }
  return { losses, table, teacher };
}
// #endregion train
