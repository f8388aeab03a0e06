/**
 * A BlockMask is built from the mask's captured data at one moment; the kernel reads the buffers
 * when it runs. A BlockMask keeps copies of that data and a call refuses it once the buffers
 * hold other data (changed in place after createBlockMask).
 */
import { type BufferData, FlexAttnError, type ModGraph } from "@flexattn/ir";

/** What the check reads: the mask graph (current data) and the copies taken at build time. */
export interface MaskDataHolder {
  readonly maskGraph?: ModGraph;
  readonly maskData?: readonly (BufferData | undefined)[];
}

/** Copies of a mask graph's captured data, to detect later changes (checkMaskDataUnchanged). */
export function snapshotMaskData(graph: ModGraph | undefined): (BufferData | undefined)[] | undefined {
  return graph?.buffers.map((b) => b.data?.slice());
}

/**
 * Refuse tables built from other data than the mask's buffers hold now: the tables would skip
 * or fully keep blocks by the old data while the kernel applies the mask to the new.
 */
export function checkMaskDataUnchanged(t: MaskDataHolder, what = "BlockMask"): void {
  const graph = t.maskGraph;
  if (!graph || !t.maskData) return;
  graph.buffers.forEach((b, i) => {
    const then = t.maskData![i];
    const now = b.data;
    if (!then || !now) return;
    let at = then.length === now.length ? -1 : Math.min(then.length, now.length);
    for (let j = 0; at < 0 && j < then.length; j++) if (!Object.is(then[j], now[j])) at = j;
    if (at < 0) return;
    throw new FlexAttnError(
      `${what}: the mask's captured buffer "${b.name}" changed after the BlockMask was built (element ${at}: ${then[at]} then, ${now[at]} now); ` +
        "the BlockMask still describes the old data. Build it again with createBlockMask after changing captured data " +
        "(the compiled kernel is reused: only the structure keys it)",
    );
  });
}


