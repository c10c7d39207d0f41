// Upload: one recording goes to POST /v1/process, several files or an archive to POST
// /v1/batches, with the options a person picks. XMLHttpRequest (not fetch) because only it
// reports the upload's progress.

import { ApiError, api, errorFrom, features, session, signedOut } from "./api.js";
import { bytes, fill, h } from "./dom.js";
import { say, startPage, statusBadge } from "./layout.js";

const form = document.getElementById("upload-form");
const drop = document.getElementById("drop");
const input = form.querySelector("[data-testid=upload-file]");
const list = document.getElementById("file-list");
const template = document.getElementById("template");
const templateRow = document.getElementById("template-row");
const language = document.getElementById("language");
const backend = document.getElementById("asr-backend");
const diarization = document.getElementById("diarization");
const diarize = document.getElementById("diarize");
const speakerFields = document.getElementById("speaker-fields");
const progress = document.getElementById("upload-progress");
const progressText = document.getElementById("upload-progress-text");
const message = document.getElementById("upload-message");
const outcome = document.getElementById("upload-result");
const submit = form.querySelector("[data-testid=upload-submit]");

/** Whether each ASR backend (by id) can time words, from GET /v1/models. */
let wordTimings = new Map();
const ARCHIVE = /\.(zip|tar|tgz|tbz2?|txz|tar\.(gz|bz2|xz))$/i;
let files = [];

function showFiles() {
  fill(list, files.map((file, index) =>
    h("li", {},
      h("span", { class: "file-name", text: file.name }),
      h("span", { class: "muted", text: ` ${bytes(file.size)}${ARCHIVE.test(file.name) ? " · archive" : ""}` }),
      h("button", { type: "button", class: "ghost", text: "Remove", "aria-label": `Remove ${file.name}`,
        on: { click: () => { files.splice(index, 1); showFiles(); } } }))));
  submit.disabled = files.length === 0;
  fill(submit, files.length > 1 || files.some((f) => ARCHIVE.test(f.name)) ? "Upload as a batch" : "Upload and transcribe");
}

function addFiles(chosen) {
  files = files.concat([...chosen]);
  showFiles();
}

input.addEventListener("change", () => {
  addFiles(input.files);
  input.value = "";
});
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  addFiles(event.dataTransfer.files);
});

function chosenFeatures() {
  return [...form.querySelectorAll("input[name=feature]:checked")].map((box) => box.value);
}

function syncTemplate() {
  templateRow.hidden = !chosenFeatures().includes("summary");
}
form.addEventListener("change", syncTemplate);
diarize.addEventListener("change", () => {
  speakerFields.disabled = !diarize.checked;
});

async function loadChoices() {
  for (const box of form.querySelectorAll("input[name=feature]")) {
    const needsLlm = box.dataset.llm === "true";
    box.checked = features.llm ? box.value === "clean_transcript" || box.value === "summary" : box.value === "raw_transcript";
    box.disabled = needsLlm && !features.llm;
  }
  document.getElementById("llm-note").hidden = features.llm;
  diarization.hidden = !features.diarize;
  syncTemplate();
  try {
    const [templates, models] = await Promise.all([api("/v1/templates"), api("/v1/models")]);
    fill(template, templates.templates.map((t) => h("option", { value: t.template_id, text: t.name, title: t.description })));
    wordTimings = new Map(models.models.map((m) => [m.backend_id, m.capabilities.includes("word_timestamps")]));
    fill(backend, h("option", { value: "", text: "Server default" }),
      models.models.map((m) => h("option", { value: m.backend_id, disabled: !m.available,
        text: m.available ? m.name : `${m.name} (unavailable)`, title: m.unavailable_reason || m.description })));
    const diarizers = models.diarizers || [];
    const select = document.getElementById("diarization-backend");
    select.closest("label").hidden = diarizers.length === 0;
    fill(select, h("option", { value: "", text: "Server default" }),
      diarizers.map((d) => h("option", { value: d.backend_id, disabled: !d.available, text: d.name || d.backend_id, title: d.unavailable_reason || "" })));
  } catch (error) {
    say(message, error.describe ? error.describe() : String(error), { error: true });
  }
}

