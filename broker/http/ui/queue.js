// One queue (#/queue/NAME): counts, charts, configuration, push subscription, messages, dead letters; and the
// dead letters of a chosen queue (#/dead/NAME).
import { allQueues, api, overviewRow, q } from "./api.js";
import { REFRESH_MS, age, chart, field, h, main, pretty, say, view, when } from "./dom.js";

// --- one queue --------------------------------------------------------------------------------------
function counts(stats) {
  const cell = (value, label) => h("div", {}, h("b", { text: String(value) }), h("span", { text: label }));
  return h("div", { class: "counts", id: "counts" },
    cell(stats.available, "available"), cell(stats.in_flight, "in flight"), cell(stats.delayed, "delayed"),
    cell(stats.dlq, "dead letters"), cell(age(stats.oldest_age_seconds), "oldest available"));
}

function confirmNamed(title, text, name) {
  const dialog = document.getElementById("confirm");
  const input = document.getElementById("confirm-name");
  const ok = document.getElementById("confirm-ok");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  input.value = "";
  ok.disabled = true;
  input.oninput = () => { ok.disabled = input.value !== name; };
  document.getElementById("confirm-cancel").onclick = () => dialog.close("cancel");
  return new Promise((resolve) => {
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.returnValue = "";
    ok.value = "ok";
    dialog.showModal();
    input.focus();
  });
}

function configForm(record, reload) {
  const retries = h("input", { type: "number", min: 0, max: 1000, value: record.max_retries, id: "cfg-retries" });
  const retention = h("input", { type: "number", min: 1, max: 14, value: record.message_retention_days, id: "cfg-retention" });
  const visibility = h("input", { type: "number", min: 0, max: 43200, value: record.visibility_timeout_default, id: "cfg-visibility" });
  const dlq = h("input", { value: record.dead_letter_queue || "", id: "cfg-dlq", autocomplete: "off" });
  const priority = h("select", { id: "cfg-priority" }, h("option", { value: "false", text: "off" }), h("option", { value: "true", text: "on" }));
  priority.value = String(record.enable_priority);
  const form = h("form", { "aria-label": "Configuration" },
    h("div", { class: "config" }, field("Max retries", retries), field("Retention (days)", retention),
      field("Visibility timeout (s)", visibility), field("Dead-letter queue (empty for none)", dlq),
      field("Priority", priority)),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", text: "Save configuration" }),
      h("span", { class: "muted", text: `${record.type} queue, created ${when(record.created_at)}` })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PATCH", `/v1/queue/update/${q(record.queue)}`, {
        max_retries: Number(retries.value), message_retention_days: Number(retention.value),
        visibility_timeout_default: Number(visibility.value), dead_letter_queue: dlq.value.trim() || null,
        enable_priority: priority.value === "true",
      });
      say("Configuration saved.");
      await reload();
    } catch (error) { say(`Could not save: ${error.message}`, true); }
  });
  return form;
}

function messageItem(m) {
  const facts = [`priority ${m.priority}`, `attempts ${m.attempts}`, `deliveries ${m.deliveries}`,
    `enqueued ${when(m.enqueued_at)}`];
  if (m.state === "delayed") facts.push(`due ${when(m.due_at)}`);
  if (m.lease_expires_at) facts.push(`lease until ${when(m.lease_expires_at)}`);
  if (m.group_id) facts.push(`group ${m.group_id}`);
  return h("tr", {},
    h("td", { "data-label": "Message" }, h("code", { text: m.message_id })),
    h("td", { "data-label": "Facts", class: "muted", text: facts.join(" · ") }),
    h("td", { "data-label": "Payload" }, h("pre", { text: pretty(m.payload) })));
}

