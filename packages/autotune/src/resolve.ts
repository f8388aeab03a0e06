/**
 * The one config resolution. flexAttention, compile, the CLI, the generated modules' defaults and
 * the bench all call resolveConfig; nothing else picks or merges configs. Order: the caller's
 * explicit config > a tuning-cache entry for (backend, device, structure, problem bucket) > the
 * backend's shipped table for a known device > the backend's heuristic (its first candidate).
 */
import { FlexAttnError, LruCache, checkKnownKeys } from "@flexattn/ir";
import {
  type BackendName, type CodegenBackend, type DeviceTarget, type KernelConfig, type ModMix, type ResolvedProblem, validateConfig,
} from "@flexattn/template";
import type { TuningCache } from "./cache.js";
import { problemBucket, structureKey, tuningKey } from "./key.js";

export type ConfigSource = "user" | "tuned" | "shipped" | "heuristic";

export interface ConfigRequest {
  readonly backend: CodegenBackend;
  readonly problem: ResolvedProblem;
  readonly sparseBlock: readonly [number, number];
  readonly mods: ModMix;
  /** The device; none for a kernel generated to run elsewhere (then only user config and heuristic apply). */
  readonly target?: DeviceTarget;
  /** The caller's config: every field given is honoured, the rest come from the best candidate that agrees. */
  readonly user?: Partial<KernelConfig>;
  readonly cache?: TuningCache | null;
}

export interface ResolvedConfig {
  readonly config: KernelConfig;
  readonly source: ConfigSource;
  /** The tuning-cache key of this request (present when a target is known). */
  readonly key?: string;
}

const REQUIRED_FIELDS = ["blockM", "blockN", "numWarps", "numStages", "prescaleQk"] as const;
const CONFIG_FIELDS = new Set<string>([...REQUIRED_FIELDS, "options"]);

/** The tuning-cache key of a request, or undefined where no device is known. */
export function requestKey(r: Pick<ConfigRequest, "backend" | "problem" | "sparseBlock" | "mods" | "target">): string | undefined {
  if (!r.target) return undefined;
  return tuningKey(r.backend.name as BackendName, r.target.signature, structureKey(r.problem, r.sparseBlock, r.mods), problemBucket(r.problem));
}

/**
 * What a backend derives from a request (its candidate list, its shipped pick), by backend, then
 * by what it is computed from (the problem, BlockMask block, mods' structure and device).
 * Enumerating a search space can cost more than a small kernel runs, and every flexAttention call
 * resolves its config, so each is computed once.
 */
type PerRequest<T> = WeakMap<CodegenBackend, LruCache<string, T>>;
const candidateLists: PerRequest<readonly KernelConfig[]> = new WeakMap();
const shippedPicks: PerRequest<{ config: KernelConfig | undefined }> = new WeakMap();

function perRequest<T>(memo: PerRequest<T>, r: ConfigRequest, compute: () => T): T {
  let entries = memo.get(r.backend);
  if (!entries) memo.set(r.backend, (entries = new LruCache()));
  const key = JSON.stringify([r.problem, r.sparseBlock, r.mods.mask?.key ?? null, r.mods.score?.key ?? null, r.target ?? null]);
  const hit = entries.get(key);
  if (hit !== undefined) return hit;
  const value = compute();
  entries.set(key, value);
  return value;
}

const frozen = (c: KernelConfig): KernelConfig => Object.freeze({ ...c, ...(c.options ? { options: Object.freeze({ ...c.options }) } : {}) });

/** The backend's candidates for a request, best guess first (computed once per request shape; do not mutate). */
export function candidatesOf(r: ConfigRequest): readonly KernelConfig[] {
  return perRequest(candidateLists, r, () => {
    const all = r.backend.configCandidates(r.problem, r.sparseBlock, r.mods, r.target);
    if (!all.length) throw new FlexAttnError(`the ${r.backend.name} backend has no config for this problem`);
    return Object.freeze(all.map(frozen));
  });
}

