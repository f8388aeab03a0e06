/**
 * The tuning cache on disk (Node): one versioned JSON file in the user's cache directory.
 * Writers take a lock file, re-read the file and merge before an atomic rename, so concurrent
 * processes lose no entry. A corrupt or stale file is reported once, kept aside and rebuilt.
 */
import { MemoryTuningCache, type TuningEntry, readTuningFile } from "./cache.js";

/*
 * The parts of node:fs, node:path and node:os this file uses, spelled out: the published
 * declarations then need no @types/node, so browser projects type-check without it.
 */
interface Fs {
  readFileSync(path: string, encoding: "utf8"): string;
  writeFileSync(path: string, data: string): void;
  renameSync(from: string, to: string): void;
  mkdirSync(path: string, options: { recursive: true }): unknown;
  rmSync(path: string, options: { force: true }): void;
  openSync(path: string, flags: string): number;
  closeSync(fd: number): void;
  statSync(path: string): { mtimeMs: number };
}
interface Path {
  join(...parts: string[]): string;
  dirname(path: string): string;
}
interface Os {
  homedir(): string;
}

interface NodeModules {
  fs: Fs;
  path: Path;
  os: Os;
}

/** Node's built-ins without a static import, so browser bundles of this package stay clean. */
export function nodeBuiltins(): NodeModules | undefined {
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  if (typeof get !== "function") return undefined;
  return { fs: get("node:fs") as Fs, path: get("node:path") as Path, os: get("node:os") as Os };
}

/** $FLEXATTN_CACHE_DIR, else $XDG_CACHE_HOME/flexattn, else ~/.cache/flexattn. */
export function defaultCacheDir(node: NodeModules, env: Record<string, string | undefined> = process.env): string {
  if (env.FLEXATTN_CACHE_DIR) return env.FLEXATTN_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || node.path.join(node.os.homedir(), ".cache");
  return node.path.join(base, "flexattn");
}

const LOCK_WAIT_MS = 10_000;
/** A lock older than this was left by a process that died while writing. */
const STALE_LOCK_MS = 30_000;

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export interface FileTuningCacheOptions {
  /** Where reports of a corrupt or stale file go; default console.warn. */
  warn?: (message: string) => void;
}

export class FileTuningCache extends MemoryTuningCache {
  private loaded = false;
  private writeFailed = false;
  private readonly warn: (message: string) => void;

  constructor(
    readonly file: string,
    version: string,
    private readonly node: NodeModules,
    o: FileTuningCacheOptions = {},
  ) {
    super(version);
    this.warn = o.warn ?? ((m) => console.warn(m));
  }

  override get(key: string): TuningEntry | undefined {
    this.load();
    return super.get(key);
  }

  override set(key: string, entry: TuningEntry): void {
    this.load();
    super.set(key, entry);
    this.persist({ [key]: entry });
  }

  override export() {
    this.load();
    return super.export();
  }

  override import(file: Parameters<MemoryTuningCache["import"]>[0]): number {
    this.load();
    const n = super.import(file);
    this.persist(file.entries);
    return n;
  }

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    for (const [k, e] of Object.entries(this.readDisk(true))) super.set(k, e);
  }

  /** The file's entries; an unusable file is reported (once per process) and moved aside. */
  private readDisk(report: boolean): Record<string, TuningEntry> {
    const { fs } = this.node;
    let text: string;
    try {
      text = fs.readFileSync(this.file, "utf8");
    } catch {
      return {}; // no file yet
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const entries = readTuningFile(parsed, this.version);
    if (!(entries instanceof Error)) return entries;
    const aside = `${this.file}.${Date.now()}.unused`;
    try {
      fs.renameSync(this.file, aside);
    } catch {
      // another process moved it first
    }
    if (report) this.warn(`flexattn: the tuning cache ${this.file} cannot be used (${entries.message}); kept as ${aside}, starting a new one`);
    return {};
  }

  /**
   * Write entries through to the file. A cache that cannot be written (a read-only or missing
   * directory, a file in the way) must not cost the caller the result it tuned for: the entries stay
   * in memory and the failure is reported once.
   */
  private persist(mine: Readonly<Record<string, TuningEntry>>): void {
    try {
      this.writeThrough(mine);
    } catch (e) {
      if (this.writeFailed) return;
      this.writeFailed = true;
      this.warn(`flexattn: cannot write the tuning cache ${this.file} (${e instanceof Error ? e.message : String(e)}); ` +
        "tuning results are kept in memory for this process only (set FLEXATTN_CACHE_DIR to a writable folder)");
    }
  }

  private writeThrough(mine: Readonly<Record<string, TuningEntry>>): void {
    const { fs, path } = this.node;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const lock = `${this.file}.lock`;
    this.acquire(lock);
    try {
      const merged = { ...this.readDisk(false), ...mine };
      for (const [k, e] of Object.entries(merged)) super.set(k, e);
      const tmp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify({ ...super.export(), entries: merged }, null, 1));
      fs.renameSync(tmp, this.file);
    } finally {
      fs.rmSync(lock, { force: true });
    }
  }

  private acquire(lock: string): void {
    const { fs } = this.node;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        fs.closeSync(fs.openSync(lock, "wx"));
        return;
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST") throw e;
      }
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > STALE_LOCK_MS) fs.rmSync(lock, { force: true });
      } catch {
        // released meanwhile
      }
      if (Date.now() > deadline) throw new Error(`flexattn: the tuning cache lock ${lock} is held too long; remove it if no flexattn process is running`);
      sleep(5 + Math.random() * 20);
    }
  }
}
