// The dashboard at /ui: plain JavaScript modules, no framework, no build step. Pages (by the URL's fragment):
//   #/             every queue (queues.js)
//   #/queue/NAME   one queue (queue.js)
//   #/dead         the dead letters of a queue chosen from those that have some (queue.js)
// This module signs in and out, switches the theme and routes. The pages call the API of this server with the
// project key typed in at sign-in, kept in sessionStorage only (api.js).
import { KEY_STORAGE, api, onUnauthorized } from "./api.js";
import { field, h, main, say, view } from "./dom.js";
import { renderDeadPage, renderQueue } from "./queue.js";
import { renderQueues } from "./queues.js";

const THEME_STORAGE = "broker.theme";

// --- sign in, theme, routing --------------------------------------------------------------------------
function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  location.hash = "#/";
  route();
  if (message) say(message, true);
}

function renderSignIn() {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  const input = h("input", { type: "password", id: "key", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", text: "Sign in" }),
    h("p", { class: "muted", text: "With a project's API key. It is kept in this tab only (session storage)." }),
    field("Project API key", input),
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary", text: "Sign in" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, input.value.trim());
    try {
      await api("GET", "/v1/queue/overview?limit=1");
      say("Signed in.");
      route();
    } catch (error) {
      sessionStorage.removeItem(KEY_STORAGE);
      say(`Sign-in failed: ${error.message}`, true);
      renderSignIn();
      document.getElementById("key").focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function applyTheme() {
  const chosen = sessionStorage.getItem(THEME_STORAGE);
  if (chosen) document.documentElement.dataset.theme = chosen;
  const dark = chosen ? chosen === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.getElementById("theme").textContent = dark ? "Light" : "Dark";
  document.getElementById("theme").setAttribute("aria-pressed", String(dark));
}

document.getElementById("theme").addEventListener("click", () => {
  const dark = document.getElementById("theme").textContent === "Dark";
  sessionStorage.setItem(THEME_STORAGE, dark ? "dark" : "light");
  applyTheme();
});
document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));

function route() {
  clearInterval(view.timer);
  view.timer = null;
  const seq = ++view.seq;
  if (!sessionStorage.getItem(KEY_STORAGE)) { renderSignIn(); return; }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  for (const link of document.querySelectorAll("#nav a")) {
    const current = (parts[0] === "dead") === (link.getAttribute("href") === "#/dead") && parts[0] !== "queue";
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const done = parts[0] === "queue" && parts[1] ? renderQueue(parts[1], seq)
    : parts[0] === "dead" ? renderDeadPage(parts[1] || "", seq) : renderQueues(seq);
  done.catch((error) => say(error.message, true));
}

window.addEventListener("hashchange", () => { route(); main.focus(); });

onUnauthorized(signOut);
applyTheme();
route();
