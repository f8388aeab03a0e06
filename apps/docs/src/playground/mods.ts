/**
 * Turning the playground's editor text into mods. The text is either an expression whose value
 * is the mod (`(b, h, q, kv) => q.ge(kv)`, `causal()`) or a function body that returns it.
 * Every failure becomes a ModResult error with the library's message: the page never dies.
 */
import { FlexAttnError, type MaskMod, type ModGraph, type ScoreMod, traceMaskMod, traceScoreMod } from "flexattn";
import { type ScopeSizes, modScope } from "./scope.js";

export type ModKind = "mask" | "score";

export type ModResult<Mod> =
  | { ok: true; mod: Mod; graph: ModGraph }
  | { ok: false; error: string };

/** A source that is empty (or only comments) means "no mod": the identity score, no mask. */
export function isBlank(source: string): boolean {
  return source.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "").trim() === "";
}

/** Evaluate the text in a scope of the DSL names (this is why the playground needs eval). */
function evaluateSource(source: string, scope: Record<string, unknown>): unknown {
  const names = Object.keys(scope);
  const values = Object.values(scope);
  let fn: (...args: unknown[]) => unknown;
  try {
    fn = new Function(...names, `"use strict";\nreturn (\n${source}\n);`) as typeof fn;
  } catch (asExpression) {
    try {
      fn = new Function(...names, `"use strict";\n${source}`) as typeof fn;
    } catch {
      throw asExpression;
    }
  }
  return fn(...values);
}

/** What a thrown value says, as the page shows it. */
export function errorText(e: unknown): string {
  if (e instanceof FlexAttnError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

function compileMod<Mod>(kind: ModKind, source: string, sizes: ScopeSizes, trace: (m: Mod) => ModGraph): ModResult<Mod> {
  let value: unknown;
  try {
    value = evaluateSource(source, modScope(sizes));
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
  if (typeof value !== "function") {
    const params = kind === "mask" ? "(b, h, q, kv) => ..." : "(score, b, h, q, kv) => ...";
    return { ok: false, error: `the ${kind} mod's text must give a function ${params}, got ${value === null ? "null" : typeof value}` };
  }
  try {
    return { ok: true, mod: value as Mod, graph: trace(value as Mod) };
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

export function compileMaskMod(source: string, sizes: ScopeSizes): ModResult<MaskMod> {
  return compileMod<MaskMod>("mask", source, sizes, traceMaskMod);
}

export function compileScoreMod(source: string, sizes: ScopeSizes): ModResult<ScoreMod> {
  return compileMod<ScoreMod>("score", source, sizes, traceScoreMod);
}
