// The dashboard's building blocks: elements (text is always put in as text, never parsed as HTML), the
// status line, formats, the charts (plain SVG), and the state of the page shown (its number and timer).
export const main = document.getElementById("main");
const statusLine = document.getElementById("status");
export const REFRESH_MS = 5000;
// The page shown: `seq` numbers each render (a slower, older one stops when it sees a newer), `timer` its refresh.
export const view = { seq: 0, timer: null };

// --- small helpers ----------------------------------------------------------------------------------
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  return el;
}

let fieldSeq = 0;
export function field(labelText, input) {
  const id = input.id || `f${++fieldSeq}`;
  input.id = id;
  return h("div", {}, h("label", { for: id, text: labelText }), input);
}

export function say(text, isError) {
  statusLine.textContent = text || "";
  statusLine.classList.toggle("error", Boolean(isError));
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

export function when(text) {
  if (!text) return "—";
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toLocaleString();
}

export function pretty(payload) {
  try { return JSON.stringify(payload, null, 2); } catch { return String(payload); }
}

export function queueHref(name, section) { return `#/queue/${encodeURIComponent(name)}${section ? "/" + section : ""}`; }

// --- charts -------------------------------------------------------------------------------------------
// A chart of per-minute points (plain SVG): `series` are {key, label, tone?} (tone 1..3 picks the colour, by
// default its place). Hovering it, or focusing it (it is a slider: arrow keys, Home, End, Page Up/Down move
// along the minutes), shows the minute and the values under the pointer, in the figure and as the slider's
// value text. chart.update(points) redraws it in place, so a refresh keeps the focus and the minute read.
export function chart(title, points, series) {
  const width = 600, height = 140, pad = 4;
  const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "slider",
    tabindex: 0, "aria-valuemin": 0, class: "plot" });
  const caption = h("span", { class: "muted" });
  const readout = h("output", { class: "readout", "aria-hidden": "true" });
  const figure = h("figure", { class: "chart card" },
    h("figcaption", {}, h("b", { text: title }), caption),
    box, readout,
    h("div", { class: "legend" }, series.map((s, i) => h("span", {}, h("span", { class: `swatch s${s.tone || i + 1}` }), s.label))));
  let selected = null; // the minute read (its ISO text), null when none
  let hovering = false;
  const xOf = (n) => (points.length > 1 ? (n / (points.length - 1)) * width : 0);
  const minuteText = (p) => new Date(p.minute).toLocaleString([], points.length > 60
    ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  const valuesText = (p) => series.map((s) => `${s.label} ${p[s.key] ?? "—"}`).join(", ");
  const indexOf = () => {
    const n = points.findIndex((p) => p.minute === selected);
    return n >= 0 ? n : points.length - 1;
  };
  const draw = () => {
    const values = series.flatMap((s) => points.map((p) => p[s.key]).filter((v) => v !== null));
    const top = Math.max(1, ...values);
    const yOf = (v) => height - pad - (v / (top * 1.15)) * (height - 2 * pad);
    box.replaceChildren();
    for (const y of [0.25, 0.5, 0.75]) box.append(svg("line", { class: "grid", x1: 0, x2: width, y1: height * y, y2: height * y }));
    series.forEach((s, i) => {
      const coords = [];
      points.forEach((p, n) => { if (p[s.key] !== null) coords.push(`${xOf(n).toFixed(1)},${yOf(p[s.key]).toFixed(1)}`); });
      box.append(svg("polyline", { class: `line${s.tone || i + 1}`, points: coords.join(" ") }));
      if (coords.length) { // the latest value as a dot, visible even when the series has a single point
        const [x, y] = coords[coords.length - 1].split(",");
        box.append(svg("circle", { class: `dot${s.tone || i + 1}`, cx: Math.min(Number(x), width - 4), cy: y, r: 4 }));
      }
    });
    const first = points[0] ? minuteText(points[0]) : "";
    caption.textContent = ` (max ${top}, from ${first})`;
    box.setAttribute("aria-label", `${title}: ${series.map((s) => `${s.label} up to ${Math.max(0, ...points.map((p) => p[s.key] ?? 0))}`).join(", ")}`);
    box.setAttribute("aria-valuemax", Math.max(0, points.length - 1));
    const shown = selected !== null && points.length;
    const n = indexOf();
    const p = points[n];
    box.setAttribute("aria-valuenow", Math.max(0, n));
    box.setAttribute("aria-valuetext", p ? `${minuteText(p)}: ${valuesText(p)}` : "no data");
    readout.textContent = shown && p ? `${minuteText(p)}: ${valuesText(p)}` : "Hover or focus the chart to read a minute.";
    if (shown && p) {
      const x = Math.min(Math.max(xOf(n), 1), width - 1);
      box.append(svg("line", { class: "cursor", x1: x, x2: x, y1: 0, y2: height }));
      series.forEach((s, i) => {
        if (p[s.key] !== null) box.append(svg("circle", { class: `dot${s.tone || i + 1} mark`, cx: x, cy: yOf(p[s.key]), r: 5 }));
      });
    }
  };
  const pick = (n) => {
    if (!points.length) return;
    selected = points[Math.min(points.length - 1, Math.max(0, n))].minute;
    draw();
  };
  box.addEventListener("pointermove", (event) => {
    const rect = box.getBoundingClientRect();
    if (!rect.width) return;
    hovering = true;
    pick(Math.round(((event.clientX - rect.left) / rect.width) * (points.length - 1)));
  });
  box.addEventListener("pointerleave", () => {
    hovering = false;
    if (document.activeElement !== box) { selected = null; draw(); }
  });
  box.addEventListener("focus", () => { if (selected === null) pick(points.length - 1); });
  box.addEventListener("blur", () => { if (!hovering) { selected = null; draw(); } });
  box.addEventListener("keydown", (event) => {
    const n = indexOf();
    const moves = { ArrowLeft: n - 1, ArrowDown: n - 1, ArrowRight: n + 1, ArrowUp: n + 1, Home: 0,
      End: points.length - 1, PageUp: n - 10, PageDown: n + 10 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    pick(moves[event.key]);
  });
  figure.update = (fresh) => { points = fresh; draw(); };
  draw();
  return figure;
}
