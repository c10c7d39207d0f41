// A task's page: live progress, then the transcript with its audio, speakers and summary, every
// result version, another summary on request, and the downloads.

import { api, download, features } from "./api.js";
import { clock, fill, h, when } from "./dom.js";
import { finished, say, startPage, statusLabel } from "./layout.js";
import { watchStatus } from "./status_stream.js";
import { renderSummary } from "./summary.js";
import { Transcript } from "./transcript.js";

const taskId = document.body.dataset.taskId;
const $ = (id) => document.getElementById(id);
const statusBox = document.querySelector("[data-testid=task-status]");
const audio = $("player");
const transcript = new Transcript({ list: $("segments"), audio, speakersList: $("speakers") });
const versionSelect = $("version");
const templates = new Map();
let status = null;
let shown = null; // the result version on screen: {version, results, versions}
let resultsShown = false;

function describe(error) {
  return error.describe ? error.describe() : String(error);
}

function baseName() {
  const name = (status?.filename || "").split("/").pop().replace(/\.[^.]+$/, "");
  return name.replace(/[^\w.-]+/g, "_").slice(0, 80) || taskId;
}

function showStatus(current, how) {
  status = current;
  const name = current.filename || current.source_url || "Recording";
  fill($("task-name"), name);
  document.title = `${name} · MAIE`;
  statusBox.dataset.status = current.status;
  statusBox.className = `badge status-${current.status.toLowerCase()}`;
  fill(statusBox, statusLabel(current.status));
  const facts = [`Submitted ${when(current.submitted_at)}`];
  if (current.metrics?.input_duration_seconds) facts.push(`${clock(current.metrics.input_duration_seconds)} long`);
  if (current.results?.language) facts.push(`language ${current.results.language}`);
  if (current.template_id) facts.push(`template ${current.template_id}`);
  fill($("task-meta"), facts.join(" · "));
  // Fields at their defaults are left out of the API's answers: a stage without a status is pending.
  fill($("stages"), current.stages.map((stage) => h("li", { class: `stage stage-${stage.status || "pending"}` },
    h("span", { class: "stage-name", text: stage.template_id ? `${stage.name} (${stage.template_id})` : stage.name }),
    h("span", { class: "stage-state", text: stage.status || "pending" }),
    stage.duration_s !== undefined && stage.duration_s !== null ? h("span", { class: "muted", text: `${stage.duration_s.toFixed(2)} s` }) : null,
    stage.attempts > 1 ? h("span", { class: "muted", text: `${stage.attempts} attempts` }) : null,
    stage.error ? h("span", { class: "stage-error", text: stage.error }) : null)));
  const transport = $("transport");
  transport.dataset.transport = how;
  fill(transport, finished(current.status) ? "" : how === "stream" ? "Live: updates as they happen." : "Checking for updates every 2 s.");
  const error = $("task-error");
  say(error, current.status === "FAILED" ? `${current.error || "the task failed"} (${current.error_code || "error"}, stage ${current.failed_stage || "?"})` : "", { error: true });
  if (current.status === "COMPLETE" && !resultsShown) {
    resultsShown = true;
    showResults().catch((e) => say($("result-message"), describe(e), { error: true }));
  }
}

async function schemaOf(templateId) {
  if (!templates.has(templateId)) templates.set(templateId, api(`/v1/templates/${encodeURIComponent(templateId)}`).then((t) => t.schema));
  return templates.get(templateId);
}

const KINDS = { pipeline: "as processed", resummary: "summarized again", speakers: "speakers renamed" };

async function loadVersions(selected) {
  const list = await api(`/v1/tasks/${taskId}/results`);
  fill(versionSelect, [...list.versions].reverse().map((v) => h("option", { value: String(v.version),
    text: `Version ${v.version}: ${KINDS[v.kind] || v.kind}${v.template_id ? ` (${v.template_id})` : ""}, ${when(v.created_at)}` })));
  versionSelect.value = String(selected ?? list.latest);
  $("version-row").hidden = list.versions.length < 2;
  return list.latest;
}

async function showVersion(number) {
  const version = number === status.result_version && status.results
    ? { version: number, results: status.results, versions: status.versions }
    : await api(`/v1/tasks/${taskId}/results/${number}`);
  shown = version;
  const results = version.results || {};
  const speakers = transcript.show(results, { onRename: features.rename_speakers ? rename : null });
  showDownloads(speakers.length > 0);
  const summaryCard = $("summary-card");
  summaryCard.hidden = !results.summary;
  if (results.summary) {
    const templateId = version.versions?.template?.template_id || status.template_id;
    const schema = templateId ? await schemaOf(templateId).catch(() => null) : null;
    renderSummary($("summary"), results.summary, schema, {
      segmentStart: (id) => transcript.segmentStart(id),
      onCite: (id) => transcript.play(id),
    });
  }
}

