/** Seeded random numbers for conformance inputs (mulberry32 + Box–Muller). */
export { mulberry32 } from "@flexattn/masks";
export function randomNormal(n: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** A fresh seed per run (so every run tests new inputs), printed with any failure. */
export function freshSeed(): number {
  return (Date.now() ^ Math.floor(Math.random() * 2 ** 31)) >>> 0;
}
