/** The process-wide tuning cache: a file in Node, localStorage in a browser, memory elsewhere. */
import pkg from "../package.json" with { type: "json" };
import { MemoryTuningCache, type TuningCache } from "./cache.js";
import { FileTuningCache, defaultCacheDir, nodeBuiltins } from "./cache-file.js";
import { StorageTuningCache } from "./cache-storage.js";

/** Tuning results are valid for the library version that measured them. */
export const LIBRARY_VERSION: string = pkg.version;

let current: TuningCache | undefined;

export function defaultTuningCache(): TuningCache {
  current ??= openDefaultCache();
  return current;
}

/** Replace the process-wide cache (a custom store, a fresh MemoryTuningCache in tests). */
export function setTuningCache(cache: TuningCache): void {
  current = cache;
}

function openDefaultCache(): TuningCache {
  const node = nodeBuiltins();
  if (node) return new FileTuningCache(node.path.join(defaultCacheDir(node), "tuning.json"), LIBRARY_VERSION, node);
  const storage = (globalThis as { localStorage?: Storage }).localStorage;
  if (storage) return new StorageTuningCache(LIBRARY_VERSION, storage);
  return new MemoryTuningCache(LIBRARY_VERSION);
}
