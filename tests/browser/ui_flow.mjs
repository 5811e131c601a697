// Drives the dashboard at /ui in headless Chromium (the system's browser, driven by playwright-core) through
// one scenario and prints, as JSON on stdout, what it saw: {ok, steps: [...], error?, requests, ...}.
// Used by test_ui.py. Usage: node ui_flow.mjs SCENARIO BASE_URL API_KEY [SCREENSHOT_DIR]
// Scenarios:
//   flow      sign in, create a queue, edit its configuration, publish from the page, watch the counts
//             change (queue table and queue page), dead-letter a message (consumed and nacked through the
//             API), redrive it from the page, purge behind the named confirmation; screenshots
//   phone     a 390 px wide viewport: the queue table and a queue's page scroll no sideways
//   keyboard  sign in, open a queue, purge it and delete it with the keyboard only; focus is always visible
//   many      first render of the queue table of a project with many queues (QUEUE_COUNT), in ms
//   push      a queue's recent push delivery attempts as listed on its page
// Environment: CHROMIUM (default /usr/bin/chromium), STEP_TIMEOUT_MS (default 20000), QUEUE (the queue name).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [scenario, base, key, shots] = process.argv.slice(2);
const timeout = Number(process.env.STEP_TIMEOUT_MS || 20000);
const queue = process.env.QUEUE || "ui-jobs";
const report = { ok: false, steps: [], requests: [], refused: [], console_errors: [], page_errors: [] };
const userDataDir = mkdtempSync(join(tmpdir(), "broker-ui-"));

