/** Plain-JS helpers for the tests: evaluate traced mods densely, independent of the library code. */
import { evaluate, traceMaskMod, traceScoreMod, compileJsMod } from "@flexattn/ir";
import type { CompiledMaskFn, CompiledScoreFn, MaskMod, ScoreMod } from "@flexattn/ir";

export interface Shape { B: number; H: number; qLen: number; kvLen: number }

export function forEachPoint(s: Shape, body: (b: number, h: number, q: number, kv: number) => void): void {
  for (let b = 0; b < s.B; b++)
    for (let h = 0; h < s.H; h++)
      for (let q = 0; q < s.qLen; q++)
        for (let kv = 0; kv < s.kvLen; kv++) body(b, h, q, kv);
}

/** Every point where the traced mask (by the reference evaluator and the compiled closure) differs from `expected`. */
export function maskMismatches(mask: MaskMod, s: Shape, expected: (b: number, h: number, q: number, kv: number) => boolean): string[] {
  const g = traceMaskMod(mask);
  const fn = compileJsMod(g) as CompiledMaskFn;
  const bad: string[] = [];
  forEachPoint(s, (b, h, q, kv) => {
    const want = expected(b, h, q, kv);
    const got = evaluate(g, { b, h, q, kv });
    if (got !== want || fn(b, h, q, kv) !== want) bad.push(`(b=${b},h=${h},q=${q},kv=${kv}): got ${got}, want ${want}`);
  });
  return bad.slice(0, 10);
}

/** Largest relative error of a score mod against `expected` over a few scores. */
export function scoreError(mod: ScoreMod, s: Shape, expected: (score: number, b: number, h: number, q: number, kv: number) => number): number {
  const g = traceScoreMod(mod);
  const fn = compileJsMod(g) as CompiledScoreFn;
  let worst = 0;
  for (const score of [-7.25, 0, 0.5, 3, 100]) {
    forEachPoint(s, (b, h, q, kv) => {
      const want = expected(score, b, h, q, kv);
      for (const got of [evaluate(g, { score, b, h, q, kv }) as number, fn(Math.fround(score), b, h, q, kv)]) {
        worst = Math.max(worst, Math.abs(got - want) / Math.max(1, Math.abs(want)));
      }
    });
  }
  return worst;
}
