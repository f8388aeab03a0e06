/**
 * Whether this environment compiles code from strings. A page under a Content-Security-Policy
 * without 'unsafe-eval' makes `new Function` throw an EvalError; the JS backend and BlockMask
 * construction then use the IR evaluator instead (same semantics, slower).
 */
let canCompile: boolean | undefined;

/** Asked once per process (or page) and remembered. */
export function canCompileSource(): boolean {
  if (canCompile === undefined) {
    try {
      canCompile = new Function("return 1")() === 1;
    } catch {
      canCompile = false;
    }
  }
  return canCompile;
}

/** Ask again on the next call (for tests that forbid or restore `Function`). */
export function resetCompileSourceProbe(): void {
  canCompile = undefined;
}
