/** The builder of the mod being traced right now (tracing is synchronous and not re-entrant). */
import type { GraphBuilder } from "./builder.js";
import { FlexAttnError } from "./types.js";

let active: GraphBuilder | null = null;

export function activeBuilder(what: string): GraphBuilder {
  if (!active) {
    throw new FlexAttnError(
      `${what} can only be used inside a mask or score mod while flexattn traces it ` +
        `(pass the mod to createBlockMask / flexAttention / compile instead of calling it yourself)`,
    );
  }
  return active;
}

export function withBuilder<T>(builder: GraphBuilder, body: () => T): T {
  if (active) throw new FlexAttnError("a mod called traceMaskMod/traceScoreMod while being traced; trace mods one at a time");
  active = builder;
  try {
    return body();
  } finally {
    active = null;
  }
}
