/** The playground's variant: the two mods' text and the problem size, shareable in the URL hash. */

export interface PlaygroundState {
  /** Mask mod text (blank = no mask). */
  mask: string;
  /** Score mod text (blank = identity). */
  score: string;
  /** Sequence length (queries = keys). */
  N: number;
  /** Query heads (= key/value heads). */
  H: number;
  /** Head dim. */
  D: number;
  /** BlockMask block size. */
  block: number;
}

export const DEFAULT_STATE: PlaygroundState = {
  mask: "// a causal sliding window: kv at most 127 tokens before q\n(b, h, q, kv) => q.sub(kv).ge(0).and(q.sub(kv).lt(128))",
  score: "// Gemma-2-style softcapping\n(score, b, h, q, kv) => tanh(score.div(20)).mul(20)",
  N: 512,
  H: 2,
  D: 32,
  block: 32,
};

/** Bounds that keep a run in the page quick (the float64 reference is dense). */
export const LIMITS = { N: [16, 2048], H: [1, 8], D: [16, 128], block: [8, 256] } as const;

const HASH_PREFIX = "#v=";

function toBase64Url(text: string): string {
  let bin = "";
  for (const byte of new TextEncoder().encode(text)) bin += String.fromCharCode(byte);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): string {
  const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** `#v=<base64url JSON>`: the whole variant, so a link reproduces it. */
export function encodeState(s: PlaygroundState): string {
  return HASH_PREFIX + toBase64Url(JSON.stringify(s));
}

/** The variant in a URL hash, or an error saying why it cannot be read (an empty hash is the default). */
export function decodeState(hash: string): { state: PlaygroundState; error?: string } {
  if (!hash.startsWith(HASH_PREFIX)) return { state: { ...DEFAULT_STATE } };
  try {
    const raw = JSON.parse(fromBase64Url(hash.slice(HASH_PREFIX.length))) as Partial<PlaygroundState>;
    const state = { ...DEFAULT_STATE };
    if (typeof raw.mask === "string") state.mask = raw.mask;
    if (typeof raw.score === "string") state.score = raw.score;
    for (const key of ["N", "H", "D", "block"] as const) {
      if (typeof raw[key] === "number") state[key] = clampSize(key, raw[key]);
    }
    return { state };
  } catch (e) {
    return { state: { ...DEFAULT_STATE }, error: `the link's variant could not be read (${e instanceof Error ? e.message : String(e)}); showing the default` };
  }
}

/**
 * Whether a decoded link carries mod code of its own (not the default's). Mods are JavaScript that
 * runs in the page, so the page waits for the reader's go-ahead before running a link's.
 */
export function carriesCode(decoded: { state: PlaygroundState; error?: string }): boolean {
  return !decoded.error && (decoded.state.mask !== DEFAULT_STATE.mask || decoded.state.score !== DEFAULT_STATE.score);
}

export function clampSize(key: keyof typeof LIMITS, value: number): number {
  const [lo, hi] = LIMITS[key];
  return Math.min(hi, Math.max(lo, Math.round(Number.isFinite(value) ? value : lo)));
}
