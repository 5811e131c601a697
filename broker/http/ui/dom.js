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
export function chart(title, points, series) {
  const width = 600, height = 140, pad = 4;
  const values = series.flatMap((s) => points.map((p) => p[s.key]).filter((v) => v !== null));
  const top = Math.max(1, ...values);
  const box = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
    "aria-label": `${title}: ${series.map((s) => `${s.label} up to ${Math.max(0, ...points.map((p) => p[s.key] ?? 0))}`).join(", ")}` });
  for (const y of [0.25, 0.5, 0.75]) box.append(svg("line", { class: "grid", x1: 0, x2: width, y1: height * y, y2: height * y }));
  series.forEach((s, i) => {
    const coords = [];
    points.forEach((p, n) => {
      if (p[s.key] === null) return;
      const x = points.length > 1 ? (n / (points.length - 1)) * width : 0;
      coords.push(`${x.toFixed(1)},${(height - pad - (p[s.key] / (top * 1.15)) * (height - 2 * pad)).toFixed(1)}`);
    });
    box.append(svg("polyline", { class: `line${i + 1}`, points: coords.join(" ") }));
    if (coords.length) { // the latest value as a dot, visible even when the series has a single point
      const [x, y] = coords[coords.length - 1].split(",");
      box.append(svg("circle", { class: `dot${i + 1}`, cx: Math.min(Number(x), width - 4), cy: y, r: 4 }));
    }
  });
  const first = points[0] ? new Date(points[0].minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
  return h("figure", { class: "chart card" },
    h("figcaption", {}, h("b", { text: title }), h("span", { class: "muted", text: ` (max ${top}, from ${first})` })),
    box,
    h("div", { class: "legend" }, series.map((s, i) => h("span", {}, h("span", { class: `swatch s${i + 1}` }), s.label))));
}
