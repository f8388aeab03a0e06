/**
 * What the playground computes, without the DOM: the BlockMask picture of the mask mod, a run of
 * attention on the JS or WGSL backend checked against the float64 reference, and every
 * backend's generated source. Errors come back as text for the page, never as exceptions.
 */
import {
  type BackendName, type BlockMask, type MaskMod, type ScoreMod, blockMaskSvg, compile, createBlockMask, flexAttention,
  lastFlexAttentionRun, prepareCall, randomTensor, referenceAttention,
} from "flexattn";
import { type QueryRow, compareRows } from "@flexattn/template";
import { type ModResult, compileMaskMod, compileScoreMod, errorText, isBlank } from "./mods.js";
import type { PlaygroundState } from "./state.js";

export interface Analysis {
  mask: ModResult<MaskMod> | null;
  score: ModResult<ScoreMod> | null;
  /** Present when the mask (or its absence) gives a BlockMask. */
  blockMask?: BlockMask;
  svg?: string;
  sparsity?: number;
  /** Why there is no BlockMask (the mask mod's error, or createBlockMask's). */
  error?: string;
}

export function analyze(s: PlaygroundState): Analysis {
  const sizes = { N: s.N, H: s.H };
  const mask = isBlank(s.mask) ? null : compileMaskMod(s.mask, sizes);
  const score = isBlank(s.score) ? null : compileScoreMod(s.score, sizes);
  if (mask && !mask.ok) return { mask, score, error: mask.error };
  try {
    const blockMask = createBlockMask(mask ? mask.mod : (_b, _h, _q, _kv) => true, { B: 1, H: s.H, qLen: s.N, kvLen: s.N, blockSize: s.block });
    return { mask, score, blockMask, svg: blockMaskSvg(blockMask, { width: 320 }), sparsity: blockMask.sparsity() };
  } catch (e) {
    return { mask, score, error: errorText(e) };
  }
}

export type RunBackend = Extract<BackendName, "js" | "wgsl">;

export interface RunReport {
  backend: RunBackend;
  device: string;
  /** Wall time of the flexAttention call, compile included on the first run. */
  ms: number;
  /** Max |out − ref| / max(1, max |ref|) against the float64 reference. */
  outError: number;
  lseError: number;
  /** Output elements left unwritten or NaN where the reference is not. */
  badElements: number;
}

export type RunResult = { ok: true; report: RunReport } | { ok: false; error: string };

/** Run attention on fresh random inputs and compare every output row with the float64 reference. */
export async function runAttention(s: PlaygroundState, a: Analysis, backend: RunBackend, seed = Date.now() % 2 ** 31): Promise<RunResult> {
  if (!a.blockMask) return { ok: false, error: a.error ?? "no BlockMask" };
  if (a.score && !a.score.ok) return { ok: false, error: a.score.error };
  try {
    const shape = [1, s.H, s.N, s.D];
    const [q, k, v] = [0, 1, 2].map((i) => randomTensor(shape, { seed: seed + i }));
    const options = { blockMask: a.blockMask, scoreMod: a.score?.mod, returnLse: true as const, backend };
    const t0 = performance.now();
    const result = await flexAttention(q, k, v, options);
    const ms = performance.now() - t0;
    const call = prepareCall(q, k, v, options);
    const ref = referenceAttention(call.invocation);
    const rows: QueryRow[] = [];
    for (let h = 0; h < s.H; h++) for (let i = 0; i < s.N; i++) rows.push({ b: 0, h, i });
    const e = compareRows({ ...call.invocation, out: result.out.data, lse: result.lse.data as Float32Array }, ref, rows);
    const device = lastFlexAttentionRun()?.device ?? backend;
    return { ok: true, report: { backend, device, ms, outError: e.outError, lseError: e.lseError, badElements: e.badElements } };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

export const SOURCE_BACKENDS: readonly BackendName[] = ["wgsl", "triton", "cuda", "js"];

/** The kernel source each backend generates for the variant (or why it cannot). */
export function generatedSource(s: PlaygroundState, a: Analysis, backend: BackendName): { ok: true; source: string } | { ok: false; error: string } {
  if (a.mask && !a.mask.ok) return { ok: false, error: a.mask.error };
  if (a.score && !a.score.ok) return { ok: false, error: a.score.error };
  try {
    const problem = { batch: 1, qHeads: s.H, kvHeads: s.H, qLen: s.N, kvLen: s.N, qkHeadDim: s.D, vHeadDim: s.D, dtype: "f32" as const, returnLse: true };
    const mods = { maskMod: a.mask?.graph, scoreMod: a.score?.graph };
    return { ok: true, source: compile(mods, problem, { backend, blockSize: s.block }).source };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}
