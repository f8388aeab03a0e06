/**
 * The WGSL renderer against the IR evaluator, op by op, on edge values, executed on the WebGPU
 * device (CI: llvmpipe). Integer, boolean and conversion ops must agree bit for bit; the f32
 * transcendental ops within WGSL's accuracy bounds.
 */
import { describe, expect, it } from "vitest";
import {
  BINARY_OPS, type BinaryOp, type BufferSpec, type DType, type IRNode, type ModGraph, type UnaryOp, UNARY_OPS, evaluate,
  makeGraph, renderGraph,
} from "@flexattn/ir";
import { WGSL_LOAD_PRELUDE, WGSL_MOD_PRELUDE, WGSL_TYPE, wgslRenderer } from "@flexattn/codegen-wgsl";
import type { FlexDevice } from "../src/index.js";
import { testDevice } from "./setup.js";

const device = await testDevice();

const I32 = [0, 1, -1, 2, -2, 3, -3, 7, -7, 10, -10, 2147483647, -2147483648, 123456789, -987654321, 65536, 46341];
const F32 = [0, -0, 1, -1, 0.5, -2.5, 3, -3, 7.25, 1e-3, 1e30, -1e30, Infinity, -Infinity, NaN, 2147483648, -2147483648, 2147483520, -2147483904, 1e10, -1e10, 1.5, -1.5, 0.1];
const BOOL = [0, 1];

type Operand = { dtype: DType; values: number[] };

/** A graph `op(x[q], y[q])` (or `op(x[q])`) over captured operand buffers; bools are `x != 0`. */
function opGraph(op: UnaryOp | BinaryOp | "where", types: DType[], resultType: DType, n: number): ModGraph {
  const nodes: IRNode[] = [{ op: "input", dtype: "i32", args: [], input: "q" }];
  const buffers: BufferSpec[] = [];
  const operand = (t: DType) => {
    const slot = buffers.length;
    buffers.push({ name: `x${slot}`, dtype: t === "f32" ? "f32" : "i32", shape: [n] });
    nodes.push({ op: "load", dtype: t === "f32" ? "f32" : "i32", args: [0], buffer: slot });
    if (t !== "bool") return nodes.length - 1;
    nodes.push({ op: "const", dtype: "i32", args: [], value: 0 });
    nodes.push({ op: "ne", dtype: "bool", args: [nodes.length - 2, nodes.length - 1] });
    return nodes.length - 1;
  };
  const args = types.map(operand);
  nodes.push({ op, dtype: resultType, args });
  return makeGraph("score", nodes, buffers);
}

