/**
 * The built site in a real Chromium (Debian's /usr/bin/chromium driven by playwright-core; no
 * browser download): the playground on WebGPU (SwiftShader) and on JS, checked against the float64
 * reference; pages under a Content-Security-Policy without 'unsafe-eval'. Screenshots go to
 * apps/docs/test-results/.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LIBRARY_MASKS } from "@flexattn/masks";
import { type StaticSite, serveStatic } from "./browser/static-server.js";
import { DOCS, SITE, ensureSiteBuilt } from "./browser/site-build.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(DOCS, "test-results");
/** Flags from shared/BROWSER.md: WebGPU on SwiftShader, nothing reaching out of the machine. */
const FLAGS = [
  "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-unsafe-swiftshader",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
];
/** A realistic policy for a static site: inline bootstrap scripts allowed, eval not. */
const CSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:";

const missing = !existsSync(CHROMIUM);
if (missing && !process.env.CI) {
  console.warn(`browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium); in CI they run`);
}

describe.skipIf(missing && !process.env.CI)("the docs site in Chromium", () => {
  let browser: Browser;
  let site: StaticSite;
  let cspSite: StaticSite;

  beforeAll(async () => {
    if (missing) throw new Error(`${CHROMIUM} is missing: .ci/run installs it (apt-get install -y chromium)`);
    ensureSiteBuilt();
    mkdirSync(SHOTS, { recursive: true });
    site = await serveStatic(SITE);
    cspSite = await serveStatic(SITE, CSP);
    // launch() gives Chromium a fresh temporary profile (its own --user-data-dir) every time.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await cspSite?.close();
  });

  /** A page that fails the test on any uncaught page error. */
  async function open(url: string): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    return { page, errors };
  }

  async function setEditor(page: Page, which: "mask" | "score", text: string): Promise<void> {
    await page.locator(`[data-testid=${which}-editor] .cm-content`).click();
    await page.keyboard.press("Control+A");
    // insertText("") types nothing and would leave the selection in place: delete it first.
    await page.keyboard.press("Delete");
    if (text) await page.keyboard.insertText(text);
  }

  const sparsityOf = async (page: Page) => (await page.getByTestId("sparsity").textContent()) ?? "";

  it("playground: editing the mask redraws the picture and its sparsity", async () => {
    const { page, errors } = await open(`${site.url}/playground.html`);
    await page.getByTestId("picture").locator("svg").waitFor();
    const before = await page.getByTestId("picture").innerHTML();
    const sparsityBefore = await sparsityOf(page);
    await setEditor(page, "mask", "(b, h, q, kv) => q.ge(kv)");
    // Causal over 16×16 blocks of 32: 136 of 256 blocks computed.
    await expect.poll(() => sparsityOf(page)).toContain("46.88%");
    expect(sparsityBefore).not.toContain("46.88%");
    const after = await page.getByTestId("picture").innerHTML();
    expect(after).not.toBe(before);
    expect(after).toContain('data-sparsity="46.88"');
    await page.screenshot({ path: join(SHOTS, "playground-causal.png"), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("playground: runs attention on WebGPU (SwiftShader) and on JS, close to the float64 reference", async () => {
    const { page, errors } = await open(`${site.url}/playground.html`);
    await page.getByTestId("picture").locator("svg").waitFor();
    for (const backend of ["js", "wgsl"] as const) {
      await page.getByTestId(`run-${backend}`).click();
      const ok = page.getByTestId(`result-${backend}`);
      const failed = page.getByTestId(`result-${backend}-error`);
      await ok.or(failed).waitFor({ timeout: 180_000 });
      if (await failed.isVisible()) throw new Error(`${backend} run failed in the page: ${await failed.textContent()}`);
      const outError = Number(await ok.getAttribute("data-out-error"));
      const lseError = Number(await ok.getAttribute("data-lse-error"));
      expect(Number(await ok.getAttribute("data-bad"))).toBe(0);
      expect(outError).toBeGreaterThanOrEqual(0);
      expect(outError).toBeLessThan(1e-4);
      expect(lseError).toBeLessThan(1e-4);
    }
    expect(await page.getByTestId("result-wgsl").textContent()).toMatch(/swiftshader/i);
    await page.screenshot({ path: join(SHOTS, "playground-runs.png"), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it("playground: bad code shows the library's error, and the page recovers", async () => {
    const { page, errors } = await open(`${site.url}/playground.html`);
    await page.getByTestId("picture").locator("svg").waitFor();
    await setEditor(page, "mask", "(b, h, q, kv) => q >= kv");
    await expect.poll(() => page.getByTestId("mask-error").textContent()).toContain("use methods instead of operators: q.ge(kv) for q >= kv");
    await setEditor(page, "score", "(score, b, h, q, kv) => score.mul(");
    await expect.poll(() => page.getByTestId("score-error").textContent()).toMatch(/^SyntaxError/);
    await page.getByTestId("source-cuda").click();
    await expect.poll(() => page.getByTestId("source-error").textContent()).toContain("q.ge(kv)");
    await page.screenshot({ path: join(SHOTS, "playground-error.png"), fullPage: true });
    await setEditor(page, "mask", "slidingWindow(64)");
    await setEditor(page, "score", "");
    await page.getByTestId("sparsity").waitFor();
    await expect.poll(() => page.getByTestId("mask-error").count()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("playground: shows each backend's source and shares the variant by URL", async () => {
    const { page, errors } = await open(`${site.url}/playground.html`);
    await page.getByTestId("picture").locator("svg").waitFor();
    const marks = { wgsl: "@compute", triton: "@triton.jit", cuda: "__global__", js: "function flexattn_fwd" } as const;
    for (const [backend, mark] of Object.entries(marks)) {
      await page.getByTestId(`source-${backend}`).click();
      await expect.poll(() => page.getByTestId("source").textContent()).toContain(mark);
    }
    await setEditor(page, "mask", "andMasks(causal(), (b, h, q, kv) => q.sub(kv).lt(100))");
    await expect.poll(() => page.evaluate(() => location.hash)).toMatch(/^#v=/);
    const sparsity = await sparsityOf(page);
    const shared = page.url();
    const { page: other, errors: otherErrors } = await open(shared);
    // A link's own mods are code: nothing of them runs until the reader says so.
    await other.getByTestId("link-consent").waitFor();
    expect(await other.getByTestId("picture").count()).toBe(0);
    await other.getByTestId("run-link").click();
    await other.getByTestId("sparsity").waitFor();
    expect(await sparsityOf(other)).toBe(sparsity);
    await expect.poll(() => other.locator("[data-testid=mask-editor] .cm-content").textContent()).toContain("q.sub(kv).lt(100)");
    // A size beyond the page's limit is clamped, and the field shows the value in use, also when a second
    // out-of-range entry leaves the state as it was.
    const n = other.getByTestId("size-N");
    for (const asked of ["1000000", "99999999"]) {
      await n.fill(asked);
      await n.blur();
      await expect.poll(() => n.inputValue()).toBe("2048");
      await expect.poll(() => other.getByTestId("size-note").textContent()).toContain("N is kept within [16, 2048] here");
    }
    expect([...errors, ...otherErrors]).toEqual([]);
    await page.close();
    await other.close();
  });

  it("pages work under a Content-Security-Policy without 'unsafe-eval'", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.addInitScript(() => {
      const w = window as unknown as { __violations: string[] };
      w.__violations = [];
      // The library probes once whether it may compile source (new Function) and falls back when
      // it may not: that blocked eval is expected; any other violation (a script, a style) is not.
      document.addEventListener("securitypolicyviolation", (e) => {
        if (e.blockedURI !== "eval") w.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`);
      });
    });
    const response = await page.goto(`${cspSite.url}/masks.html`);
    expect(response?.headers()["content-security-policy"]).toBe(CSP);
    // Every library mask's picture, drawn at build time by blockMaskSvg.
    await expect.poll(() => page.locator(".blockmask-picture svg").count()).toBe(LIBRARY_MASKS.length);
    // The page hydrated (Vue is running): client-side navigation to another page works.
    await page.locator("a[href='/mod-dsl.html']").first().click();
    await page.waitForURL(/mod-dsl\.html$/);
    await expect.poll(() => page.locator("h1").first().textContent()).toContain("The mod DSL");
    await page.screenshot({ path: join(SHOTS, "csp-mod-dsl.png"), fullPage: false });
    await page.goto(`${cspSite.url}/masks.html`);
    await page.locator(".blockmask-picture svg").first().waitFor();
    await page.screenshot({ path: join(SHOTS, "csp-masks.png"), fullPage: false });
    // A benchmark page with its chart (drawn by the bench, or here from the results JSON).
    await page.goto(`${cspSite.url}/bench/js-node20-cpu.html`);
    const chart = page.locator(".bench-chart svg").first();
    await chart.waitFor();
    expect((await chart.boundingBox())?.height).toBeGreaterThan(100);
    await page.screenshot({ path: join(SHOTS, "csp-bench.png"), fullPage: false });
    expect(await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations)).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  // createBlockMask compiles a mask predicate with new Function where eval is allowed, and falls
  // back to the IR evaluator where a CSP forbids it.
  it("createBlockMask and blockMaskSvg run in a page under the CSP", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${cspSite.url}/masks.html`);
    const sparsity = page.getByTestId("mask-try-sparsity");
    const error = page.getByTestId("mask-try-error");
    await sparsity.or(error).waitFor();
    if (await error.isVisible()) throw new Error(`createBlockMask failed under the CSP: ${await error.textContent()}`);
    // slidingWindow(N / 4) at N = 1024 in blocks of 32, then causal: the page rebuilds the mask each time.
    const before = await sparsity.textContent();
    await page.getByTestId("mask-try-name").selectOption("causal");
    await expect.poll(() => sparsity.textContent()).toBe("Sparsity 48.44%");
    expect(before).not.toBe("Sparsity 48.44%");
    await page.screenshot({ path: join(SHOTS, "csp-mask-try.png") });
    expect(errors).toEqual([]);
    await page.close();
  });
});
