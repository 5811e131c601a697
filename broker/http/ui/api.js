// The API of this server, with the key typed in at sign-in (the tab's session storage only).
export const KEY_STORAGE = "broker.key";
let unauthorized = () => {};

// What to do when the key is refused (401): the entry point signs out.
export function onUnauthorized(handler) { unauthorized = handler; }

// --- the API ------------------------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY_STORAGE) || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    if (response.status === 401) unauthorized("The key was refused: sign in again.");
    throw new ApiError(response.status, error.code || "HTTP_" + response.status, error.message || `HTTP ${response.status}`);
  }
  return data;
}

export const q = encodeURIComponent;

export async function allQueues() {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", `/v1/queue/overview?limit=1000${cursor ? "&cursor=" + q(cursor) : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

// The overview row of one queue (its push outcome counters): pages through the overview until it is found.
export async function overviewRow(name) {
  let cursor = null;
  do {
    const page = await api("GET", `/v1/queue/overview?limit=1000${cursor ? "&cursor=" + q(cursor) : ""}`);
    const row = page.items.find((i) => i.queue === name);
    if (row || !page.items.length || page.items[page.items.length - 1].queue > name) return row || null;
    cursor = page.next_cursor;
  } while (cursor);
  return null;
}
