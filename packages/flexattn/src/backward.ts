/**
 * flexAttentionBackward(): the gradients of flexAttention for training, on the JS backend or on
 * WebGPU (the WGSL backward of @flexattn/webgpu).
 *
 * Given the forward's inputs, its out and LSE (flexAttention with returnLse: true) and ∂L/∂out,
 * returns ∂L/∂q, ∂L/∂k, ∂L/∂v and ∂L/∂ every captured f32 buffer of the score mod (a learnable
 * bias table, ALiBi slopes). Buffer gradients are bitwise deterministic.
 */
import { type BufferData, FlexAttnError } from "@flexattn/ir";
import { runJsBackward } from "@flexattn/codegen-js";
import {
  type BackwardInvocation, type KernelConfig, type StorageDType, type Tensor, backwardMods, contiguousStrides,
} from "@flexattn/template";
import {
  type FlexAttentionOptions, type ForwardFingerprint, autoBackend, checkTensor, forwardFingerprint, forwardOf, prepareCall, reportFallback,
  wgslUnavailable,
} from "./attention.js";
import { resolveSpec } from "./compile.js";
import { type KernelExecutor, findExecutor, jsExecutor } from "./registry.js";

export interface FlexAttentionBackwardOptions extends Omit<FlexAttentionOptions, "returnLse"> {
  /**
   * Config fields for the WGSL backward's kernels (tile, workgroupSize); the others come from the
   * best backward candidate that agrees. The JS backward tiles as the forward does (`config`).
   */
  backwardConfig?: Partial<KernelConfig>;
}

/** The gradient of one captured f32 buffer of the score mod. */
export interface BufferGradientOutput {
  /** The buffer's name in the traced score mod. */
  name: string;
  /** Its slot in the traced score mod's buffers. */
  slot: number;
  /** The captured data the gradient belongs to (compare with `myBuffer.data`). */
  data: BufferData;
  /** ∂L/∂data, same length. */
  grad: Float32Array;
}

export interface FlexAttentionGradients {
  /** [B, Hq, qLen, Dqk], contiguous, in the inputs' dtype. */
  dq: Tensor;
  /** [B, Hkv, kvLen, Dqk] (summed over each group's query heads under GQA). */
  dk: Tensor;
  /** [B, Hkv, kvLen, Dv]. */
  dv: Tensor;
  /** One per captured f32 buffer of the score mod that the output depends on, in slot order. */
  dBuffers: BufferGradientOutput[];
}

function alloc(shape: number[], dtype: StorageDType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: dtype === "f32" ? new Float32Array(n) : new Uint16Array(n), shape, dtype, strides: contiguousStrides(shape) };
}

function sameShape(name: string, t: Tensor, want: readonly number[]): void {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
    throw new FlexAttnError(`${name} must have shape [${want.join(", ")}], got [${t.shape.join(", ")}]`);
  }
}

function checkLse(lse: unknown, want: readonly number[]): Float32Array {
  const t = lse as Tensor;
  if (!t || typeof t !== "object" || !(t.data instanceof Float32Array) || !Array.isArray(t.shape)) {
    throw new FlexAttnError("lse must be the forward's f32 LSE tensor: call flexAttention(q, k, v, { ...options, returnLse: true }) and pass its lse");
  }
  sameShape("lse", t, want);
  const strides = t.strides ?? contiguousStrides(t.shape);
  if (strides.some((s, i) => s !== contiguousStrides(want)[i])) throw new FlexAttnError("lse must be contiguous [B, Hq, qLen], as flexAttention returns it");
  return t.data;
}

/** The executor the backward runs on: "auto" resolves as the forward's does (WGSL on a hardware adapter, else JS). */
async function backwardExecutor(choice: FlexAttentionOptions["backend"]): Promise<KernelExecutor> {
  if (choice === "js") return jsExecutor;
  if (choice === "auto") return autoBackend();
  if (choice === "wgsl") {
    const ex = await findExecutor("wgsl");
    if (!ex) throw wgslUnavailable();
    if (!ex.runBackward) throw new FlexAttnError("the registered wgsl executor has no backward (KernelExecutor.runBackward); use backend \"js\"");
    return ex;
  }
  throw new FlexAttnError(
    `flexAttentionBackward runs on the js and wgsl backends (got backend "${String(choice)}"); pass backend: "js", "wgsl" or "auto"`,
  );
}

