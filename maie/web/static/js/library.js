// The library: the tenant's tasks newest first, a page at a time (GET /v1/tasks), with what a
// person looks for (name, status, length, speakers, template), search and deletion.

import { api, features } from "./api.js";
import { clock, fill, h, snippetNodes, when } from "./dom.js";
import { confirmDialog, finished, say, startPage, statusBadge } from "./layout.js";

const PAGE = 20;
const PLACEHOLDER = { search: "Search transcripts and summaries", filter: "Filter this page by name or words" };
const REFRESH_MS = 3000;

const rows = document.getElementById("task-rows");
const message = document.getElementById("library-message");
const newer = document.getElementById("page-newer");
const older = document.getElementById("page-older");
const pageLabel = document.getElementById("page-label");
const searchForm = document.getElementById("search-form");
const searchInput = searchForm.querySelector("[data-testid=search]");
const clearSearch = document.getElementById("search-clear");

/** Cursors of the pages seen so far: cursors[i] opens page i. */
const cursors = [null];
let pageIndex = 0;
let tasks = [];
let query = "";
let refreshTimer = null;
/** Whether to ask GET /v1/search; false without the route, or once it answers that it has none. */
let canSearch = Boolean(features.search);
/** Cursors of the search's pages seen so far, as for the list; a new query starts again. */
let searchCursors = [null];
let searchIndex = 0;
/** Answers of a server whose search is absent (no such route, or a store without search). */
const NO_SEARCH = new Set([404, 405, 501]);
/** What a finished task's status adds to its row (length, speakers, text to filter on). */
const details = new Map();
/** Tasks whose details are being fetched: the filter waits for them before it counts. */
const loading = new Set();

function detailsOf(status) {
  const results = status.results || {};
  const segments = results.segments || [];
  const labels = new Set(segments.map((s) => s.speaker).filter(Boolean));
  const speakers = Array.isArray(results.speakers) ? results.speakers.length : labels.size;
  const words = [results.raw_transcript, results.clean_transcript, JSON.stringify(results.summary || "")];
  return {
    duration: status.metrics?.input_duration_seconds ?? null,
    speakers: speakers || null,
    text: words.filter(Boolean).join(" ").toLowerCase(),
  };
}

/** Fill in the details of finished tasks, a few requests at a time. */
async function loadDetails(list) {
  const wanted = list.filter(
    (t) => t.status === "COMPLETE" && !loading.has(t.task_id) && details.get(t.task_id)?.version !== t.result_version,
  );
  for (const task of wanted) loading.add(task.task_id);
  const next = async () => {
    const task = wanted.shift();
    if (!task) return;
    try {
      const status = await api(`/v1/status/${task.task_id}`);
      details.set(task.task_id, { ...detailsOf(status), version: task.result_version });
      updateRow(task.task_id);
    } catch {
      // The row keeps its dashes; the task page says what is wrong.
    } finally {
      loading.delete(task.task_id);
    }
    await next();
  };
  await Promise.all([next(), next(), next(), next()]);
  if (query && !canSearch) applyFilter();
}

function nameOf(task) {
  return task.filename || task.source_url || "(recording without a name)";
}

function row(task, hit = null) {
  const link = h("a", { href: `/tasks/${task.task_id}`, class: "name", text: nameOf(task) });
  const name = h("td", { class: "name-cell" }, link);
  if (hit) {
    const found = h("ul", { class: "snippets" });
    for (const segment of hit.segments || []) {
      const anchor = segment.id !== null && segment.id !== undefined && segment.source !== "summary"
        ? `#segment-${segment.id}` : "#summary";
      const where = segment.source === "summary" ? "Summary" : clock(segment.start);
      found.append(
        h("li", {},
          h("a", { href: `/tasks/${task.task_id}${anchor}`, class: "time", text: where }),
          segment.speaker ? h("span", { class: "speaker-chip", text: segment.speaker }) : null,
          h("span", { class: "snippet" }, snippetNodes(segment.snippet))),
      );
    }
    name.append(found);
  }
  const actions = h("td", { class: "actions" });
  if (features.delete) {
    actions.append(h("button", { type: "button", class: "ghost danger", text: "Delete", testid: "delete", on: { click: () => remove(task) } }));
  }
  return h("tr", { testid: "task-row", dataset: { taskId: task.task_id } },
    name,
    h("td", {}, statusBadge(task.status)),
    h("td", { class: "muted", text: when(task.submitted_at) }),
    h("td", { class: "num", dataset: { col: "duration" }, text: "—" }),
    h("td", { class: "num", dataset: { col: "speakers" }, text: "—" }),
    h("td", { class: "muted", text: task.template_id || "—" }),
    actions);
}

function updateRow(taskId) {
  const found = details.get(taskId);
  const tr = rows.querySelector(`tr[data-task-id="${CSS.escape(taskId)}"]`);
  if (!tr || !found) return;
  fill(tr.querySelector("[data-col=duration]"), found.duration === null ? "—" : clock(found.duration));
  fill(tr.querySelector("[data-col=speakers]"), found.speakers === null ? "—" : String(found.speakers));
}

function emptyRow(text) {
  return h("tr", { class: "empty" }, h("td", { colspan: 7 }, text, " ", h("a", { href: "/upload", text: "Upload a recording" })));
}

