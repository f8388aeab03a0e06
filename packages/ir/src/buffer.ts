/**
 * Captured data: buffer(docIds).at(q) becomes a kernel argument, never a baked constant. The
 * buffer keeps a reference to the caller's array (new data reuses the compiled kernel); a
 * BlockMask, which is built from the data, keeps a copy and is refused once the data changed
 * (@flexattn/blockmask's mask-data.ts): build it again after changing a mask's data.
 */
import type { BufferSource } from "./builder.js";
import { activeBuilder } from "./trace-context.js";
import type { BufferData, BufferSpec } from "./types.js";
import { FlexAttnError } from "./types.js";
import { Value, type ValueLike, lift } from "./value.js";

export interface BufferOptions {
  /** `[n]` or `[rows, cols]`; defaults to `[data.length]`. */
  shape?: readonly number[];
  /** Name used in printed graphs and generated kernels. */
  name?: string;
}

export class CapturedBuffer implements BufferSource {
  readonly spec: BufferSpec;

  constructor(data: BufferData, options: BufferOptions = {}) {
    if (!(data instanceof Int32Array) && !(data instanceof Float32Array)) {
      const got = Array.isArray(data) ? "a plain array" : (data as object)?.constructor?.name ?? typeof data;
      throw new FlexAttnError(
        `buffer() takes an Int32Array or a Float32Array, got ${got}; convert it with Int32Array.from(...) or Float32Array.from(...)`,
      );
    }
    const shape = [...(options.shape ?? [data.length])];
    if (shape.length < 1 || shape.length > 2 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new FlexAttnError(`buffer() shape must be [n] or [rows, cols] of positive integers, got [${shape.join(", ")}]`);
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw new FlexAttnError(`buffer() shape [${shape.join(", ")}] holds ${size} elements but the data has ${data.length}`);
    }
    const name = options.name ?? "buf";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new FlexAttnError(`buffer() name "${name}" must be an identifier (letters, digits, _)`);
    }
    this.spec = { name, dtype: data instanceof Int32Array ? "i32" : "f32", shape, data };
  }

  get data(): BufferData {
    return this.spec.data!;
  }

  get shape(): readonly number[] {
    return this.spec.shape;
  }

  /** Load element i (1-D) or (i, j) (2-D). Indices must be i32; out-of-range loads read 0. */
  at(i: ValueLike, j?: ValueLike): Value {
    const b = activeBuilder("buffer.at()");
    const rank = this.spec.shape.length;
    const indices = j === undefined ? [i] : [i, j];
    if (indices.length !== rank) {
      throw new FlexAttnError(
        `buffer "${this.spec.name}" has ${rank} dimension${rank > 1 ? "s" : ""}; call .at() with ${rank} index${rank > 1 ? "es" : ""}`,
      );
    }
    const ids = indices.map((x, axis) => {
      if (typeof x === "number") {
        if (!Number.isInteger(x)) throw new FlexAttnError(`buffer "${this.spec.name}" index ${x} is not an integer`);
        if (x < 0 || x >= this.spec.shape[axis]) {
          throw new FlexAttnError(
            `buffer "${this.spec.name}" index ${x} is out of range [0, ${this.spec.shape[axis]}) on axis ${axis}`,
          );
        }
      } else if (x instanceof Value && x.dtype !== "i32") {
        throw new FlexAttnError(
          `buffer "${this.spec.name}" indexed with a ${x.dtype} value; indices must be i32 (use toI32(x) or floorDiv)`,
        );
      } else if (typeof x === "boolean") {
        throw new FlexAttnError(`buffer "${this.spec.name}" indexed with a boolean`);
      }
      return lift(b, x);
    });
    return new Value(b, b.load(this, ids));
  }
}

export function buffer(data: BufferData, options?: BufferOptions): CapturedBuffer {
  return new CapturedBuffer(data, options);
}