function messagesSection(name) {
  const state = h("select", { id: "peek-state" }, ["available", "delayed", "in_flight"].map((s) => h("option", { value: s, text: s.replace("_", " ") })));
  const tbody = h("tbody", { id: "peek-rows" });
  const more = h("button", { type: "button", id: "peek-more", text: "Load more", hidden: true });
  const empty = h("p", { class: "muted", id: "peek-empty", text: "No messages in this state.", hidden: true });
  let cursor = null;
  let loads = 0; // a newer fresh load wins over one still on its way
  const load = async (fresh) => {
    const token = fresh ? ++loads : loads;
    const from = fresh ? null : cursor;
    const page = await api("GET", `/v1/queue/peek/${q(name)}?state=${state.value}&limit=20${from ? "&cursor=" + q(from) : ""}`);
    if (token !== loads) return;
    if (fresh) tbody.replaceChildren();
    for (const m of page.items) tbody.append(messageItem(m));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = tbody.children.length > 0;
  };
  state.addEventListener("change", () => load(true).catch((e) => say(e.message, true)));
  more.addEventListener("click", () => load(false).catch((e) => say(e.message, true)));
  const payload = h("textarea", { id: "publish-payload" });
  payload.value = '{"hello": "world"}';
  const delay = h("input", { type: "number", min: 0, value: 0, id: "publish-delay" });
  const prio = h("input", { type: "number", min: 0, max: 9, value: 0, id: "publish-priority" });
  const group = h("input", { id: "publish-group", autocomplete: "off" });
  const publish = h("form", { "aria-label": "Publish a test message", class: "card" },
    h("h3", { text: "Publish a test message" }), field("Payload (JSON)", payload),
    h("div", { class: "row" }, field("Delay (s)", delay), field("Priority", prio), field("Group (FIFO)", group),
      h("button", { type: "submit", class: "primary", text: "Publish" })));
  publish.addEventListener("submit", async (event) => {
    event.preventDefault();
    let value;
    try { value = JSON.parse(payload.value); } catch { say("The payload is not valid JSON.", true); return; }
    const body = { queue: name, payload: value, priority: Number(prio.value) };
    if (Number(delay.value) > 0) body.delay_seconds = Number(delay.value);
    if (group.value.trim()) body.group_id = group.value.trim();
    try {
      const reply = await api("POST", "/v1/queue/publish", body);
      say(`Published ${reply.message_id}.`);
      await load(true);
    } catch (error) { say(`Could not publish: ${error.message}`, true); }
  });
  const lookupId = h("input", { id: "find-id", autocomplete: "off", spellcheck: "false" });
  const found = h("div", { id: "find-result", "aria-live": "polite" });
  const lookup = h("form", { class: "row", "aria-label": "Find a message" }, field("Find a message by id", lookupId),
    h("button", { type: "submit", text: "Find" }));
  lookup.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const m = await api("GET", `/v1/queue/message/${q(name)}/${q(lookupId.value.trim())}`);
      const where = m.held_in === name ? "" : ` in ${m.held_in}`;
      const dead = m.state === "dead_letter" ? ` (${m.reason}, from ${m.source_queue}${m.last_error ? ": " + m.last_error : ""})` : "";
      found.replaceChildren(h("p", {}, h("b", { text: m.state.replace("_", " ") + where }), dead),
        h("table", { class: "cards" }, h("tbody", {}, messageItem(m))));
    } catch (error) {
      found.replaceChildren(h("p", { class: "muted", text: error.message }));
    }
  });
  const section = h("section", { "aria-labelledby": "messages-title" },
    h("h2", { id: "messages-title", text: "Messages" }), lookup, found,
    h("p", { class: "muted", text: "Peeking reads messages without leasing or changing them." }),
    h("div", { class: "row" }, field("State", state),
      h("button", { type: "button", text: "Reload messages", onclick: () => load(true).catch((e) => say(e.message, true)) })),
    h("table", { class: "cards" }, h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Message" }),
      h("th", { scope: "col", text: "Facts" }), h("th", { scope: "col", text: "Payload" }))), tbody),
    empty, more, publish);
  return { section, load };
}