function render() {
  fill(rows, tasks.length ? tasks.map((t) => row(t)) : emptyRow("No recordings yet."));
  for (const task of tasks) updateRow(task.task_id);
  pageLabel.textContent = `Page ${pageIndex + 1}`;
  newer.disabled = pageIndex === 0;
  older.disabled = !cursors[pageIndex + 1];
}

async function loadPage({ quiet = false } = {}) {
  clearTimeout(refreshTimer);
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (cursors[pageIndex]) params.set("cursor", cursors[pageIndex]);
  try {
    const page = await api(`/v1/tasks?${params}`);
    tasks = page.tasks;
    cursors[pageIndex + 1] = page.next_cursor;
    // Marked as loading before the filter counts, so that it does not count rows it cannot read yet.
    loadDetails(tasks);
    // A search on screen stays there (this may be a refresh that was under way when it began).
    if (!query) render();
    else if (!canSearch) applyFilter();
    if (!quiet && !query) say(message, "");
  } catch (error) {
    say(message, error.describe ? error.describe() : String(error), { error: true });
  }
  // Unfinished tasks move on by themselves: look again shortly, unless a search is shown.
  if (tasks.some((t) => !finished(t.status)) && !(query && canSearch)) {
    refreshTimer = setTimeout(() => loadPage({ quiet: true }), REFRESH_MS);
  }
}

/** Without the search API: keep the rows of this page that mention the words. */
function applyFilter() {
  render();
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  let shown = 0;
  for (const task of tasks) {
    const haystack = [nameOf(task), task.template_id, task.status, details.get(task.task_id)?.text].join(" ").toLowerCase();
    const match = words.every((w) => haystack.includes(w));
    rows.querySelector(`tr[data-task-id="${CSS.escape(task.task_id)}"]`).hidden = !match;
    shown += match ? 1 : 0;
  }
  const pending = tasks.filter((t) => loading.has(t.task_id)).length;
  if (pending) {
    // The count waits for every transcript: loadDetails filters again when they are in.
    say(message, `Looking for “${query}” in ${pending} more transcript${pending === 1 ? "" : "s"}…`);
    return;
  }
  say(message, `${shown} of ${tasks.length} recordings on this page mention “${query}”.`);
}

async function search() {
  clearTimeout(refreshTimer);
  say(message, "Searching…");
  try {
    const params = new URLSearchParams({ q: query, limit: String(PAGE) });
    if (searchCursors[searchIndex]) params.set("cursor", searchCursors[searchIndex]);
    const found = await api(`/v1/search?${params}`);
    const hits = found.hits;
    searchCursors[searchIndex + 1] = found.next_cursor || null;
    fill(rows, hits.length ? hits.map((hit) => row(hit, hit)) : h("tr", { class: "empty" }, h("td", { colspan: 7, text: `Nothing found for “${query}”.` })));
    const more = searchCursors[searchIndex + 1] || searchIndex > 0 ? ` (page ${searchIndex + 1})` : "";
    say(message, hits.length ? `${hits.length} recording${hits.length === 1 ? " matches" : "s match"} “${query}”${more}.` : "");
    for (const hit of hits) updateRow(hit.task_id);
    loadDetails(hits);
    pageLabel.textContent = `Page ${searchIndex + 1}`;
    newer.disabled = searchIndex === 0;
    older.disabled = !searchCursors[searchIndex + 1];
  } catch (error) {
    if (!NO_SEARCH.has(error.status)) {
      say(message, error.describe ? error.describe() : String(error), { error: true });
      return;
    }
    // This server cannot search after all: filter the list instead, from now on.
    canSearch = false;
    searchInput.placeholder = PLACEHOLDER.filter;
    await loadPage({ quiet: true });
  }
}

async function remove(task) {
  const yes = await confirmDialog(
    "Delete this recording?",
    `“${nameOf(task)}” will be removed with its transcript, every result version and its audio. This cannot be undone.`,
    "Delete",
  );
  if (!yes) return;
  let outcome;
  try {
    await api(`/v1/tasks/${task.task_id}`, { method: "DELETE" });
    outcome = () => say(message, `Deleted “${nameOf(task)}”.`);
  } catch (error) {
    outcome = () => say(message, error.describe ? error.describe() : String(error), { error: true });
  }
  details.delete(task.task_id);
  if (query && canSearch) await search();
  else await loadPage({ quiet: true });
  outcome();
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  query = searchInput.value.trim();
  clearSearch.hidden = !query;
  searchCursors = [null];
  searchIndex = 0;
  if (!query) loadPage();
  else if (canSearch) search();
  else applyFilter();
});
clearSearch.addEventListener("click", () => {
  searchInput.value = "";
  query = "";
  clearSearch.hidden = true;
  loadPage();
});
const searching = () => Boolean(query) && canSearch;
newer.addEventListener("click", () => {
  if (searching()) {
    searchIndex = Math.max(0, searchIndex - 1);
    search();
    return;
  }
  pageIndex = Math.max(0, pageIndex - 1);
  loadPage();
});
older.addEventListener("click", () => {
  if (searching()) {
    if (!searchCursors[searchIndex + 1]) return;
    searchIndex += 1;
    search();
    return;
  }
  if (!cursors[pageIndex + 1]) return;
  pageIndex += 1;
  loadPage();
});

if (startPage()) {
  searchInput.placeholder = canSearch ? PLACEHOLDER.search : PLACEHOLDER.filter;
  loadPage();
}
