/**
 * "Write a backend": a complete, small backend for the flexattn template. It generates a plain,
 * scalar JavaScript kernel (one query row at a time, no tiling tricks), readable enough to show
 * every seam a real backend fills. The docs page includes this file region by region, and
 * test/guide.test.ts typechecks it and runs it through the conformance suite, so it cannot rot.
 */
// #region imports
import {
  type BinaryOp, type BufferSpec, type DType, type ExprRenderer, FlexAttnError, type InputName, type ModGraph,
  type UnaryOp, boundBuffers, renderGraph,
} from "@flexattn/ir";
import {
  type BlockKind, type CodegenBackend, DEFAULT_CONFIG, type KernelArtifact, type KernelConfig, type KernelInvocation,
  type KernelSpec, type TemplateEmitter, artifactSpecInfo, capturedBuffers, emitTemplate, fitTile, fullTablesOf,
  kernelAbi, specHash,
} from "@flexattn/template";
// #endregion imports

// #region renderer
/**
 * The renderer: one target expression per IR op, with exactly the semantics of @flexattn/ir's
 * evaluator (i32 wraps, Python floor division, f32 rounding, saturating f32 → i32, guarded loads).
 * Booleans are 0 / 1, as in the evaluator.
 */
const f32 = (x: string) => `Math.fround(${x})`;

export function tinyRenderer(inputs: Record<InputName, string>, bufferName: (spec: BufferSpec, slot: number) => string): ExprRenderer {
  return {
    constant(value, dtype) {
      const v = typeof value === "boolean" ? Number(value) : value;
      return dtype === "f32" ? f32(String(v)) : `(${v})`;
    },
    input: (name) => inputs[name],
    load(spec, slot, [i, j]) {
      const buf = bufferName(spec, slot);
      return spec.shape.length === 1
        ? `$load1(${buf}, ${i}, ${spec.shape[0]})`
        : `$load2(${buf}, ${i}, ${j}, ${spec.shape[0]}, ${spec.shape[1]})`;
    },
    unary(op: UnaryOp, x: string, argType: DType) {
      switch (op) {
        case "neg": return argType === "i32" ? `(-${x} | 0)` : f32(`-${x}`);
        case "not": return `(${x} ? 0 : 1)`;
        case "abs": return argType === "i32" ? `(Math.abs(${x}) | 0)` : f32(`Math.abs(${x})`);
        case "exp": return f32(`Math.exp(${x})`);
        case "exp2": return f32(`Math.pow(2, ${x})`);
        case "log": return f32(`Math.log(${x})`);
        case "log2": return f32(`Math.log2(${x})`);
        case "sqrt": return f32(`Math.sqrt(${x})`);
        case "tanh": return f32(`Math.tanh(${x})`);
        case "sigmoid": return f32(`1 / (1 + Math.exp(-${x}))`);
        case "toF32": return f32(x);
        case "toI32": return argType === "f32" ? `$toI32(${x})` : `(${x} | 0)`;
      }
    },
    binary(op: BinaryOp, a: string, b: string, argType: DType) {
      const int = argType === "i32";
      switch (op) {
        case "add": return int ? `((${a} + ${b}) | 0)` : f32(`${a} + ${b}`);
        case "sub": return int ? `((${a} - ${b}) | 0)` : f32(`${a} - ${b}`);
        case "mul": return int ? `Math.imul(${a}, ${b})` : f32(`${a} * ${b}`);
        case "div": return f32(`${a} / ${b}`);
        case "floorDiv": return int ? `$floorDiv(${a}, ${b})` : f32(`Math.floor(${f32(`${a} / ${b}`)})`);
        case "mod": return int ? `$mod(${a}, ${b})` : f32(`${a} - ${f32(`Math.floor(${f32(`${a} / ${b}`)}) * ${b}`)}`);
        case "min": return `Math.min(${a}, ${b})`;
        case "max": return `Math.max(${a}, ${b})`;
        case "lt": return `(${a} < ${b} ? 1 : 0)`;
        case "le": return `(${a} <= ${b} ? 1 : 0)`;
        case "gt": return `(${a} > ${b} ? 1 : 0)`;
        case "ge": return `(${a} >= ${b} ? 1 : 0)`;
        case "eq": return `(${a} === ${b} ? 1 : 0)`;
        case "ne": return `(${a} !== ${b} ? 1 : 0)`;
        case "and": return `(${a} & ${b})`;
        case "or": return `(${a} | ${b})`;
      }
    },
    where: (cond, a, b) => `(${cond} ? ${a} : ${b})`,
    declare: (name, _dtype, expr) => `const ${name} = ${expr};`,
  };
}