async function api(method, path, body) {
  const response = await fetch(base + path, {
    method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

function step(name, detail) { report.steps.push(detail === undefined ? name : { name, ...detail }); }

async function countOf(page, label) {
  const box = page.locator("#counts div", { has: page.locator(`span:text-is("${label}")`) });
  return (await box.locator("b").textContent()).trim();
}

async function waitCount(page, label, value) {
  await page.waitForFunction(([l, v]) => [...document.querySelectorAll("#counts div")].some(
    (d) => d.querySelector("span")?.textContent === l && d.querySelector("b")?.textContent === v), [label, value],
  { timeout });
}

async function signIn(page) {
  await page.goto(`${base}/ui`, { waitUntil: "load", timeout });
  await page.getByLabel("Project API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Queues" }).waitFor({ timeout });
}

async function noSidewaysScroll(page) {
  const widths = await page.evaluate(() => ({
    scroll_width: document.documentElement.scrollWidth, client_width: document.documentElement.clientWidth,
    body_width: document.body.scrollWidth,
    // A table's caption as wide as its table (not squeezed into a column a letter wide).
    narrow_captions: [...document.querySelectorAll("caption")].filter((c) => c.offsetParent !== null
      && c.getBoundingClientRect().width < 0.8 * c.closest("table").getBoundingClientRect().width).length,
  }));
  if (widths.narrow_captions) throw new Error(`squeezed captions: ${JSON.stringify(widths)}`);
  return widths;
}

async function flow(page) {
  await signIn(page);
  step("signed in");
  if (await page.evaluate(() => sessionStorage.getItem("broker.key")) !== key) throw new Error("key not in sessionStorage");
  if (await page.evaluate(() => localStorage.length) !== 0) throw new Error("something was put in localStorage");
  await page.getByLabel("New queue name").fill(queue);
  await page.getByRole("button", { name: "Create queue" }).click();
  const link = page.getByRole("link", { name: queue, exact: true });
  await link.waitFor({ timeout });
  step("queue created");
  // The table refreshes by itself: a message published elsewhere shows up without a click.
  await api("POST", "/v1/queue/publish", { queue, payload: { from: "api" } });
  const row = page.locator("#queues tbody tr", { has: link });
  await row.locator('td[data-label="Available"]:text-is("1")').waitFor({ timeout: 15000 });
  step("table refreshed by itself");
  // The rates come from the server's history, so they show on the first load: one published, none acked.
  const inRate = Number((await row.locator('td[data-label="In /min"]').textContent()).trim());
  const outRate = (await row.locator('td[data-label="Out /min"]').textContent()).trim();
  if (!(inRate > 0) || outRate !== "0.0") throw new Error(`rates shown: in ${inRate}, out ${outRate}`);
  if (shots) await page.screenshot({ path: join(shots, "ui-queues.png") });
  await link.click();
  await page.getByRole("heading", { name: `Queue ${queue}` }).waitFor({ timeout });
  await waitCount(page, "available", "1");
  // Configuration: no retries, so one nack dead-letters.
  await page.getByLabel("Max retries").fill("0");
  await page.getByRole("button", { name: "Save configuration" }).click();
  await page.locator("#status", { hasText: "Configuration saved." }).waitFor({ timeout });
  if ((await api("GET", `/v1/queue/get/${queue}`)).max_retries !== 0) throw new Error("configuration not saved");
  step("configuration edited");
  await page.getByLabel("Payload (JSON)").fill('{"order": 42, "items": ["a", "b"]}');
  await page.getByRole("button", { name: "Publish", exact: true }).click();
  await page.locator("#status", { hasText: "Published" }).waitFor({ timeout });
  await waitCount(page, "available", "2");
  step("published from the page");
  const pretty = await page.locator("#peek-rows pre").allTextContents();
  if (!pretty.some((t) => t.includes('"order": 42') && t.includes("\n"))) throw new Error(`payload not pretty: ${pretty}`);
  step("peeked, pretty-printed");
  const [m] = (await api("POST", "/v1/queue/consume", { queue, max_messages: 1 })).messages;
  await api("POST", "/v1/queue/nack", { queue, message_id: m.message_id, receipt: m.receipt, requeue: false });
  await waitCount(page, "dead letters", "1");
  await page.getByRole("button", { name: "Reload messages" }).click();
  await page.getByRole("button", { name: `Redrive ${m.message_id}` }).waitFor({ timeout });
  const deadRow = page.locator("#dead-rows tr");
  const reason = (await deadRow.locator('td[data-label="Reason"]').textContent()).trim();
  const source = (await deadRow.locator('td[data-label="Source"]').textContent()).trim();
  const attempts = (await deadRow.locator('td[data-label="Attempts"]').textContent()).trim();
  const lastError = (await deadRow.locator('td[data-label="Last error"]').textContent()).trim();
  if (reason !== "nack" || source !== queue || attempts !== "1" || lastError !== "—") {
    throw new Error(`dead letter shows ${reason} / ${source} / ${attempts} / ${lastError}`);
  }
  step("dead-lettered", { reason, source, attempts });
  await page.locator("#push-outcomes").waitFor({ timeout });
  await page.locator("#push-recent", { hasText: "Last hour: 0 delivered, 0 failed attempts." }).waitFor({ timeout });
  await page.getByLabel("Find a message by id").fill(m.message_id);
  await page.getByRole("button", { name: "Find", exact: true }).click();
  await page.locator("#find-result b", { hasText: "dead letter" }).waitFor({ timeout });
  step("found by id", { shown: (await page.locator("#find-result p").first().textContent()).trim() });
  // Every control of the queue page has an accessible name (a label, its text, or aria-label).
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea, button, a")]
    .filter((el) => !el.closest("dialog") && el.offsetParent !== null)
    .filter((el) => {
      const named = el.getAttribute("aria-label") || (el.labels && [...el.labels].some((l) => l.textContent.trim()));
      return !(named || (["BUTTON", "A"].includes(el.tagName) && el.textContent.trim()));
    }).map((el) => el.outerHTML.slice(0, 80)));
  if (unlabelled.length) throw new Error(`controls without a name: ${unlabelled.join(" | ")}`);
  if (shots) await page.screenshot({ path: join(shots, "ui-queue.png"), fullPage: true });
  await page.getByRole("button", { name: `Redrive ${m.message_id}` }).click();
  await page.locator("#status", { hasText: "Redrove 1 message" }).waitFor({ timeout });
  await waitCount(page, "dead letters", "0");
  await waitCount(page, "available", "2");
  step("redriven");
  // Redrive since a time (a minute ago, in the page's local time), then all.
  for (const how of ["since", "all"]) {
    const [again] = (await api("POST", "/v1/queue/consume", { queue, max_messages: 1 })).messages;
    await api("POST", "/v1/queue/nack", { queue, message_id: again.message_id, receipt: again.receipt, requeue: false });
    await waitCount(page, "dead letters", "1");
    if (how === "since") {
      const since = await page.evaluate(() => {
        const d = new Date(Date.now() - 60000);
        const pad = (n) => String(n).padStart(2, "0");
        return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      });
      await page.getByLabel("Dead-lettered since").fill(since);
      await page.getByRole("button", { name: "Redrive since" }).click();
    } else {
      await page.getByRole("button", { name: "Redrive all" }).click();
    }
    await page.locator("#status", { hasText: "Redrove 1 dead letters." }).waitFor({ timeout });
    await waitCount(page, "dead letters", "0");
  }
  step("redriven since a time, and all");
  // Purge: the confirmation names the queue and stays disabled until the name is typed.
  await page.getByRole("button", { name: "Purge…" }).click();
  const dialog = page.locator("#confirm");
  await dialog.waitFor({ state: "visible", timeout });
  const title = (await page.locator("#confirm-title").textContent()).trim();
  if (title !== `Purge queue ${queue}?`) throw new Error(`confirmation says ${title}`);
  if (!(await page.locator("#confirm-ok").isDisabled())) throw new Error("confirm enabled before the name");
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.locator("#status", { hasText: "Nothing was changed." }).waitFor({ timeout });
  if ((await api("GET", `/v1/queue/stats/${queue}`)).available !== 2) throw new Error("cancel purged");
  await page.getByRole("button", { name: "Purge…" }).click();
  await page.getByLabel("Type the queue's name to confirm").fill(queue);
  await page.locator("#confirm-ok").click();
  await page.locator("#status", { hasText: `Purged 2 messages from ${queue}.` }).waitFor({ timeout });
  await waitCount(page, "available", "0");
  step("purged");
  // The charts drew the minute's published and acked counts from the history.
  const history = await api("GET", `/v1/queue/history/${queue}`);
  const published = history.points.reduce((n, p) => n + p.published, 0);
  const polylines = await page.locator("#charts polyline").count();
  step("charts", { published, polylines });
  if (published !== 2 || polylines !== 4) throw new Error(`history ${published}, polylines ${polylines}`);
  await chartReadout(page, queue);
  await page.getByRole("link", { name: "Dead letters" }).click();
  await page.getByRole("heading", { name: "Dead letters" }).waitFor({ timeout });
  // Dark theme of the queue page, for the docs.
  await page.getByRole("button", { name: "Switch between light and dark" }).click();
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  step("dark", { background: dark });
  if (dark === "rgb(255, 255, 255)") throw new Error("the dark theme did not apply");
  await page.goto(`${base}/ui#/queue/${queue}`, { waitUntil: "load", timeout });
  await page.getByRole("heading", { name: `Queue ${queue}` }).waitFor({ timeout });
  await page.locator("#push-outcomes").waitFor({ timeout });
  await page.locator("#charts svg").first().waitFor({ timeout });
  await page.getByRole("slider", { name: /^In \/ out/ }).focus(); // a minute read out, for the picture
  await page.keyboard.press("End");
  if (shots) await page.screenshot({ path: join(shots, "ui-queue-dark.png") });
}

// The charts read out a minute's values: on hover (the readout under the chart) and with the keyboard (the chart
// is a slider: its value text follows the arrow keys), the same numbers as GET /v1/queue/history.
async function chartReadout(page, name) {
  const chartBox = page.getByRole("slider", { name: /^In \/ out \/ dead-lettered per minute/ });
  const figure = page.locator("figure", { has: chartBox });
  const expected = (p) => `published ${p.published}, acked ${p.acked}, dead-lettered ${p.dead_lettered}`;
  const valuesOf = (text) => text.slice(text.indexOf(": ") + 2);
  for (let tries = 0; ; tries++) { // a minute that turns between the two reads: read both again
    const points = (await api("GET", `/v1/queue/history/${name}`)).points;
    const box = await chartBox.boundingBox();
    await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const hovered = valuesOf((await figure.locator("output").textContent()).trim());
    await chartBox.focus();
    await page.keyboard.press("End");
    const last = valuesOf(await chartBox.getAttribute("aria-valuetext"));
    await page.keyboard.press("ArrowLeft");
    const before = valuesOf(await chartBox.getAttribute("aria-valuetext"));
    const now = await chartBox.getAttribute("aria-valuenow");
    const want = [expected(points[points.length - 1]), expected(points[points.length - 2])];
    if (hovered === want[0] && last === want[0] && before === want[1] && Number(now) === points.length - 2) {
      step("chart readout", { hovered, last, before });
      break;
    }
    if (tries === 2) throw new Error(`chart reads ${hovered} / ${last} / ${before} (${now}), history ${want}`);
  }
  await page.mouse.move(0, 0);
}

// A subscription's recent delivery attempts, as the page lists them (made by the test beforehand).
async function push(page) {
  await signIn(page);
  await page.getByRole("link", { name: queue, exact: true }).click();
  await page.getByRole("heading", { name: `Queue ${queue}` }).waitFor({ timeout });
  await page.locator("#push-attempts tbody tr").first().waitFor({ timeout });
  const rows = await page.locator("#push-attempts tbody tr").evaluateAll((trs) => trs.map((tr) => {
    const cell = (label) => tr.querySelector(`td[data-label="${label}"]`).textContent.trim();
    return { outcome: tr.dataset.outcome, message: cell("Message"), attempt: cell("Attempt"), answer: cell("Answer"),
      took: cell("Took") };
  }));
  step("recent deliveries", { rows });
  const section = page.locator("section", { has: page.getByRole("heading", { name: "Push subscription" }) });
  await section.locator("figure svg").waitFor({ timeout }); // the attempts per minute, a chart of its own
  if (shots) await section.screenshot({ path: join(shots, "ui-push.png") });
  // Its dead letter: reason, attempts, source queue and last error, as the dead letters list them.
  const dead = page.locator("#dead-rows tr").first();
  await dead.waitFor({ timeout });
  const cell = async (label) => (await dead.locator(`td[data-label="${label}"]`).textContent()).trim();
  step("dead letter", { reason: await cell("Reason"), attempts: await cell("Attempts"), source: await cell("Source"),
    last_error: await cell("Last error") });
  // On a phone the attempts are cards: no sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator("#push-attempts tbody tr").first().waitFor({ timeout });
  step("phone", await noSidewaysScroll(page));
}

async function phone(page) {
  await page.setViewportSize({ width: 390, height: 844 });
  await signIn(page);
  await page.getByRole("link", { name: queue, exact: true }).waitFor({ timeout });
  step("queues", await noSidewaysScroll(page));
  if (shots) await page.screenshot({ path: join(shots, "ui-phone.png") });
  await page.getByRole("link", { name: queue, exact: true }).click();
  await page.getByRole("heading", { name: `Queue ${queue}` }).waitFor({ timeout });
  await page.locator("#peek-rows tr").first().waitFor({ timeout });
  await page.locator("#charts svg").first().waitFor({ timeout });
  step("queue", await noSidewaysScroll(page));
  await page.goto(`${base}/ui#/dead/${queue}`, { waitUntil: "load", timeout });
  await page.locator("#dead-rows tr").first().waitFor({ timeout });
  step("dead", await noSidewaysScroll(page));
}

async function focusInfo(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { tag: el.tagName, id: el.id, text: (el.textContent || "").trim().slice(0, 40),
      href: el.getAttribute("href"), outline: style.outlineStyle, outline_width: style.outlineWidth };
  });
}