/** The backend's shipped pick for a request on its device, if it has one (computed once per request shape). */
function shippedOf(r: ConfigRequest & { target: DeviceTarget }): KernelConfig | undefined {
  return perRequest(shippedPicks, r, () => {
    const pick = r.backend.shippedConfig?.(r.problem, r.sparseBlock, r.mods, r.target);
    return { config: pick && frozen(pick) };
  }).config;
}

export function resolveConfig(r: ConfigRequest): ResolvedConfig {
  const key = requestKey(r);
  const candidates = candidatesOf(r);
  if (r.user !== undefined) return { config: applyUserConfig(r.user, candidates, r.sparseBlock), source: "user", key };
  const tuned = key ? r.cache?.get(key) : undefined;
  // A cached pick is used only while the backend still offers it (limits or versions change).
  const stillValid = tuned && candidates.find((c) => sameConfig(c, tuned.config));
  if (stillValid) return { config: stillValid, source: "tuned", key };
  const shipped = r.target && shippedOf({ ...r, target: r.target });
  if (shipped) return { config: shipped, source: "shipped", key };
  return { config: candidates[0], source: "heuristic", key };
}

/**
 * A complete config (every KernelConfig field) as given. Otherwise the caller's fields with the
 * rest from a candidate: the best candidate that agrees with every field, else the best whose only disagreement is options it does not set (the caller's are
 * added), else the heuristic's with the caller's fields over it — merged once, then checked, so an
 * error names the field that does not fit.
 */
export function applyUserConfig(user: Partial<KernelConfig>, candidates: readonly KernelConfig[], sparseBlock: readonly [number, number]): KernelConfig {
  if (user === null || typeof user !== "object") throw new FlexAttnError(`config must be an object of KernelConfig fields, got ${String(user)}`);
  checkKnownKeys(user, [...CONFIG_FIELDS], "config");
  if (REQUIRED_FIELDS.every((k) => k in user)) return validateConfig(user as KernelConfig, sparseBlock);
  const exact = candidates.find((c) => agreesWith(c, user, false));
  if (exact) return exact;
  const base = candidates.find((c) => agreesWith(c, user, true)) ?? candidates[0];
  const merged: KernelConfig = { ...base, ...user, options: { ...base.options, ...user.options } };
  if (Object.keys(merged.options ?? {}).length === 0) delete (merged as { options?: unknown }).options;
  return validateConfig(merged, sparseBlock);
}

/** Whether a candidate has every field the caller gave (an option it does not set passes when `addable`). */
function agreesWith(c: KernelConfig, user: Partial<KernelConfig>, addable: boolean): boolean {
  for (const [k, v] of Object.entries(user)) {
    if (k !== "options") {
      if (c[k as keyof KernelConfig] !== v) return false;
      continue;
    }
    for (const [ok, ov] of Object.entries((v ?? {}) as Record<string, unknown>)) {
      const have = c.options?.[ok];
      if (have !== ov && !(addable && have === undefined)) return false;
    }
  }
  return true;
}

export function sameConfig(a: KernelConfig, b: KernelConfig): boolean {
  return canonicalConfig(a) === canonicalConfig(b);
}

/** A config as a string with sorted option keys: equal configs give equal strings. */
export function canonicalConfig(c: KernelConfig): string {
  const options = Object.entries(c.options ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify([c.blockM, c.blockN, c.numWarps, c.numStages, c.prescaleQk, options]);
}

/** A config in a few words, for logs and tables: "128x32 w8 s1 subgroupMatrix shareKV". */
export function describeConfig(c: KernelConfig): string {
  const flags = Object.entries(c.options ?? {})
    .filter(([, v]) => v !== false)
    .map(([k, v]) => (v === true ? k : `${k}=${v}`));
  return [`${c.blockM}x${c.blockN}`, `w${c.numWarps}`, `s${c.numStages}`, ...(c.prescaleQk ? ["prescaleQk"] : []), ...flags].join(" ");
}
