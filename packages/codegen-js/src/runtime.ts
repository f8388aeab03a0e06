/** Load a JS artifact (new Function, cached by spec hash) and run it on a KernelInvocation. */
import { FlexAttnError, type ModGraph, boundBuffers, canCompileSource } from "@flexattn/ir";
import { type KernelArtifact, type KernelInvocation, fullTablesOf } from "@flexattn/template";
import { runInterpretedKernel } from "./interpreted.js";

// biome-ignore lint/suspicious/noExplicitAny: generated kernels take the ABI's positional arguments
export type JsKernelFn = (...args: any[]) => void;

const cache = new Map<string, { source: string; fn: JsKernelFn }>();

/** Turn an artifact's source into a callable kernel; cached by spec hash (and source). */
export function loadJsKernel(artifact: KernelArtifact): JsKernelFn {
  if (artifact.backend !== "js") throw new FlexAttnError(`loadJsKernel: artifact is for the ${artifact.backend} backend, not js`);
  const hit = cache.get(artifact.specHash);
  if (hit && hit.source === artifact.source) return hit.fn;
  if (!canCompileSource()) {
    throw new FlexAttnError(
      "loadJsKernel: this environment forbids compiling code from strings (a Content-Security-Policy without " +
        "'unsafe-eval'); runJsKernel runs the same kernel through the IR evaluator instead",
    );
  }
  let fn: JsKernelFn;
  try {
    fn = new Function(`${artifact.source}\nreturn ${artifact.entry};`)() as JsKernelFn;
  } catch (e) {
    throw new FlexAttnError(`loadJsKernel: the artifact's source does not load: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof fn !== "function") throw new FlexAttnError(`loadJsKernel: entry ${artifact.entry} is not a function`);
  cache.set(artifact.specHash, { source: artifact.source, fn });
  return fn;
}

/** Number of kernels currently loaded (for tests and diagnostics). */
export function loadedJsKernels(): number {
  return cache.size;
}

function checkGraph(what: "mask" | "score", graph: ModGraph | null, key: string | null): void {
  if ((graph?.key ?? null) !== key) {
    throw new FlexAttnError(
      `runJsKernel: the invocation's ${what} mod ${graph ? `(key ${graph.key})` : "(none)"} is not the one the kernel was compiled for ${key ? `(key ${key})` : "(none)"}`,
    );
  }
}

/** The kernel's arguments in ABI order. */
export function jsKernelArgs(artifact: KernelArtifact, inv: KernelInvocation): unknown[] {
  const p = inv.problem;
  const a = artifact.spec;
  if (p.dtype !== a.dtype) throw new FlexAttnError(`runJsKernel: kernel compiled for ${a.dtype}, inputs are ${p.dtype}`);
  if (p.qkHeadDim !== a.qkHeadDim || p.vHeadDim !== a.vHeadDim) {
    throw new FlexAttnError(
      `runJsKernel: kernel compiled for head dims ${a.qkHeadDim}/${a.vHeadDim}, inputs have ${p.qkHeadDim}/${p.vHeadDim}`,
    );
  }
  if (p.returnLse && !a.returnLse) throw new FlexAttnError("runJsKernel: the problem asks for the LSE but the kernel does not write it");
  checkGraph("mask", inv.mask, a.maskKey);
  checkGraph("score", inv.score, a.scoreKey);
  const t = inv.blockMask;
  if (t.blockSize[0] !== a.sparseBlock[0] || t.blockSize[1] !== a.sparseBlock[1]) {
    throw new FlexAttnError(
      `runJsKernel: kernel compiled for BlockMask blocks ${a.sparseBlock.join("×")}, the BlockMask has ${t.blockSize.join("×")}`,
    );
  }
  for (const name of ["q", "k", "v", "out"] as const) {
    const s = inv.strides[name];
    if (s.length !== 4 || s[3] !== 1) throw new FlexAttnError(`runJsKernel: ${name} must have head-dim stride 1, got strides [${s.join(", ")}]`);
  }
  const so = inv.strides.out;
  const outSpan = 1 + (p.batch - 1) * so[0] + (p.qHeads - 1) * so[1] + (p.qLen - 1) * so[2] + p.vHeadDim - 1;
  if (inv.out.length < outSpan) {
    throw new FlexAttnError(`runJsKernel: the output buffer (${inv.out.length} elements) is too small for its strides (needs ${outSpan})`);
  }
  if (a.returnLse && inv.lse.length < p.batch * p.qHeads * p.qLen) {
    throw new FlexAttnError(`runJsKernel: the LSE buffer needs ${p.batch * p.qHeads * p.qLen} elements, has ${inv.lse.length}`);
  }
  const captured = [...(inv.mask ? boundBuffers(inv.mask) : []), ...(inv.score ? boundBuffers(inv.score) : [])];
  captured.forEach((d, i) => {
    const want = a.buffers[i];
    const dtype = d instanceof Int32Array ? "i32" : "f32";
    if (!want || dtype !== want.dtype || d.length !== want.shape.reduce((x, y) => x * y, 1)) {
      throw new FlexAttnError(`runJsKernel: captured buffer ${i} does not match the kernel's ${want?.dtype}[${want?.shape.join(", ")}]`);
    }
  });
  const { fullKvNumBlocks, fullKvIndices } = fullTablesOf(t);
  const st = inv.strides;
  return [
    inv.q.data, inv.k.data, inv.v.data, inv.out, inv.lse,
    t.kvNumBlocks, t.kvIndices, fullKvNumBlocks, fullKvIndices,
    ...captured,
    p.batch, p.qHeads, p.kvHeads, p.qLen, p.kvLen,
    st.q[0], st.q[1], st.q[2], st.k[0], st.k[1], st.k[2], st.v[0], st.v[1], st.v[2], st.out[0], st.out[1], st.out[2],
    t.Bm, t.Hm, t.numQBlocks, t.numKvBlocks,
    p.scale, p.qOffset, p.kvOffset,
  ];
}

/**
 * Run a JS artifact on an invocation: writes inv.out (and inv.lse when the kernel returns it).
 * Where code cannot be compiled from strings, the interpreted kernel runs instead.
 */
export function runJsKernel(artifact: KernelArtifact, inv: KernelInvocation): void {
  const args = jsKernelArgs(artifact, inv);
  if (canCompileSource()) loadJsKernel(artifact)(...args);
  else runInterpretedKernel(inv);
}
