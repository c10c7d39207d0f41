// What every page shares: the signed-in tenant and sign-out in the top bar, the active tab,
// messages, and a confirmation dialog (a <dialog>, not window.confirm).

import { session } from "./api.js";
import { fill, h } from "./dom.js";

/** Start a page that needs a key: without one, go to sign-in and come back here after. */
export function startPage() {
  if (!session.key()) {
    location.replace(`/sign-in?next=${encodeURIComponent(location.pathname + location.hash)}`);
    return false;
  }
  const account = document.querySelector(".account");
  fill(account.querySelector("[data-testid=tenant]"), session.tenant() || "");
  account.hidden = false;
  account.querySelector("[data-testid=sign-out]").addEventListener("click", () => {
    session.end("You are signed out.");
    location.assign("/sign-in");
  });
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === page) link.setAttribute("aria-current", "page");
  }
  return true;
}

/** Show `message` in `box` (an element with class "message"), as an error or a plain note. */
export function say(box, message, { error = false } = {}) {
  box.classList.toggle("error", error);
  box.hidden = !message;
  fill(box, message || "");
}

/**
 * Ask a yes/no question in the page's dialog; resolves true when the person confirms.
 * `action` is the confirming button's label.
 */
export function confirmDialog(title, text, action) {
  const dialog = document.getElementById("confirm");
  fill(dialog.querySelector("h2"), title);
  fill(dialog.querySelector("p"), text);
  const yes = dialog.querySelector("[value=yes]");
  fill(yes, action);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

/** A status badge: the API's status word as data-status, a friendly label as text. */
export function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}`, dataset: { status }, ...attrs }, statusLabel(status));
}

const LABELS = {
  PENDING: "Waiting",
  PREPROCESSING: "Preparing audio",
  PROCESSING_ASR: "Transcribing",
  PROCESSING_LLM: "Writing notes",
  COMPLETE: "Complete",
  FAILED: "Failed",
};

/** The status said for people. */
export function statusLabel(status) {
  return LABELS[status] || String(status);
}

/** Whether a status is final. */
export function finished(status) {
  return status === "COMPLETE" || status === "FAILED";
}
