// The queue table (#/): every queue, sortable, filterable, refreshing by itself.
import { allQueues, api } from "./api.js";
import { REFRESH_MS, age, field, h, main, queueHref, say, view } from "./dom.js";

// --- the queue table ----------------------------------------------------------------------------------
const COLUMNS = [
  ["queue", "Queue", false], ["type", "Type", false], ["available", "Available", true],
  ["in_flight", "In flight", true], ["delayed", "Delayed", true], ["dlq", "Dead letters", true],
  ["oldest_age_seconds", "Oldest", true], ["in_rate", "In /min", true], ["out_rate", "Out /min", true],
];
const tableState = { sort: "queue", descending: false, filter: "", auto: true };

// The rates are the server's: published and acked per minute over the last 5 minutes (queue.overview).
function withRates(items) {
  for (const item of items) {
    item.in_rate = item.published_per_minute;
    item.out_rate = item.acked_per_minute;
  }
}

function sorted(items) {
  const { sort, descending } = tableState;
  const filter = tableState.filter.toLowerCase();
  const shown = filter ? items.filter((i) => i.queue.toLowerCase().includes(filter) || i.type.includes(filter)) : items;
  return shown.sort((a, b) => {
    const x = a[sort] ?? -1, y = b[sort] ?? -1;
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return (descending ? -order : order) || a.queue.localeCompare(b.queue);
  });
}

function cellText(item, key) {
  if (key === "oldest_age_seconds") return age(item[key]);
  if (key === "in_rate" || key === "out_rate") return item[key] == null ? "—" : item[key].toFixed(1);
  return String(item[key]);
}

function queueRows(items) {
  const body = document.createDocumentFragment();
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const [key, label, numeric] of COLUMNS) {
      const td = document.createElement("td");
      td.dataset.label = label;
      if (numeric) td.className = "num";
      if (key === "queue") td.append(h("a", { href: queueHref(item.queue), text: item.queue }));
      else td.textContent = cellText(item, key);
      tr.append(td);
    }
    body.append(tr);
  }
  return body;
}

export async function renderQueues(seq) {
  const tbody = h("tbody", {});
  const count = h("span", { class: "muted", id: "queue-count" });
  const headRow = h("tr", {});
  const sortSelect = h("select", { id: "sort-by" }, COLUMNS.map(([key, label]) => h("option", { value: key, text: label })));
  let latest = [];
  const paint = () => {
    const shown = sorted(latest.slice());
    tbody.replaceChildren(queueRows(shown));
    count.textContent = `${shown.length} of ${latest.length} queues`;
    for (const th of headRow.children) {
      const key = th.dataset.key;
      th.setAttribute("aria-sort", key === tableState.sort ? (tableState.descending ? "descending" : "ascending") : "none");
    }
    sortSelect.value = tableState.sort;
  };
  const sortBy = (key) => {
    tableState.descending = tableState.sort === key ? !tableState.descending : COLUMNS.find((c) => c[0] === key)[2];
    tableState.sort = key;
    paint();
  };
  for (const [key, label, numeric] of COLUMNS) {
    headRow.append(h("th", { scope: "col", class: numeric ? "num" : null, "data-key": key },
      h("button", { type: "button", onclick: () => sortBy(key), text: label })));
  }
  sortSelect.addEventListener("change", () => { tableState.sort = sortSelect.value; paint(); });
  const filter = h("input", { type: "search", id: "filter", value: tableState.filter, placeholder: "name or type" });
  filter.addEventListener("input", () => { tableState.filter = filter.value; paint(); });
  const auto = h("input", { type: "checkbox", id: "auto-refresh", checked: tableState.auto });
  auto.addEventListener("change", () => { tableState.auto = auto.checked; });
  const name = h("input", { id: "new-queue", required: true, pattern: "[A-Za-z0-9_\\-]{1,80}", autocomplete: "off" });
  const type = h("select", { id: "new-type" }, h("option", { text: "standard" }), h("option", { text: "fifo" }));
  const create = h("form", { class: "row", "aria-label": "Create a queue" },
    field("New queue name", name), field("Type", type),
    h("button", { type: "submit", class: "primary", text: "Create queue" }));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/v1/queue/create", { name: name.value.trim(), type: type.value });
      say(`Queue ${name.value.trim()} created.`);
      name.value = "";
      await load();
    } catch (error) { say(`Could not create the queue: ${error.message}`, true); }
  });
  main.replaceChildren(
    h("h1", { text: "Queues" }),
    create,
    h("div", { class: "row" }, field("Filter", filter),
      h("div", { class: "sortbar" }, field("Sort by", sortSelect),
        h("button", { type: "button", text: "Reverse", onclick: () => { tableState.descending = !tableState.descending; paint(); } })),
      h("label", { class: "inline", for: "auto-refresh" }, auto, "Refresh every 5 s"),
      h("button", { type: "button", id: "refresh", text: "Refresh now", onclick: () => load() }), count),
    h("table", { class: "cards", id: "queues" }, h("caption", { class: "muted", text: "In and Out: messages published and acked per minute over the last 5 minutes." }), h("thead", {}, headRow), tbody),
  );
  const load = async () => {
    const started = performance.now();
    const items = await allQueues();
    if (seq !== view.seq) return;
    withRates(items);
    latest = items;
    paint();
    document.body.dataset.rendered = String(Math.round(performance.now() - started));
  };
  await load();
  view.timer = setInterval(() => { if (tableState.auto) load().catch((e) => say(e.message, true)); }, REFRESH_MS);
}
