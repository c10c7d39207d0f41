// Sign-in: check the key against GET /v1/me, then keep it (and its tenant) for this tab.

import { api, session } from "./api.js";
import { say } from "./layout.js";

const form = document.getElementById("sign-in-form");
const input = form.querySelector("[data-testid=api-key]");
const message = document.getElementById("sign-in-message");

/** Where to go after signing in: a path on this server only. */
function next() {
  const wanted = new URLSearchParams(location.search).get("next") || "/";
  return wanted.startsWith("/") && !wanted.startsWith("//") ? wanted : "/";
}

const notice = session.takeNotice();
if (notice) say(message, notice);
if (session.key()) location.replace(next());

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (!key) {
    say(message, "Enter your API key.", { error: true });
    return;
  }
  const button = form.querySelector("[data-testid=sign-in]");
  button.disabled = true;
  say(message, "Checking the key…");
  try {
    const me = await api("/v1/me", { key });
    session.start(key, me.tenant);
    input.value = "";
    location.assign(next());
  } catch (error) {
    say(message, error.describe ? error.describe() : String(error), { error: true });
  } finally {
    button.disabled = false;
  }
});
