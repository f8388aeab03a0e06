// Prints one plain closing line, "Tests: N passed, N failed[, N skipped]", that any CI log reader understands.
export default class SummaryReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      if (mod.state() === "failed" && ![...mod.children.allTests()].length) failed++; // a file that failed to load
    }
    failed += unhandledErrors?.length ?? 0;
    const tail = skipped ? `, ${skipped} skipped` : "";
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed${tail}\n`);
  }
}
