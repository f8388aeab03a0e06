/** Small helpers for examples, the demo and tests. */
import { type StorageDType, type Tensor, fromFloat32, mulberry32, randomNormal } from "@flexattn/template";

/** A contiguous tensor of standard-normal values from a seeded generator. */
export function randomTensor(shape: readonly number[], options: { dtype?: StorageDType; seed?: number } = {}): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const dtype = options.dtype ?? "f32";
  const data = fromFloat32(randomNormal(n, mulberry32(options.seed ?? 0)), dtype);
  const strides: number[] = [];
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return { data, shape: [...shape], dtype, strides };
}
