/**
 * The JS backward kernel: generation (emitBackward through JsBackwardEmitter, wrapped in one
 * function), loading (new Function, cached by spec hash) and running on a BackwardInvocation.
 */
import { FlexAttnError, boundBuffers, canCompileSource } from "@flexattn/ir";
import {
  type AbiArg, type BackwardInvocation, type BackwardMods, type KernelSpec, backwardAbi, backwardMods, emitBackward, fullTablesOf,
  qTablesOf, specHash, stridesOf,
} from "@flexattn/template";
import { JsBackwardEmitter, gradBufferParamNames } from "./backward-emitter.js";
import { capturedParamNames } from "./emitter.js";
import { BF16, F16, RUNTIME } from "./generate.js";
import { runInterpretedBackward } from "./interpreted.js";

export const JS_BACKWARD_ENTRY = "flexattn_bwd";

export interface JsBackwardKernel {
  readonly source: string;
  readonly entry: string;
  readonly abi: readonly AbiArg[];
  /** The spec's hash for the js backward (differs from the forward's). */
  readonly specHash: string;
  readonly mods: BackwardMods;
}

/** The backward kernel's parameter names, in backward-ABI order. */
function backwardParams(spec: KernelSpec, mods: BackwardMods): string[] {
  const captured = capturedParamNames(spec);
  const grads = gradBufferParamNames(mods);
  let c = 0;
  let g = 0;
  return backwardAbi(spec, mods).map((a) => (a.role === "captured" ? captured[c++] : a.name.startsWith("d_score_") ? grads[g++] : a.name));
}

export function generateJsBackward(spec: KernelSpec): JsBackwardKernel {
  const mods = backwardMods(spec.score);
  const e = new JsBackwardEmitter(spec, mods);
  const codes = emitBackward(spec, e, mods);
  const body = codes.flatMap((c) => c.lines ?? []);
  // Helpers by name: a product helper shared by several tile helpers is emitted once.
  const functions = new Map(codes.flatMap((c) => Object.entries(c.functions ?? {})));
  const source = [
    `// flexattn JS backward kernel — generated, do not edit.`,
    `// ${spec.mask ? `mask ${spec.mask.key}` : "no mask"}, ${spec.score ? `score mod ${spec.score.key}` : "identity score"}; qk dim ${spec.qkHeadDim}, v dim ${spec.vHeadDim}, ${spec.dtype}; tile ${spec.config.blockM}×${spec.config.blockN}; BlockMask blocks ${spec.sparseBlock.join("×")}.`,
    `// Passes: preprocess (delta), dK/dV (+ buffer-gradient partials), dQ, the partials reduced in program order.`,
    `"use strict";`,
    ...RUNTIME,
    ...(spec.dtype === "bf16" ? BF16 : spec.dtype === "f16" ? F16 : []),
    ...[...functions.values()].flat(),
    `function ${JS_BACKWARD_ENTRY}(${backwardParams(spec, mods).join(", ")}) {`,
    ...body.map((l) => "  " + l),
    `}`,
    ``,
  ].join("\n");
  return { source, entry: JS_BACKWARD_ENTRY, abi: backwardAbi(spec, mods), specHash: specHash(spec, "js-backward"), mods };
}

/** The generated kernel: the backward ABI's positional arguments. */
type JsBackwardFn = (...args: unknown[]) => void;
const cache = new Map<string, { kernel: JsBackwardKernel; fn: JsBackwardFn }>();

/** The generated and loaded backward kernel of a spec (cached by spec hash). */
export function loadJsBackward(spec: KernelSpec): { kernel: JsBackwardKernel; fn: JsBackwardFn } {
  const hash = specHash(spec, "js-backward");
  const hit = cache.get(hash);
  if (hit) return hit;
  const kernel = generateJsBackward(spec);
  let fn: JsBackwardFn;
  try {
    fn = new Function(`${kernel.source}\nreturn ${kernel.entry};`)() as JsBackwardFn;
  } catch (e) {
    throw new FlexAttnError(`codegen-js: the generated backward kernel does not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  const entry = { kernel, fn };
  cache.set(hash, entry);
  return entry;
}

/** Run the JS backward of `spec` on an invocation: writes dq, dk, dv and dBuffers. */
export function runJsBackward(spec: KernelSpec, inv: BackwardInvocation): void {
  // Under a Content-Security-Policy without 'unsafe-eval': the same gradients from the float64 reference.
  const compiled = canCompileSource() ? loadJsBackward(spec) : null;
  const p = inv.problem;
  if (p.dtype !== spec.dtype || p.qkHeadDim !== spec.qkHeadDim || p.vHeadDim !== spec.vHeadDim) {
    throw new FlexAttnError(`runJsBackward: kernel compiled for ${spec.dtype} head dims ${spec.qkHeadDim}/${spec.vHeadDim}, inputs are ${p.dtype} ${p.qkHeadDim}/${p.vHeadDim}`);
  }
  if ((inv.mask?.key ?? null) !== (spec.mask?.key ?? null) || (inv.score?.key ?? null) !== (spec.score?.key ?? null)) {
    throw new FlexAttnError("runJsBackward: the invocation's mods are not the ones the kernel was compiled for");
  }
  const t = inv.blockMask;
  if (t.blockSize[0] !== spec.sparseBlock[0] || t.blockSize[1] !== spec.sparseBlock[1]) {
    throw new FlexAttnError(`runJsBackward: kernel compiled for BlockMask blocks ${spec.sparseBlock.join("×")}, the BlockMask has ${t.blockSize.join("×")}`);
  }
  const grads = (compiled?.kernel.mods ?? backwardMods(spec.score)).gradBuffers;
  if (inv.dBuffers.length !== grads.length || inv.dBuffers.some((d, i) => !(d instanceof Float32Array) || d.length !== grads[i].size)) {
    throw new FlexAttnError(`runJsBackward: expected ${grads.length} buffer gradient output(s) of sizes [${grads.map((g) => g.size).join(", ")}]`);
  }
  if (!compiled) {
    runInterpretedBackward(spec, inv);
    return;
  }
  const { fn } = compiled;
  const captured = [...(inv.mask ? boundBuffers(inv.mask) : []), ...(inv.score ? boundBuffers(inv.score) : [])];
  const full = fullTablesOf(t);
  const qt = qTablesOf(t);
  const st = inv.strides;
  const gs = inv.gradStrides;
  const dos = stridesOf(inv.dOut);
  const s3 = (x: readonly number[]) => [x[0], x[1], x[2]];
  fn(
    inv.q.data, inv.k.data, inv.v.data, inv.out, inv.dOut.data, inv.lse, inv.dq, inv.dk, inv.dv,
    t.kvNumBlocks, t.kvIndices, full.fullKvNumBlocks, full.fullKvIndices, qt.qNumBlocks, qt.qIndices, qt.fullQNumBlocks, qt.fullQIndices,
    ...captured, ...inv.dBuffers,
    p.batch, p.qHeads, p.kvHeads, p.qLen, p.kvLen,
    ...s3(st.q), ...s3(st.k), ...s3(st.v), ...s3(st.out), ...s3(dos), ...s3(gs.dq), ...s3(gs.dk), ...s3(gs.dv),
    t.Bm, t.Hm, t.numQBlocks, t.numKvBlocks,
    p.scale, p.qOffset, p.kvOffset,
  );
}