/**
 * The gradients of `flexAttention(q, k, v, options)` for the loss whose gradient at the output is
 * `dOut`. `out` and `lse` are the forward's (`returnLse: true`); the options must be the forward's.
 * Runs where the forward would: "auto" is WGSL on a hardware WebGPU adapter (falling back to JS
 * if it fails), else JS.
 */
export async function flexAttentionBackward(
  q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dOut: Tensor, options: FlexAttentionBackwardOptions = {},
): Promise<FlexAttentionGradients> {
  const choice = options.backend ?? "auto";
  // Refuse an unknown or code-only backend before checking tensors.
  if (!["auto", "js", "wgsl"].includes(String(choice))) await backwardExecutor(choice);
  const { backwardConfig: _backwardConfig, ...forward } = options;
  const call = prepareCall(q, k, v, { ...forward, returnLse: true });
  const p = call.problem;
  const outShape = [p.batch, p.qHeads, p.qLen, p.vHeadDim];
  const o = checkTensor("out", out);
  const g = checkTensor("dOut", dOut);
  sameShape("out", o, outShape);
  sameShape("dOut", g, outShape);
  for (const [name, t] of [["out", o], ["dOut", g]] as const) {
    if (t.dtype !== p.dtype) throw new FlexAttnError(`${name} must have the inputs' dtype ${p.dtype}, got ${t.dtype}`);
  }
  const lseData = checkLse(lse, [p.batch, p.qHeads, p.qLen]);
  // Gradients of another attention than the forward's would be silently wrong.
  const recorded = forwardOf(lse);
  if (recorded) {
    const now = forwardFingerprint(call);
    const differ = (Object.keys(now) as (keyof ForwardFingerprint)[]).filter((key) => now[key] !== recorded[key]);
    if (differ.length) {
      const what = differ.map((key) => (key === "maskMod" || key === "scoreMod" ? key : `${key} (forward ${recorded[key]}, now ${now[key]})`));
      throw new FlexAttnError(`flexAttentionBackward: the options differ from the forward that produced this lse in ${what.join(", ")}; pass the forward's options`);
    }
  }
  const mods = backwardMods(call.score);
  const dq = alloc([p.batch, p.qHeads, p.qLen, p.qkHeadDim], p.dtype);
  const dk = alloc([p.batch, p.kvHeads, p.kvLen, p.qkHeadDim], p.dtype);
  const dv = alloc([p.batch, p.kvHeads, p.kvLen, p.vHeadDim], p.dtype);
  const dBuffers = mods.gradBuffers.map((gb) => ({
    name: gb.name, slot: gb.slot, data: call.score!.buffers[gb.slot].data!, grad: new Float32Array(gb.size),
  }));
  if (!call.empty) {
    const inv: BackwardInvocation = {
      ...call.invocation,
      strides: { ...call.invocation.strides, out: o.strides! },
      out: o.data, lse: lseData, dOut: g,
      dq: dq.data, dk: dk.data, dv: dv.data,
      gradStrides: { dq: dq.strides!, dk: dk.strides!, dv: dv.strides! },
      dBuffers: dBuffers.map((d) => d.grad),
    };
    const runJs = () => {
      // The JS backward tiles as the forward does: the same config resolution, on the js backend.
      const { spec } = resolveSpec({
        backend: "js", mask: call.mask, score: call.score, problem: { ...p, returnLse: true }, sparseBlock: call.sparseBlock, config: options.config,
      });
      runJsBackward(spec, inv);
    };
    const executor = await backwardExecutor(choice);
    if (executor === jsExecutor) runJs();
    else if (!executor.runBackward) {
      // Only "auto" gets here (backwardExecutor refuses an explicit "wgsl" without a backward).
      reportFallback(`the registered ${executor.backend} executor has no backward`);
      runJs();
    } else {
      try {
        await executor.runBackward(inv, options.backwardConfig);
      } catch (e) {
        // "auto" never fails for want of a GPU: a WebGPU error falls back to the JS backward.
        if (choice !== "auto") throw e;
        reportFallback(`the ${executor.backend} backward failed: ${e instanceof Error ? e.message : String(e)}`);
        runJs();
      }
    }
  }
  return { dq, dk, dv, dBuffers };
}