/** The runtime the rendered expressions call, spelled out in every generated kernel. */
const RUNTIME = `
function $floorDiv(a, b) { return b === 0 ? 0 : Math.floor(a / b) | 0; }
function $mod(a, b) { if (b === 0) return 0; let r = a % b; if (r !== 0 && (r < 0) !== (b < 0)) r += b; return r | 0; }
function $toI32(x) { return x !== x ? 0 : x >= 2147483648 ? 2147483647 : x <= -2147483649 ? -2147483648 : Math.trunc(x) | 0; }
function $load1(buf, i, n) { return i >= 0 && i < n ? buf[i] : 0; }
function $load2(buf, i, j, rows, cols) { return i >= 0 && i < rows && j >= 0 && j < cols ? buf[i * cols + j] : 0; }`;
// #endregion renderer

// #region emitter
/**
 * The emitter: one method per template step. Each returns lines of code; emitTemplate walks the
 * template's step list (the same for every backend) and hands each block loop its emitted body.
 */
class TinyEmitter implements TemplateEmitter<string[]> {
  constructor(private readonly spec: KernelSpec) {}

  /** A mod rendered at the point of use; its temporaries are prefixed so two mods never clash. */
  private mod(graph: ModGraph, prefix: string): { lines: string[]; result: string } {
    const inputs = { score: "s", b: "b", h: "h", q: "(i + q_offset)", kv: "(kv + kv_offset)" } as const;
    const names = capturedBuffers(this.spec);
    const owner = graph === this.spec.mask ? "mask" : "score";
    const bufferName = (_spec: BufferSpec, slot: number) => `cap${names.findIndex((c) => c.owner === owner && c.slot === slot)}`;
    const r = renderGraph(graph, tinyRenderer(inputs, bufferName), prefix);
    return { lines: r.statements, result: r.result };
  }

  program() {
    return [
      "for (let b = 0; b < batch; b++) for (let h = 0; h < q_heads; h++) for (let m = 0; m * BLOCK_M < q_len; m++) {",
      "  const hkv = Math.floor(h / (q_heads / kv_heads));",
      "  const row = ((b % sparse_b) * sparse_h + (h % sparse_h)) * sparse_q_blocks + Math.floor((m * BLOCK_M) / SPARSE_Q);",
      "  for (let i = m * BLOCK_M; i < Math.min((m + 1) * BLOCK_M, q_len); i++) {",
    ];
  }
  loadQ() {
    return ["const qBase = b * stride_q_b + h * stride_q_h + i * stride_q_s;"];
  }
  initState() {
    return ["let m_i = -Infinity, l_i = 0;", `const acc = new Float32Array(${this.spec.vHeadDim});`];
  }
  blockLoop(blocks: BlockKind, body: string[][]) {
    const [num, idx] = blocks === "partial" ? ["kv_num_blocks", "kv_indices"] : ["full_kv_num_blocks", "full_kv_indices"];
    return [
      `// ${blocks} blocks${blocks === "partial" ? ": the mask applies" : ": every key kept, no mask"}`,
      `for (let j = 0; j < ${num}[row]; j++) {`,
      `  const n = ${idx}[row * sparse_kv_blocks + j];`,
      "  for (let kv = n * SPARSE_KV; kv < (n + 1) * SPARSE_KV; kv++) {",
      ...body.flat().map((l) => `    ${l}`),
      "  }",
      "}",
    ];
  }
  loadK() {
    return ["const kBase = b * stride_k_b + hkv * stride_k_h + kv * stride_k_s;"];
  }
  qk() {
    return [
      "let s = 0;",
      `for (let d = 0; d < ${this.spec.qkHeadDim}; d++) s += q[qBase + d] * k[kBase + d];`,
      "s = Math.fround(s * scale);",
    ];
  }
  scoreMod() {
    const r = this.mod(this.spec.score!, "sc");
    return [...r.lines, `s = ${r.result};`];
  }
  maskMod() {
    const r = this.mod(this.spec.mask!, "mk");
    return [...r.lines, `if (!${r.result}) continue;`];
  }
  bounds() {
    return ["if (kv >= kv_len) continue;"];
  }
  onlineSoftmax() {
    return [
      "const s2 = s * Math.LOG2E;",
      "if (s2 === -Infinity) continue; // a score mod may mask a key too",
      "const m_new = Math.max(m_i, s2);",
      "const alpha = Math.pow(2, m_i - m_new), p = Math.pow(2, s2 - m_new);",
      "l_i = l_i * alpha + p;",
      "if (alpha !== 1) for (let d = 0; d < acc.length; d++) acc[d] *= alpha;",
      "m_i = m_new;",
    ];
  }
  loadV() {
    return ["const vBase = b * stride_v_b + hkv * stride_v_h + kv * stride_v_s;"];
  }
  accumulate() {
    return ["for (let d = 0; d < acc.length; d++) acc[d] += p * v[vBase + d];"];
  }
  epilogue() {
    return [
      "const oBase = b * stride_out_b + h * stride_out_h + i * stride_out_s;",
      "for (let d = 0; d < acc.length; d++) out[oBase + d] = l_i === 0 ? 0 : acc[d] / l_i;",
      ...(this.spec.returnLse ? ["lse[(b * q_heads + h) * q_len + i] = l_i === 0 ? -Infinity : Math.LN2 * (m_i + Math.log2(l_i));"] : []),
      "  }", // closes the row loop of program()
      "}", // closes the program loop
    ];
  }
}
// #endregion emitter