function showDownloads(withSpeakers) {
  const formats = ["txt", "srt", "vtt", "json"];
  if (withSpeakers && features.rttm) formats.push("rttm");
  fill($("downloads"), formats.map((format) => h("button", {
    type: "button", class: "secondary", text: format.toUpperCase(), testid: `download-${format}`,
    title: `Download the transcript as ${format.toUpperCase()}`,
    on: { click: async () => {
      try {
        await download(`/v1/tasks/${taskId}/transcript.${format}?version=${shown.version}`, `${baseName()}.${format}`);
      } catch (error) {
        say($("result-message"), describe(error), { error: true });
      }
    } },
  })));
}

async function showAudio() {
  if (!features.audio) return;
  try {
    const link = await api(`/v1/tasks/${taskId}/audio/link`, { method: "POST" });
    audio.src = link.url;
    audio.dataset.ready = "true";
    $("player-card").hidden = false;
  } catch (error) {
    $("player-card").hidden = false;
    audio.hidden = true;
    fill($("audio-note"), error.status === 404
      ? "This server deletes recordings once they are processed, so this one cannot be played here. "
        + "To listen along with transcripts, the server is started with MAIE_KEEP_AUDIO=true."
      : describe(error));
    $("audio-note").hidden = false;
  }
}

// A signed link lasts hours; if one has lapsed, get another and carry on where the player was.
let relinked = false;
audio.addEventListener("error", async () => {
  if (relinked || audio.dataset.ready !== "true") return;
  relinked = true;
  const at = audio.currentTime;
  await showAudio();
  audio.currentTime = at;
});

async function rename(label, name) {
  try {
    await api(`/v1/tasks/${taskId}/speakers`, { method: "PATCH", json: { names: { [label]: name } } });
    status = await api(`/v1/status/${taskId}`);
    const latest = await loadVersions();
    await showVersion(latest);
    say($("result-message"), `Renamed ${label} to “${name}” (version ${latest}).`);
    return true;
  } catch (error) {
    say($("result-message"), describe(error), { error: true });
    return false;
  }
}

async function resummarize(event) {
  event.preventDefault();
  const message = $("resummary-message");
  const templateId = $("resummary-template").value;
  const button = event.submitter || $("resummary-form").querySelector("button");
  button.disabled = true;
  try {
    const job = await api(`/v1/tasks/${taskId}/summaries`, { method: "POST", json: { template_id: templateId } });
    say(message, `Summarizing with ${templateId}…`);
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      status = await api(`/v1/status/${taskId}`);
      const stage = status.stages.find((s) => s.job_id === job.job_id);
      if (stage?.status === "failed") throw new Error(stage.error || "the summary failed");
      if (stage?.status === "done") {
        await loadVersions(stage.result_version);
        await showVersion(stage.result_version);
        say(message, `Version ${stage.result_version} has the new summary.`);
        break;
      }
    }
  } catch (error) {
    say(message, describe(error), { error: true });
  } finally {
    button.disabled = false;
  }
}

async function showResults() {
  $("result").hidden = false;
  const latest = await loadVersions(status.result_version);
  await showVersion(latest);
  showAudio();
  if (features.resummarize && features.llm) {
    const list = await api("/v1/templates");
    fill($("resummary-template"), list.templates.map((t) => h("option", { value: t.template_id, text: t.name })));
    $("resummary-card").hidden = false;
  }
  const wanted = location.hash.match(/^#segment-(\d+)$/);
  if (wanted) transcript.jumpTo(wanted[1]);
  if (location.hash === "#summary") $("summary-card").scrollIntoView();
}

versionSelect.addEventListener("change", () => showVersion(Number(versionSelect.value)).catch((e) => say($("result-message"), describe(e), { error: true })));
$("resummary-form").addEventListener("submit", resummarize);

if (startPage()) {
  watchStatus(taskId, showStatus).catch((error) => {
    say($("task-error"), error.status === 404 ? "This task does not exist, or belongs to another API key." : describe(error), { error: true });
    statusBox.dataset.status = "NOT_FOUND";
    fill(statusBox, "Not found");
  });
}