async function tabTo(page, wanted, limit = 60) {
  const seen = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const info = await focusInfo(page);
    seen.push(info);
    if (info.outline === "none" || info.outline_width === "0px") throw new Error(`focus not visible on ${JSON.stringify(info)}`);
    if (wanted(info)) return seen;
  }
  throw new Error(`not reached with Tab: ${JSON.stringify(seen.slice(-5))}`);
}

async function keyboard(page) {
  await page.goto(`${base}/ui`, { waitUntil: "load", timeout });
  const first = await focusInfo(page);
  if (first.id !== "key") throw new Error(`the key field has no focus at sign-in: ${JSON.stringify(first)}`);
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Queues" }).waitFor({ timeout });
  step("signed in with Enter");
  const seen = await tabTo(page, (f) => f.href === `#/queue/${queue}`);
  step("reached the queue link", { tabs: seen.length });
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: `Queue ${queue}` }).waitFor({ timeout });
  await tabTo(page, (f) => f.id === "purge");
  await page.keyboard.press("Enter");
  await page.locator("#confirm").waitFor({ state: "visible", timeout });
  const inDialog = await focusInfo(page);
  if (inDialog.id !== "confirm-name") throw new Error(`focus in the dialog: ${JSON.stringify(inDialog)}`);
  await page.keyboard.type(queue);
  await page.keyboard.press("Enter");
  await page.locator("#status", { hasText: `from ${queue}.` }).waitFor({ timeout });
  step("purged with the keyboard");
  // Escape closes the dialog and changes nothing.
  await page.locator("#purge").focus();
  await page.keyboard.press("Enter");
  await page.locator("#confirm").waitFor({ state: "visible", timeout });
  await page.keyboard.press("Escape");
  await page.locator("#status", { hasText: "Nothing was changed." }).waitFor({ timeout });
  step("escape cancels");
  // The charts are reached with Tab and read with the arrow keys.
  await page.locator("#purge").focus();
  await tabTo(page, (f) => f.tag === "svg");
  const slider = page.locator("svg:focus");
  await page.keyboard.press("End");
  const last = await slider.getAttribute("aria-valuenow");
  await page.keyboard.press("ArrowLeft");
  const before = await slider.getAttribute("aria-valuenow");
  const text = await slider.getAttribute("aria-valuetext");
  const shown = (await page.locator("figure:has(svg:focus) output").textContent()).trim();
  if (Number(before) !== Number(last) - 1 || shown !== text || !/: available \+ delayed \+ in flight /.test(text)) {
    throw new Error(`chart by keyboard: ${last} -> ${before}, ${text} / ${shown}`);
  }
  step("chart read with the keyboard");
  await page.locator("#delete").focus();
  await page.keyboard.press("Enter");
  await page.locator("#confirm").waitFor({ state: "visible", timeout });
  const title = (await page.locator("#confirm-title").textContent()).trim();
  if (title !== `Delete queue ${queue}?`) throw new Error(`confirmation says ${title}`);
  await page.keyboard.type(queue);
  await page.keyboard.press("Enter");
  await page.locator("#status", { hasText: `Queue ${queue} deleted.` }).waitFor({ timeout });
  await page.getByRole("heading", { name: "Queues" }).waitFor({ timeout });
  if (await page.getByRole("link", { name: queue, exact: true }).count()) throw new Error("still listed");
  step("deleted with the keyboard");
}