// #region backend
export const TINY_ENTRY = "tiny_fwd";

/** Parameter names in ABI order; captured buffers are `cap0`, `cap1`, … (their ABI names may repeat). */
function parameters(spec: KernelSpec): string[] {
  let c = 0;
  return kernelAbi(spec).map((a) => (a.role === "captured" ? `cap${c++}` : a.name));
}

export function generateTiny(spec: KernelSpec): KernelArtifact {
  if (spec.dtype !== "f32") throw new FlexAttnError(`the tiny backend supports f32 only, got ${spec.dtype}`);
  const body = emitTemplate(spec, new TinyEmitter(spec)).flat();
  const source = [
    "// flexattn tiny kernel (the \"write a backend\" guide): generated, do not edit.",
    '"use strict";',
    RUNTIME.trim(),
    `const BLOCK_M = ${spec.config.blockM}, SPARSE_Q = ${spec.sparseBlock[0]}, SPARSE_KV = ${spec.sparseBlock[1]};`,
    `function ${TINY_ENTRY}(${parameters(spec).join(", ")}) {`,
    ...body.map((l) => `  ${l}`),
    "}",
  ].join("\n");
  return {
    format: "flexattn.artifact/1",
    // A new backend adds its name to BackendName in @flexattn/template; the guide reuses "js"'s
    // slot for its artifacts (they are JavaScript) so that it needs no change outside this file.
    backend: "js",
    source,
    entry: TINY_ENTRY,
    abi: kernelAbi(spec),
    launch: { grid: "[cdiv(q_len, blockM), q_heads, batch]", threadsPerProgram: 1 },
    config: spec.config,
    specHash: specHash(spec, "tiny"),
    spec: artifactSpecInfo(spec),
  };
}

/**
 * The rest of the CodegenBackend contract: the configs it can run, best guess first. Element [0]
 * is its default; the autotuner may time the others. Tiles must divide the BlockMask's blocks.
 */
export const tinyBackend = {
  sourceExtension: ".js",
  configCandidates(_problem, sparseBlock): KernelConfig[] {
    return [16, 32, 1].map((rows) => ({ ...DEFAULT_CONFIG, blockM: fitTile(rows, sparseBlock[0]), blockN: fitTile(16, sparseBlock[1]), numWarps: 1, numStages: 1 }));
  },
} satisfies Omit<CodegenBackend, "name" | "generate">;
// #endregion backend

// #region run
/** Load a tiny artifact and run it: the arguments are the invocation's, in the ABI's order. */
export function runTiny(artifact: KernelArtifact, inv: KernelInvocation): void {
  const kernel = new Function(`${artifact.source}\nreturn ${artifact.entry};`)() as (...args: unknown[]) => void;
  const p = inv.problem;
  const t = inv.blockMask;
  const { fullKvNumBlocks, fullKvIndices } = fullTablesOf(t);
  const captured = [...(inv.mask ? boundBuffers(inv.mask) : []), ...(inv.score ? boundBuffers(inv.score) : [])];
  const named: Record<string, unknown> = {
    q: inv.q.data, k: inv.k.data, v: inv.v.data, out: inv.out, lse: inv.lse,
    kv_num_blocks: t.kvNumBlocks, kv_indices: t.kvIndices, full_kv_num_blocks: fullKvNumBlocks, full_kv_indices: fullKvIndices,
    batch: p.batch, q_heads: p.qHeads, kv_heads: p.kvHeads, q_len: p.qLen, kv_len: p.kvLen,
    sparse_b: t.Bm, sparse_h: t.Hm, sparse_q_blocks: t.numQBlocks, sparse_kv_blocks: t.numKvBlocks,
    scale: p.scale, q_offset: p.qOffset, kv_offset: p.kvOffset,
  };
  for (const tensor of ["q", "k", "v", "out"] as const) {
    ["b", "h", "s"].forEach((dim, i) => {
      named[`stride_${tensor}_${dim}`] = inv.strides[tensor][i];
    });
  }
  let c = 0;
  kernel(...artifact.abi.map((a) => (a.role === "captured" ? captured[c++] : named[a.name])));
}
// #endregion run
