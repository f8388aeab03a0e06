/** Generate the JS kernel for a spec: emitTemplate through the JS emitter, wrapped in one function. */
import { FlexAttnError } from "@flexattn/ir";
import {
  type KernelArtifact, type KernelSpec, artifactSpecInfo, emitTemplate, kernelAbi, specHash,
} from "@flexattn/template";
import { DEFAULT_JS_OPTIONS, JsEmitter, type JsEmitterOptions, capturedParamNames } from "./emitter.js";

export const JS_ENTRY = "flexattn_fwd";

/** The IR runtime (Python floor semantics, saturating f32 → i32), spelled out so the source stands alone. */
export const RUNTIME = [
  `const $rt = {`,
  `  floorDivI32(a, b) { return b === 0 ? 0 : Math.floor(a / b) | 0; },`,
  `  modI32(a, b) { if (b === 0) return 0; let r = a % b; if (r !== 0 && (r < 0) !== (b < 0)) r += b; return r | 0; },`,
  `  f32ToI32(x) { return x !== x ? 0 : x >= 2147483648 ? 2147483647 : x <= -2147483649 ? -2147483648 : Math.trunc(x) | 0; },`,
  `};`,
];

export const BF16 = [
  `const $f = new Float32Array(1), $u = new Uint32Array($f.buffer);`,
  `function decode(bits) { $u[0] = bits << 16; return $f[0]; }`,
  `function encode(x) {`,
  `  $f[0] = x; const u = $u[0];`,
  `  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;`,
  `  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;`,
  `}`,
];

export const F16 = [
  `const $f = new Float32Array(1), $u = new Uint32Array($f.buffer);`,
  `function decode(bits) {`,
  `  const sign = bits & 0x8000 ? -1 : 1, exp = (bits >>> 10) & 0x1f, mant = bits & 0x3ff;`,
  `  if (exp === 0) return sign * mant * 5.960464477539063e-8;`,
  `  if (exp === 0x1f) return mant ? NaN : sign * Infinity;`,
  `  return sign * (1 + mant / 1024) * Math.pow(2, exp - 15);`,
  `}`,
  `function encode(x) {`,
  `  $f[0] = x; const u = $u[0];`,
  `  const sign = (u >>> 16) & 0x8000, exp = (u >>> 23) & 0xff; let mant = u & 0x7fffff;`,
  `  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);`,
  `  let e = exp - 127 + 15;`,
  `  if (e >= 0x1f) return sign | 0x7c00;`,
  `  if (e <= 0) {`,
  `    if (e < -10) return sign;`,
  `    mant |= 0x800000;`,
  `    const shift = 14 - e, half = 1 << (shift - 1);`,
  `    let r = mant >>> shift; const rem = mant & ((1 << shift) - 1);`,
  `    if (rem > half || (rem === half && (r & 1))) r++;`,
  `    return sign | r;`,
  `  }`,
  `  let r = mant >>> 13; const rem = mant & 0x1fff;`,
  `  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) { r++; if (r === 0x400) { r = 0; e++; if (e >= 0x1f) return sign | 0x7c00; } }`,
  `  return sign | (e << 10) | r;`,
  `}`,
];

export const DECODE_ALL = [
  `function decodeAll(bits) {`,
  `  const out = new Float32Array(bits.length);`,
  `  for (let i = 0; i < bits.length; i++) out[i] = decode(bits[i]);`,
  `  return out;`,
  `}`,
];

/** The kernel's parameter names, in ABI order (captured buffers renamed to unique identifiers). */
export function kernelParams(spec: KernelSpec): string[] {
  const captured = capturedParamNames(spec);
  let c = 0;
  return kernelAbi(spec).map((a) => (a.role === "captured" ? captured[c++] : a.name));
}

/** Options for the JS emitter, read from config.options (`dotUnroll`, `accUnroll`: 1, 2, 4 or 8). */
export function jsOptions(spec: KernelSpec): JsEmitterOptions {
  const o = spec.config.options ?? {};
  const pick = (key: "dotUnroll" | "accUnroll"): number => {
    const v = o[key];
    if (v === undefined) return DEFAULT_JS_OPTIONS[key];
    if (v !== 1 && v !== 2 && v !== 4 && v !== 8) {
      throw new FlexAttnError(`config.options.${key} for the js backend must be 1, 2, 4 or 8, got ${String(v)}`);
    }
    return v;
  };
  const cols = (key: "accCols" | "qkCols"): number => {
    const v = o[key] ?? DEFAULT_JS_OPTIONS[key];
    if (v !== 1 && v !== 2 && v !== 4) throw new FlexAttnError(`config.options.${key} for the js backend must be 1, 2 or 4, got ${String(v)}`);
    return v;
  };
  return { dotUnroll: pick("dotUnroll"), accUnroll: pick("accUnroll"), accCols: cols("accCols"), qkCols: cols("qkCols") };
}

/** The generated module body: helpers and `function flexattn_fwd(...)`, no exports, no data. */
export function generateJsSource(spec: KernelSpec): string {
  const e = new JsEmitter(spec, jsOptions(spec));
  const codes = emitTemplate(spec, e);
  const [program, ...rest] = codes;
  const body = [...program.lines!, ...rest.flatMap((c) => c.lines ?? []).map((l) => "      " + l), ...program.close!];
  const functions = new Map<string, string[]>();
  for (const c of codes) for (const [name, fn] of Object.entries(c.functions ?? {})) functions.set(name, fn);
  const params = kernelParams(spec);
  const describe = [
    spec.mask ? `mask ${spec.mask.key}` : "no mask",
    spec.score ? `score mod ${spec.score.key}` : "identity score",
  ].join(", ");
  return [
    `// flexattn JS kernel — generated, do not edit.`,
    `// ${describe}; qk dim ${spec.qkHeadDim}, v dim ${spec.vHeadDim}, ${spec.dtype}; tile ${spec.config.blockM}×${spec.config.blockN}; BlockMask blocks ${spec.sparseBlock.join("×")}.`,
    `// Arguments follow the flexattn kernel ABI order; one call runs the whole grid.`,
    `"use strict";`,
    ...RUNTIME,
    ...(spec.dtype === "bf16" ? [...BF16, ...DECODE_ALL] : spec.dtype === "f16" ? [...F16, ...DECODE_ALL] : []),
    ...[...functions.values()].flat(),
    `function ${JS_ENTRY}(${params.join(", ")}) {`,
    ...body.map((l) => "  " + l),
    `}`,
    ``,
  ].join("\n");
}

export function generateJs(spec: KernelSpec): KernelArtifact {
  return {
    format: "flexattn.artifact/1",
    backend: "js",
    source: generateJsSource(spec),
    entry: JS_ENTRY,
    abi: kernelAbi(spec),
    launch: { grid: "[cdiv(q_len, blockM), q_heads, batch]", threadsPerProgram: 1 },
    config: spec.config,
    specHash: specHash(spec, "js"),
    spec: artifactSpecInfo(spec),
  };
}
