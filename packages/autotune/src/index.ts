export { type ConfigRequest, type ConfigSource, type ResolvedConfig, resolveConfig, applyUserConfig, candidatesOf, requestKey, sameConfig, canonicalConfig, describeConfig } from "./resolve.js";
export { type TuneRequest, type TuneResult, type TuneProgress, type Trial, TUNE_TIE_MARGIN, tune } from "./tune.js";
export { type TuningCache, type TuningEntry, type TuningFile, TUNING_FORMAT, MemoryTuningCache, readTuningFile } from "./cache.js";
export { FileTuningCache, defaultCacheDir } from "./cache-file.js";
export { StorageTuningCache } from "./cache-storage.js";
export { LIBRARY_VERSION, defaultTuningCache, setTuningCache } from "./default-cache.js";
export { structureKey, problemBucket, tuningKey } from "./key.js";
export { pythonTuningRuntime, tuningCacheFormat } from "./python-runtime.js";
export { median, medianWallMs } from "./timing.js";
