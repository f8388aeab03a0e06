/**
 * A bounded map that evicts the least recently used entry: every kernel and artifact cache of
 * the library is one of these, keyed by a full canonical key (never a hash alone, so a hash
 * collision cannot hand back another kernel).
 */
/** Entries a kernel cache keeps unless it says otherwise: plenty for one model's variants. */
export const DEFAULT_CACHE_CAPACITY = 256;

export class LruCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly capacity: number = DEFAULT_CACHE_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`LruCache capacity must be a positive integer, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  set(key: K, value: V): this {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as K);
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
