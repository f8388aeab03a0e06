/**
 * What a tuning result is keyed by. The key is the full canonical structure, never a hash of it,
 * so two different kernels can never share an entry.
 */
import type { BackendName, ModMix, ResolvedProblem } from "@flexattn/template";

/** The compile-time structure of a kernel: mods (their canonical keys), head dims, dtype, LSE, block size. */
export function structureKey(problem: ResolvedProblem, sparseBlock: readonly [number, number], mods: ModMix): string {
  return JSON.stringify([
    mods.mask?.key ?? null, mods.score?.key ?? null, problem.qkHeadDim, problem.vHeadDim, problem.dtype,
    problem.returnLse, sparseBlock[0], sparseBlock[1],
  ]);
}

const pow2Up = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));

/**
 * Problems that share a best config. Lengths round up to powers of two (tile efficiency changes
 * slowly with length), programs in flight (batch × query heads) likewise, and the GQA ratio is
 * exact (it changes how often K/V tiles are reused from cache).
 */
export function problemBucket(problem: ResolvedProblem): string {
  const gqa = problem.qHeads / Math.max(1, problem.kvHeads);
  return `q${pow2Up(problem.qLen)}-kv${pow2Up(problem.kvLen)}-bh${pow2Up(problem.batch * problem.qHeads)}-g${gqa}`;
}

export function tuningKey(backend: BackendName, signature: string, structure: string, bucket: string): string {
  return `${backend}|${signature}|${bucket}|${structure}`;
}