function formData() {
  const data = new FormData();
  for (const file of files) data.append("file", file, file.name);
  const picked = chosenFeatures();
  data.append("features", picked.join(","));
  if (picked.includes("summary") && template.value) data.append("template_id", template.value);
  if (language.value) data.append("language", language.value);
  if (backend.value) data.append("asr_backend", backend.value);
  if (features.diarize && diarize.checked) {
    data.append("diarize", "true");
    for (const [id, field] of [["num-speakers", "num_speakers"], ["min-speakers", "min_speakers"], ["max-speakers", "max_speakers"]]) {
      const value = document.getElementById(id).value.trim();
      if (value) data.append(field, value);
    }
    const chosen = document.getElementById("diarization-backend").value;
    if (chosen) data.append("diarization_backend", chosen);
    // Word timings let a segment be split where the speaker changes. Asked for only when the
    // backend (for the server's default: every backend) can time words, or the API says 422.
    const timed = backend.value ? wordTimings.get(backend.value) : wordTimings.size > 0 && [...wordTimings.values()].every(Boolean);
    if (document.getElementById("split-lines").checked && timed) data.append("word_timestamps", "true");
  }
  return data;
}

/** POST the form with upload progress; resolves with the answer's JSON or rejects with ApiError. */
function send(url, data) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-API-Key", session.key() || "");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      progress.value = (100 * event.loaded) / event.total;
      progressText.textContent = `Uploading: ${bytes(event.loaded)} of ${bytes(event.total)}`;
    });
    xhr.upload.addEventListener("load", () => {
      progress.value = 100;
      progressText.textContent = "Uploaded. The server is checking the audio…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText));
        return;
      }
      const error = errorFrom(xhr.status, xhr.statusText, xhr.getResponseHeader("Retry-After"), xhr.responseText);
      if (xhr.status === 401) signedOut(error.detail);
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0,
      "the upload stopped before the server answered: the server may be unreachable, or it closed the "
      + "connection because the upload is larger than it accepts (MAIE_MAX_FILE_SIZE_MB)")));
    xhr.send(data);
  });
}

const BATCH_POLL_MS = 2000;
let batchTimer = null;

/** The batch just sent: a line per recording that follows its status until all are finished. */
function showBatch(answer) {
  clearTimeout(batchTimer);
  const items = new Map(answer.task_ids.map((id, i) => {
    const link = h("a", { href: `/tasks/${id}`, text: `Recording ${i + 1}` });
    const badge = h("span", { class: "batch-status" }, statusBadge("PENDING"));
    return [id, { link, badge, node: h("li", { dataset: { taskId: id } }, link, " ", badge) }];
  }));
  const count = answer.task_ids.length;
  fill(outcome,
    h("h2", { text: `${count} recording${count === 1 ? "" : "s"} submitted` }),
    h("ul", { class: "batch-tasks" }, [...items.values()].map((item) => item.node)),
    (answer.skipped || []).length ? h("h3", { text: "Skipped" }) : null,
    h("ul", { class: "skipped" }, (answer.skipped || []).map((s) => h("li", {}, h("strong", { text: s.name }), `: ${s.reason}`))),
    h("p", {}, h("a", { href: "/", text: "Back to the library" })));
  outcome.hidden = false;
  const follow = async () => {
    try {
      const batch = await api(`/v1/batches/${answer.batch_id}`);
      for (const task of batch.tasks) {
        const item = items.get(task.task_id);
        if (!item) continue;
        if (task.filename) fill(item.link, task.filename);
        fill(item.badge, statusBadge(task.status));
      }
      if (batch.finished) return;
    } catch (error) {
      if (error.status === 404) return; // deleted meanwhile: nothing more to follow
    }
    batchTimer = setTimeout(follow, BATCH_POLL_MS);
  };
  follow();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!files.length) return;
  const batch = files.length > 1 || files.some((f) => ARCHIVE.test(f.name));
  submit.disabled = true;
  clearTimeout(batchTimer);
  say(message, "");
  outcome.hidden = true;
  progress.hidden = false;
  progress.value = 0;
  try {
    const answer = await send(batch ? "/v1/batches" : "/v1/process", formData());
    if (batch) {
      showBatch(answer);
      files = [];
      showFiles();
    } else {
      location.assign(`/tasks/${answer.task_id}`);
    }
  } catch (error) {
    say(message, error.describe ? error.describe() : String(error), { error: true });
  } finally {
    progress.hidden = true;
    progressText.textContent = "";
    submit.disabled = files.length === 0;
  }
});

if (startPage()) {
  showFiles();
  loadChoices();
}
