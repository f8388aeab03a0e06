/** The tuner: measure a backend's candidates for one problem, record the fastest. */
import { FlexAttnError } from "@flexattn/ir";
import type { KernelConfig } from "@flexattn/template";
import type { TuningCache } from "./cache.js";
import { type ConfigRequest, candidatesOf, requestKey } from "./resolve.js";

export interface TuneProgress {
  /** 1-based index of the candidate just measured, and how many will be. */
  readonly index: number;
  readonly total: number;
  readonly config: KernelConfig;
  /** Its time (ms), or why it could not run. */
  readonly ms?: number;
  readonly error?: string;
}

export interface TuneRequest extends Omit<ConfigRequest, "user" | "cache"> {
  /** Run a config on the real problem and return its time in milliseconds (lower is better). */
  measure(config: KernelConfig): Promise<number> | number;
  /** Where the winner is recorded (needs a target); default: nowhere. */
  readonly cache?: TuningCache | null;
  /** The configs to try; default: the backend's candidates, best guess first. */
  readonly candidates?: readonly KernelConfig[];
  /** Try at most this many (the backend's first ones); default 16. */
  readonly maxCandidates?: number;
  /** Stop measuring new candidates after this long; default 60 s. The first is always measured. */
  readonly budgetMs?: number;
  onProgress?(p: TuneProgress): void;
}

export interface Trial {
  readonly config: KernelConfig;
  readonly ms?: number;
  readonly error?: string;
}

export interface TuneResult {
  readonly best: KernelConfig;
  readonly ms: number;
  readonly key?: string;
  readonly trials: readonly Trial[];
  /** Wall time of the whole tuning, ms. */
  readonly elapsedMs: number;
}

/**
 * A candidate beats the fastest so far only when it is this fraction faster: closer timings are within a
 * median's run-to-run noise, and the earlier candidate (the backend's better guess) keeps the tie. The
 * Python tuner of the generated Triton modules applies the same margin.
 */
export const TUNE_TIE_MARGIN = 0.01;

const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

export async function tune(r: TuneRequest): Promise<TuneResult> {
  const start = now();
  const all = r.candidates ?? candidatesOf({ ...r, cache: null });
  const list = all.slice(0, r.maxCandidates ?? 16);
  const budget = r.budgetMs ?? 60_000;
  const trials: Trial[] = [];
  for (const [i, config] of list.entries()) {
    if (i > 0 && now() - start > budget) break;
    let trial: Trial;
    try {
      const ms = await r.measure(config);
      trial = Number.isFinite(ms) && ms >= 0 ? { config, ms } : { config, error: `measured ${ms} ms` };
    } catch (e) {
      trial = { config, error: e instanceof Error ? e.message : String(e) };
    }
    trials.push(trial);
    r.onProgress?.({ index: i + 1, total: list.length, ...trial });
  }
  const timed = trials.filter((t): t is Trial & { ms: number } => t.ms !== undefined);
  if (!timed.length) {
    throw new FlexAttnError(`tuning found no candidate that runs; first error: ${trials[0]?.error ?? "no candidates"}`);
  }
  const best = timed.reduce((a, b) => (b.ms < a.ms * (1 - TUNE_TIE_MARGIN) ? b : a));
  const key = requestKey(r);
  if (key && r.cache) r.cache.set(key, { config: best.config, ms: best.ms, measured: timed.length, at: new Date().toISOString() });
  return { best: best.config, ms: best.ms, key, trials, elapsedMs: now() - start };
}