function deadLettersSection(name, afterChange) {
  const tbody = h("tbody", { id: "dead-rows" });
  const empty = h("p", { class: "muted", id: "dead-empty", text: "No dead letters.", hidden: true });
  const more = h("button", { type: "button", text: "Load more", hidden: true });
  let cursor = null;
  const redrive = async (body, what) => {
    try {
      const reply = await api("POST", `/v1/queue/dlq/redrive/${q(name)}`, body);
      say(`Redrove ${reply.redriven} ${what}.`);
      await load(true);
      await afterChange();
    } catch (error) { say(`Could not redrive: ${error.message}`, true); }
  };
  let loads = 0;
  const load = async (fresh) => {
    const token = fresh ? ++loads : loads;
    const from = fresh ? null : cursor;
    const page = await api("GET", `/v1/queue/dlq/list/${q(name)}?limit=50${from ? "&cursor=" + q(from) : ""}`);
    if (token !== loads) return;
    if (fresh) tbody.replaceChildren();
    for (const d of page.items) {
      tbody.append(h("tr", {},
        h("td", { "data-label": "Message" }, h("code", { text: d.message_id })),
        h("td", { "data-label": "Reason", text: d.reason }),
        h("td", { "data-label": "Attempts", class: "num", text: String(d.attempts) }),
        h("td", { "data-label": "Source", text: d.source_queue }),
        h("td", { "data-label": "Last error", text: d.last_error || "—" }),
        h("td", { "data-label": "Dead-lettered", text: when(d.dead_lettered_at) }),
        h("td", { "data-label": "Payload" }, h("pre", { text: pretty(d.payload) })),
        h("td", {}, h("button", { type: "button", "aria-label": `Redrive ${d.message_id}`, text: "Redrive",
          onclick: () => redrive({ message_id: d.message_id }, "message") }))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = tbody.children.length > 0;
  };
  more.addEventListener("click", () => load(false).catch((e) => say(e.message, true)));
  const since = h("input", { type: "datetime-local", id: "redrive-since", step: 1 });
  const section = h("section", { "aria-labelledby": "dead-title", id: "dead" },
    h("h2", { id: "dead-title", text: "Dead letters" }),
    h("div", { class: "row" },
      h("button", { type: "button", id: "redrive-all", text: "Redrive all", onclick: () => redrive({}, "dead letters") }),
      field("Dead-lettered since", since),
      h("button", { type: "button", text: "Redrive since", onclick: () => {
        if (!since.value) { say("Choose a time first.", true); return; }
        redrive({ since: new Date(since.value).toISOString() }, "dead letters");
      } })),
    h("table", { class: "cards" }, h("thead", {}, h("tr", {}, ["Message", "Reason", "Attempts", "Source", "Last error",
      "Dead-lettered", "Payload", "Action"].map((t) => h("th", { scope: "col", text: t })))), tbody),
    empty, more);
  return { section, load };
}

const OUTCOMES = { success: "delivered", failure: "failed, retried", dead_lettered: "failed, dead-lettered" };

function attemptsTable(attempts) {
  if (!attempts.length) return h("p", { class: "muted", id: "push-attempts-empty", text: "No delivery attempted yet." });
  return h("table", { class: "cards", id: "push-attempts" },
    h("caption", { class: "muted", text: `The latest ${attempts.length} delivery attempts, newest first.` }),
    h("thead", {}, h("tr", {}, ["When", "Message", "Attempt", "Outcome", "Answer", "Took"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, attempts.map((a) => h("tr", { "data-outcome": a.outcome },
      h("td", { "data-label": "When", text: when(a.at) }),
      h("td", { "data-label": "Message" }, h("code", { text: a.message_id })),
      h("td", { "data-label": "Attempt", class: "num", text: String(a.attempt) }),
      h("td", { "data-label": "Outcome" }, h("span", { class: `badge ${a.outcome}`, text: OUTCOMES[a.outcome] || a.outcome })),
      // A failure's error names its status when there was an answer ("HTTP 503: busy"), else what went wrong.
      h("td", { "data-label": "Answer", text: a.error || (a.status ? `HTTP ${a.status}` : "no answer") }),
      h("td", { "data-label": "Took", class: "num", text: `${a.duration_ms} ms` })))));
}

async function subscriptionSection(name, row) {
  const section = h("section", { "aria-labelledby": "push-title" }, h("h2", { id: "push-title", text: "Push subscription" }));
  let subscribed = false;
  try {
    const s = await api("GET", `/v1/queue/push_subscription/${q(name)}`);
    subscribed = true;
    const outcome = s.last_attempt_at
      ? `last attempt ${when(s.last_attempt_at)}: ${s.last_status ?? "no status"}${s.last_error ? " — " + s.last_error : ""}`
      : "no delivery attempted yet";
    section.append(h("p", {}, h("code", { text: s.url }), s.disabled ? h("span", { class: "badge", text: " disabled" }) : null),
      h("p", { class: "muted", text: `${outcome}; ${s.consecutive_failures} failures in a row; ` +
        `concurrency ${s.max_concurrency}, visibility ${s.visibility_timeout} s${s.signed ? ", signed" : ""}` }),
      h("h3", { text: "Recent deliveries" }), attemptsTable(s.recent_attempts));
  } catch (error) {
    if (error.code !== "SUBSCRIPTION_NOT_FOUND") throw error;
    section.append(h("p", { class: "muted", text: "No push subscription." }));
  }
  if (row) {
    section.append(h("p", { class: "muted", id: "push-outcomes",
      text: `Delivery outcomes so far: ${row.push_success} delivered, ${row.push_failure} failed (retried), ` +
        `${row.push_dead_lettered} dead-lettered.` }));
  }
  // The attempts per minute over the last hour, from the queue's history.
  const points = (await api("GET", `/v1/queue/history/${q(name)}?window=1h`)).points;
  const delivered = points.reduce((n, p) => n + p.push_success, 0);
  const failed = points.reduce((n, p) => n + p.push_failure, 0);
  section.append(h("p", { id: "push-recent", text: `Last hour: ${delivered} delivered, ${failed} failed attempts.` }));
  if (subscribed && (delivered || failed)) {
    section.append(chart("Push attempts per minute", points, [
      { key: "push_success", label: "delivered", tone: 2 }, { key: "push_failure", label: "failed", tone: 3 }]));
  }
  return section;
}

export async function renderQueue(name, seq) {
  const record = await api("GET", `/v1/queue/get/${q(name)}`);
  if (seq !== view.seq) return;
  const countsBox = h("div", {});
  const charts = h("div", { class: "charts", id: "charts" });
  const windowSelect = h("select", { id: "history-window" }, h("option", { value: "1h", text: "last hour" }), h("option", { value: "24h", text: "last day" }));
  const pushBox = h("div", {});
  const messages = messagesSection(name);
  let lastCounts = null;
  const reloadCounts = async () => {
    const [stats, history] = await Promise.all([
      api("GET", `/v1/queue/stats/${q(name)}`), api("GET", `/v1/queue/history/${q(name)}?window=${windowSelect.value}`)]);
    if (seq !== view.seq) return;
    countsBox.replaceChildren(counts(stats));
    // Counts that moved since the last refresh: the lists below are out of date, read them again.
    const now = [stats.available, stats.in_flight, stats.delayed, stats.dlq].join();
    if (lastCounts !== null && now !== lastCounts) await Promise.all([messages.load(true), dead.load(true)]);
    lastCounts = now;
    if (!charts.children.length) {
      charts.append(
        chart("Depth", history.points, [{ key: "depth", label: "available + delayed + in flight" }]),
        chart("In / out / dead-lettered per minute", history.points, [
          { key: "published", label: "published" }, { key: "acked", label: "acked" }, { key: "dead_lettered", label: "dead-lettered" }]));
    } else {
      for (const figure of charts.children) figure.update(history.points);
    }
  };
  const dead = deadLettersSection(name, reloadCounts);
  windowSelect.addEventListener("change", () => { charts.replaceChildren(); reloadCounts().catch((e) => say(e.message, true)); });
  const danger = async (what) => {
    const purge = what === "purge";
    const ok = await confirmNamed(purge ? `Purge queue ${name}?` : `Delete queue ${name}?`,
      purge ? `Every available, delayed and in-flight message of ${name} is deleted.`
        : `Queue ${name} and all its messages are deleted.`, name);
    if (!ok) { say("Nothing was changed."); return; }
    try {
      if (purge) {
        const reply = await api("POST", `/v1/queue/purge/${q(name)}`, {});
        say(`Purged ${reply.purged} messages from ${name}.`);
        await reloadCounts();
      } else {
        await api("DELETE", `/v1/queue/delete/${q(name)}`);
        say(`Queue ${name} deleted.`);
        location.hash = "#/";
      }
    } catch (error) { say(`Could not ${what}: ${error.message}`, true); }
  };
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/", text: "← All queues" })),
    h("h1", {}, `Queue ${name} `, h("span", { class: "badge", text: record.type })),
    countsBox,
    h("div", { class: "row" }, field("History", windowSelect),
      h("button", { type: "button", id: "purge", class: "danger", text: "Purge…", onclick: () => danger("purge") }),
      h("button", { type: "button", id: "delete", class: "danger", text: "Delete…", onclick: () => danger("delete") })),
    charts,
    h("section", { "aria-labelledby": "config-title" }, h("h2", { id: "config-title", text: "Configuration" }),
      configForm(record, async () => { await renderQueue(name, seq); })),
    pushBox, messages.section, dead.section);
  const row = await overviewRow(name).catch(() => null);
  await Promise.all([reloadCounts(), messages.load(true), dead.load(true),
    subscriptionSection(name, row).then((s) => pushBox.replaceChildren(s))]);
  view.timer = setInterval(() => reloadCounts().catch((e) => say(e.message, true)), REFRESH_MS);
}

// --- dead letters of any queue ----------------------------------------------------------------------
export async function renderDeadPage(chosen, seq) {
  const items = (await allQueues()).filter((i) => i.dlq > 0 || i.queue === chosen);
  if (seq !== view.seq) return;
  const select = h("select", { id: "dead-queue" }, h("option", { value: "", text: "choose a queue" }),
    items.map((i) => h("option", { value: i.queue, text: `${i.queue} (${i.dlq})` })));
  select.value = chosen;
  select.addEventListener("change", () => { location.hash = `#/dead/${encodeURIComponent(select.value)}`; });
  main.replaceChildren(h("h1", { text: "Dead letters" }),
    items.length ? field("Queue", select) : h("p", { class: "muted", text: "No queue has dead letters." }));
  if (chosen) {
    const dead = deadLettersSection(chosen, async () => {});
    main.append(dead.section);
    await dead.load(true);
  }
}
