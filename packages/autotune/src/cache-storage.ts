/** The tuning cache in a browser: one localStorage item, same format as the file. */
import { MemoryTuningCache, type TuningEntry, readTuningFile } from "./cache.js";

const ITEM = "flexattn.tuning";

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export class StorageTuningCache extends MemoryTuningCache {
  constructor(
    version: string,
    private readonly storage: StorageLike,
    warn: (message: string) => void = (m) => console.warn(m),
  ) {
    super(version);
    const text = storage.getItem(ITEM);
    if (text === null) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const entries = readTuningFile(parsed, version);
    if (entries instanceof Error) warn(`flexattn: the stored tuning results cannot be used (${entries.message}); starting anew`);
    else for (const [k, e] of Object.entries(entries)) super.set(k, e);
  }

  override set(key: string, entry: TuningEntry): void {
    // Another tab may have written since: merge what is stored now.
    const stored = readTuningFile(safeParse(this.storage.getItem(ITEM)), this.version);
    if (!(stored instanceof Error)) for (const [k, e] of Object.entries(stored)) if (!super.get(k)) super.set(k, e);
    super.set(key, entry);
    try {
      this.storage.setItem(ITEM, JSON.stringify(this.export()));
    } catch {
      // quota exceeded or storage disabled: the entry still serves this page
    }
  }

  override import(file: Parameters<MemoryTuningCache["import"]>[0]): number {
    const n = super.import(file);
    for (const [k, e] of Object.entries(file.entries)) this.set(k, e);
    return n;
  }
}

function safeParse(text: string | null): unknown {
  try {
    return text === null ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}
