/** Tuning results: the interface every store implements, and the in-memory store. */
import { FlexAttnError } from "@flexattn/ir";
import type { KernelConfig } from "@flexattn/template";

export const TUNING_FORMAT = "flexattn.tuning/1";

export interface TuningEntry {
  readonly config: KernelConfig;
  /** Median time of the winner, milliseconds. */
  readonly ms: number;
  /** How many candidates were measured. */
  readonly measured: number;
  /** When it was measured (ISO 8601). */
  readonly at: string;
}

/** The portable form of a store: what export() writes and import() reads. */
export interface TuningFile {
  readonly format: typeof TUNING_FORMAT;
  /** The library version that measured the entries: another version's entries are stale. */
  readonly version: string;
  readonly entries: Readonly<Record<string, TuningEntry>>;
}

export interface TuningCache {
  get(key: string): TuningEntry | undefined;
  set(key: string, entry: TuningEntry): void;
  /** Every entry, e.g. to ship them to another machine. */
  export(): TuningFile;
  /** Merge entries measured elsewhere; returns how many were taken. */
  import(file: TuningFile): number;
}

export class MemoryTuningCache implements TuningCache {
  protected entries = new Map<string, TuningEntry>();

  constructor(readonly version: string) {}

  get(key: string): TuningEntry | undefined {
    return this.entries.get(key);
  }

  set(key: string, entry: TuningEntry): void {
    this.entries.set(key, entry);
  }

  export(): TuningFile {
    return { format: TUNING_FORMAT, version: this.version, entries: Object.fromEntries(this.entries) };
  }

  import(file: TuningFile): number {
    const entries = checkTuningFile(file, this.version);
    for (const [k, e] of Object.entries(entries)) this.entries.set(k, e);
    return Object.keys(entries).length;
  }
}

/**
 * The entries of a parsed tuning file, or an Error that says why it cannot be used: another
 * format, another library version (its configs may not exist any more), or a malformed entry.
 */
export function readTuningFile(data: unknown, version: string): Record<string, TuningEntry> | Error {
  const f = data as Partial<TuningFile> | null;
  if (!f || typeof f !== "object" || f.format !== TUNING_FORMAT) return new Error(`not a ${TUNING_FORMAT} file`);
  if (f.version !== version) return new Error(`measured by flexattn ${String(f.version)}, this is ${version}`);
  if (!f.entries || typeof f.entries !== "object") return new Error("it has no entries object");
  for (const [k, e] of Object.entries(f.entries)) {
    if (!e || typeof e !== "object" || typeof e.ms !== "number" || !e.config || typeof e.config.blockM !== "number") {
      return new Error(`entry ${JSON.stringify(k).slice(0, 80)} is malformed`);
    }
  }
  return f.entries as Record<string, TuningEntry>;
}

function checkTuningFile(file: TuningFile, version: string): Record<string, TuningEntry> {
  const entries = readTuningFile(file, version);
  if (entries instanceof Error) throw new FlexAttnError(`cannot import tuning results: ${entries.message}`);
  return entries;
}
