// Loads one page in headless Chromium (the system's browser, driven by playwright-core) and prints, as JSON
// on stdout, every request the page made, whether TEXT became visible, the operations Swagger UI rendered,
// and, when TRY_PATH is set, the status that "Try it out" / "Execute" got on the GET operation of that path.
// Used by test_docs_page.py. Usage: node load_page.mjs URL TEXT [SCREENSHOT.png]
// Environment: CHROMIUM (default /usr/bin/chromium), LOAD_TIMEOUT_MS (default 30000), TRY_PATH,
// API_KEY (when set, entered in the page's "Authorize" dialog before trying).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, text, screenshot] = process.argv.slice(2);
if (!url || !text) {
  console.error("usage: node load_page.mjs URL TEXT [SCREENSHOT.png]");
  process.exit(2);
}
const timeout = Number(process.env.LOAD_TIMEOUT_MS || 30000);
const userDataDir = mkdtempSync(join(tmpdir(), "broker-browser-"));
const tryPath = process.env.TRY_PATH;
const report = {
  requests: [], failed: [], console_errors: [], page_errors: [], text_visible: false, operations: [], tried: null,
};
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
  // Every request of every page and worker of the context, including those that never get an answer.
  context.on("request", (request) => report.requests.push({ url: request.url(), type: request.resourceType() }));
  context.on("requestfailed", (request) => report.failed.push({ url: request.url(), error: request.failure()?.errorText }));
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (message) => { if (message.type() === "error") report.console_errors.push(message.text()); });
  page.on("pageerror", (error) => report.page_errors.push(String(error)));
  await page.goto(url, { waitUntil: "load", timeout });
  try {
    await page.getByText(text, { exact: true }).first().waitFor({ state: "visible", timeout });
    report.text_visible = true;
  } catch (error) {
    report.wait_error = String(error).split("\n")[0];
  }
  await page.waitForLoadState("networkidle", { timeout }).catch(() => {});
  report.operations = await page.$$eval(".opblock", (blocks) => blocks.map((block) => {
    const method = block.querySelector(".opblock-summary-method")?.textContent?.trim() || "";
    const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path") || "";
    return `${method.toUpperCase()} ${path}`;
  }));
  if (tryPath && report.text_visible) {
    try {
      if (process.env.API_KEY) {
        await page.locator(".auth-wrapper button.authorize").first().click({ timeout });
        const dialog = page.locator(".dialog-ux .modal-ux");
        await dialog.locator("input").first().fill(process.env.API_KEY);
        await dialog.locator("button.authorize").first().click({ timeout });
        await dialog.locator("button.btn-done").first().click({ timeout });
      }
      const path = page.locator(`.opblock-summary-path[data-path="${tryPath}"]`);
      const block = page.locator(".opblock-get", { has: path }).first();
      await block.locator(".opblock-summary").first().click();
      await block.locator("button.try-out__btn").click({ timeout });
      await block.locator("button.execute").click({ timeout });
      const status = block.locator(".live-responses-table tr.response .response-col_status").first();
      await status.waitFor({ state: "visible", timeout });
      report.tried = (await status.textContent()).trim();
    } catch (error) {
      report.tried = `failed: ${String(error).split("\n")[0]}`;
    }
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: false });
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