/** Evaluate `graph` on the device for n points (q = 0..n-1), returning raw 32-bit results. */
async function runOnDevice(dev: FlexDevice, graph: ModGraph, data: (Int32Array | Float32Array)[]): Promise<Uint32Array> {
  const { device } = dev;
  const n = data.length > 1 || graph.buffers.length ? data[data.length - 1].length : 1;
  const offsets: number[] = [];
  let words = 0;
  for (const d of data) offsets.push((words += d.length) - d.length);
  const r = wgslRenderer({
    inputs: { q: "q", b: "0i", h: "0i", kv: "q", score: "0.0f" },
    bufferBase: (slot) => `${offsets[slot]}u`,
    specials: { posInf: "sp[0]", negInf: "sp[1]", nan: "sp[2]" },
  });
  const { statements, result } = renderGraph(graph, r, "t");
  const rootType = graph.nodes[graph.nodes.length - 1].dtype;
  const toBits = rootType === "bool" ? `select(0u, 1u, ${result})` : `bitcast<u32>(${result})`;
  const code = `
@group(0) @binding(0) var<storage, read> fa_cap: array<u32>;
@group(0) @binding(1) var<storage, read> sp: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
${WGSL_MOD_PRELUDE}
${WGSL_LOAD_PRELUDE}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = i32(gid.x);
  if (q >= ${n}) { return; }
  ${statements.join("\n  ")}
  out[q] = ${toBits};
}`;
  const cap = new Uint32Array(Math.max(words, 1));
  data.forEach((d, i) => {
    cap.set(new Uint32Array(d.buffer, d.byteOffset, d.length), offsets[i]);
  });
  const mk = (bytes: number, usage: number) => device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
  const capBuf = mk(cap.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(capBuf, 0, cap);
  const spBuf = mk(12, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
  device.queue.writeBuffer(spBuf, 0, new Float32Array([Infinity, -Infinity, NaN]));
  const outBuf = mk(n * 4, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const read = mk(n * 4, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  // An explicit layout: "auto" would drop the bindings a graph does not use.
  const layout = device.createBindGroupLayout({
    entries: (["read-only-storage", "read-only-storage", "storage"] as const).map((type, binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type } })),
  });
  const pipeline = await device.createComputePipelineAsync({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  const bind = device.createBindGroup({
    layout,
    entries: [capBuf, spBuf, outBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  enc.copyBufferToBuffer(outBuf, 0, read, 0, read.size);
  device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`${err.message}\n${code}`);
  await read.mapAsync(GPUMapMode.READ);
  const bits = new Uint32Array(read.getMappedRange().slice(0, n * 4));
  read.unmap();
  for (const b of [capBuf, spBuf, outBuf, read]) b.destroy();
  return bits;
}

const f32OfBits = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
const i32OfBits = (u: number) => u | 0;

function typedArray(t: DType, values: number[]): Int32Array | Float32Array {
  return t === "f32" ? Float32Array.from(values) : Int32Array.from(values);
}

/** All combinations of operand values. */
function cartesian(operands: Operand[]): number[][] {
  return operands.reduce<number[][]>((acc, o) => acc.flatMap((row) => o.values.map((v) => [...row, v])), [[]]);
}

/** ULP distance between two f32 values (both finite). */
function ulps(a: number, b: number): number {
  const ia = new Int32Array(new Float32Array([a]).buffer)[0];
  const ib = new Int32Array(new Float32Array([b]).buffer)[0];
  const key = (i: number) => (i < 0 ? -2147483648 - i : i);
  return Math.abs(key(ia) - key(ib));
}

/** Allowed ULP error per f32-valued op (WGSL accuracy; drivers may also fuse a*b+c). */
const F32_ULPS: Partial<Record<string, number>> = {
  exp: 1024, exp2: 1024, log: 1024, log2: 1024, sqrt: 4, tanh: 1024, sigmoid: 1024, div: 3, floorDiv: 3, mod: 3,
};

interface Check {
  op: UnaryOp | BinaryOp | "where";
  types: DType[];
  result: DType;
}

async function check(dev: FlexDevice, c: Check, operands: Operand[]) {
  const rows = cartesian(operands);
  const graph = opGraph(c.op, c.types, c.result, rows.length);
  const data = operands.map((o, k) => typedArray(o.dtype, rows.map((r) => r[k])));
  const bits = await runOnDevice(dev, graph, data);
  const mismatches: string[] = [];
  rows.forEach((row, i) => {
    const want = evaluate(graph, { b: 0, h: 0, q: i, kv: i }, data);
    const gotBits = bits[i];
    const args = row.map((v, k) => (operands[k].dtype === "f32" ? Math.fround(v) : v)).join(", ");
    if (c.result === "bool") {
      if (Boolean(gotBits) !== want) mismatches.push(`${c.op}(${args}) = ${Boolean(gotBits)}, evaluate ${want}`);
      return;
    }
    if (c.result === "i32") {
      if (i32OfBits(gotBits) !== want) mismatches.push(`${c.op}(${args}) = ${i32OfBits(gotBits)}, evaluate ${want}`);
      return;
    }
    const got = f32OfBits(gotBits);
    const w = want as number;
    if (Number.isNaN(w) || Number.isNaN(got)) {
      if (Number.isNaN(w) !== Number.isNaN(got)) mismatches.push(`${c.op}(${args}) = ${got}, evaluate ${w}`);
      return;
    }
    if (!Number.isFinite(w) || !Number.isFinite(got)) {
      if (w !== got) mismatches.push(`${c.op}(${args}) = ${got}, evaluate ${w}`);
      return;
    }
    const tol = F32_ULPS[c.op] ?? 0;
    // Tiny results: allow an absolute error (denormals may flush; log near 1 is absolute-accurate).
    if (ulps(got, w) > tol && !(tol > 0 && Math.abs(got - w) < 1e-6) && !(w === 0 && got === 0)) {
      mismatches.push(`${c.op}(${args}) = ${got}, evaluate ${w} (${ulps(got, w)} ulp)`);
    }
  });
  expect(mismatches, mismatches.slice(0, 12).join("\n")).toEqual([]);
}

const COMPARE = new Set<BinaryOp>(["lt", "le", "gt", "ge", "eq", "ne"]);
const LOGIC = new Set<BinaryOp>(["and", "or"]);

describe.skipIf(!device)("WGSL renderer vs the IR evaluator (executed)", () => {
  const dev = device!;
  const i32: Operand = { dtype: "i32", values: I32 };
  const f32: Operand = { dtype: "f32", values: F32 };
  const bool: Operand = { dtype: "bool", values: BOOL };

  for (const op of BINARY_OPS) {
    if (LOGIC.has(op)) {
      it(`bool ${op}`, () => check(dev, { op, types: ["bool", "bool"], result: "bool" }, [bool, bool]));
      continue;
    }
    if (op !== "div") {
      it(`i32 ${op}`, () => check(dev, { op, types: ["i32", "i32"], result: COMPARE.has(op) ? "bool" : "i32" }, [i32, i32]));
    }
    it(`f32 ${op}`, () => check(dev, { op, types: ["f32", "f32"], result: COMPARE.has(op) ? "bool" : "f32" }, [f32, f32]));
  }
  it("bool eq / ne", async () => {
    await check(dev, { op: "eq", types: ["bool", "bool"], result: "bool" }, [bool, bool]);
    await check(dev, { op: "ne", types: ["bool", "bool"], result: "bool" }, [bool, bool]);
  });

  for (const op of UNARY_OPS) {
    if (op === "not") {
      it("bool not", () => check(dev, { op, types: ["bool"], result: "bool" }, [bool]));
      continue;
    }
    if (op === "toF32" || op === "toI32") {
      const result: DType = op === "toF32" ? "f32" : "i32";
      it(`${op} of i32, f32 and bool`, async () => {
        await check(dev, { op, types: ["i32"], result }, [i32]);
        await check(dev, { op, types: ["f32"], result }, [f32]);
        await check(dev, { op, types: ["bool"], result }, [bool]);
      });
      continue;
    }
    if (op === "neg" || op === "abs") it(`i32 ${op}`, () => check(dev, { op, types: ["i32"], result: "i32" }, [i32]));
    it(`f32 ${op}`, () => check(dev, { op, types: ["f32"], result: "f32" }, [f32]));
  }

  it("where on f32 and i32", async () => {
    await check(dev, { op: "where", types: ["bool", "f32", "f32"], result: "f32" }, [bool, f32, { dtype: "f32", values: [2, -0, NaN] }]);
    await check(dev, { op: "where", types: ["bool", "i32", "i32"], result: "i32" }, [bool, i32, { dtype: "i32", values: [5, -2147483648] }]);
  });

  it("guarded loads: out-of-range 1-D and 2-D indices read 0", async () => {
    for (const dtype of ["i32", "f32"] as const) {
      for (const shape of [[5], [3, 4]]) {
        const size = shape.reduce((a, b) => a * b, 1);
        const table = dtype === "i32" ? Int32Array.from({ length: size }, (_, i) => 100 + i) : Float32Array.from({ length: size }, (_, i) => 0.5 + i);
        const idx = [-2147483648, -5, -1, 0, 1, 2, 3, 4, 5, 12, 2147483647];
        const rows = shape.length === 1 ? idx.map((i) => [i]) : idx.flatMap((i) => idx.map((j) => [i, j]));
        const nodes: IRNode[] = [{ op: "input", dtype: "i32", args: [], input: "q" }];
        const buffers: BufferSpec[] = [{ name: "t", dtype, shape }];
        const ids: number[] = [];
        for (let k = 0; k < shape.length; k++) {
          buffers.push({ name: `i${k}`, dtype: "i32", shape: [rows.length] });
          nodes.push({ op: "load", dtype: "i32", args: [0], buffer: k + 1 });
          ids.push(nodes.length - 1);
        }
        nodes.push({ op: "load", dtype, args: ids, buffer: 0 });
        const graph = makeGraph("score", nodes, buffers);
        const data = [table, ...shape.map((_, k) => Int32Array.from(rows.map((r) => r[k])))];
        const bits = await runOnDevice(dev, graph, data);
        rows.forEach((r, n) => {
          const want = evaluate(graph, { b: 0, h: 0, q: n, kv: n }, data);
          const got = dtype === "i32" ? i32OfBits(bits[n]) : f32OfBits(bits[n]);
          expect(got, `${dtype}[${shape}] at (${r})`).toBe(want);
        });
      }
    }
  });

  it("constants, including INT_MIN, -0, subnormals, ±inf and NaN, render exactly", async () => {
    const consts: [DType, number][] = [
      ["i32", -2147483648], ["i32", 2147483647], ["i32", -7], ["f32", -0], ["f32", 1e-45], ["f32", -1.1754942e-38],
      ["f32", 3.4028234663852886e38], ["f32", 0.1], ["f32", -Infinity], ["f32", Infinity], ["f32", NaN], ["f32", 1e39],
    ];
    for (const [dtype, value] of consts) {
      const graph = makeGraph("score", [
        { op: "input", dtype: "i32", args: [], input: "q" },
        { op: "const", dtype, args: [], value: dtype === "f32" ? Math.fround(value) : value },
      ], []);
      const bits = await runOnDevice(dev, graph, [new Int32Array(1)]);
      const want = dtype === "f32" ? Math.fround(value) : value;
      const got = dtype === "i32" ? i32OfBits(bits[0]) : f32OfBits(bits[0]);
      if (dtype === "f32" && Math.abs(want) > 0 && Math.abs(want) < 1.2e-38 && got === 0) continue; // flushed subnormal
      expect(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)), `${dtype} ${value}: got ${got}`).toBe(true);
    }
  });
});

// Keep the type import used (WGSL_TYPE documents the renderer's scalar types).
void WGSL_TYPE;
