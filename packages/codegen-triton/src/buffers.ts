/** Captured buffers as the generated module names them (ABI order, unique Python names). */
import { type KernelSpec, capturedBuffers } from "@flexattn/template";
import { isPyIdentifier } from "./python.js";

export interface BufferArg {
  /** Name in the kernel ABI (`mask_docIds`). */
  abiName: string;
  /** Keyword argument / kernel parameter name: the ABI name, suffixed when two collide. */
  pyName: string;
  owner: "mask" | "score";
  /** Buffer slot in its mod's graph. */
  slot: number;
  dtype: "i32" | "f32";
  shape: readonly number[];
}

export function bufferArgs(spec: KernelSpec): BufferArg[] {
  const seen = new Set<string>();
  return capturedBuffers(spec).map((b, i) => {
    const buf = b.graph.buffers[b.slot];
    let pyName = isPyIdentifier(b.name) ? b.name : `buffer_${i}`;
    if (seen.has(pyName)) pyName = `${pyName}_${i}`;
    seen.add(pyName);
    return { abiName: b.name, pyName, owner: b.owner, slot: b.slot, dtype: buf.dtype, shape: [...buf.shape] };
  });
}

/** The captured buffers as keyword-only parameters of a module function: "*, a, b, " (or "*, " without any). */
export function bufferKeywords(buffers: readonly BufferArg[]): string {
  return buffers.length ? `*, ${buffers.map((b) => b.pyName).join(", ")}, ` : "*, ";
}