async function many(page) {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${base}/ui`, { waitUntil: "load", timeout });
  await page.evaluate((k) => sessionStorage.setItem("broker.key", k), key);
  const expected = Number(process.env.QUEUE_COUNT || 1000);
  const runs = [];
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    await page.reload({ waitUntil: "load", timeout });
    await page.waitForFunction((n) => document.querySelectorAll("#queues tbody tr").length === n, expected,
      { timeout: 60000, polling: 10 });
    runs.push(Date.now() - started);
  }
  step("first render", { runs, rows: expected });
  report.first_render_ms = Math.min(...runs);
  await page.getByLabel("Filter").fill("q-000");
  await page.waitForFunction(() => document.querySelectorAll("#queues tbody tr").length === 10, null, { timeout });
  const sortStarted = Date.now();
  await page.getByRole("button", { name: "Available" }).click();
  report.sort_ms = Date.now() - sortStarted;
  // Numbers sort largest first on the first click: the one queue of the ten holding a message comes first.
  const order = await page.evaluate(() => ({
    sort: document.querySelector('#queues th[data-key="available"]').getAttribute("aria-sort"),
    rows: [...document.querySelectorAll("#queues tbody tr")].map((tr) =>
      `${tr.querySelector('td[data-label="Queue"]').textContent}=${tr.querySelector('td[data-label="Available"]').textContent}`),
  }));
  const want = ["q-0000=1", ...Array.from({ length: 9 }, (_, n) => `q-000${n + 1}=0`)];
  if (order.sort !== "descending" || order.rows.join() !== want.join()) throw new Error(`sorted: ${JSON.stringify(order)}`);
  step("filtered and sorted");
}

let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    viewport: { width: 1280, height: 860 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  context.on("request", (request) => report.requests.push(request.url()));
  context.on("response", (response) => {
    if (response.status() >= 400) report.refused.push(`${response.status()} ${new URL(response.url()).pathname}`);
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (message) => { if (message.type() === "error") report.console_errors.push(message.text()); });
  page.on("pageerror", (error) => report.page_errors.push(String(error)));
  const scenarios = { flow, phone, keyboard, many, push };
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario](page);
  report.ok = true;
} catch (error) {
  report.error = String(error).split("\n").slice(0, 3).join(" ");
} finally {
  if (context) await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report) + "\n");
