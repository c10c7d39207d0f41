// A task's status as it changes: GET /v1/status/{id}/events (server-sent events) read with
// fetch(), because EventSource cannot send the X-API-Key header; polling GET /v1/status when the
// stream cannot be had (a proxy that buffers it, a dropped connection that will not come back).

import { ApiError, api } from "./api.js";

const POLL_MS = 2000;
const STREAM_ATTEMPTS = 3;

/** Parse one event block ("id: …\nevent: …\ndata: …") into {id, event, data}; null for comments. */
function parseEvent(block) {
  const event = { id: null, event: "message", data: [] };
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data.push(value);
    else if (field === "id") event.id = value;
    else if (field === "event") event.event = value;
  }
  return event.data.length ? { ...event, data: event.data.join("\n") } : null;
}

/** Read the stream until it ends, calling onEvent for each event. */
async function readStream(taskId, lastEventId, signal, onEvent) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await api(`/v1/status/${taskId}/events`, { raw: true, headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const blocks = buffer.split(/\r?\n\r?\n/);
    buffer = blocks.pop();
    for (const block of blocks) {
      const event = parseEvent(block);
      if (event) onEvent(event);
    }
  }
}

/**
 * Call `onStatus(status, how)` with each new status of the task until it finishes (`how` is
 * "stream" or "polling"). Resolves with the last status. `signal` stops it.
 */
export async function watchStatus(taskId, onStatus, { signal } = {}) {
  let last = null;
  let lastEventId = null;
  const done = () => last && (last.status === "COMPLETE" || last.status === "FAILED");
  for (let attempt = 0; attempt < STREAM_ATTEMPTS && !done(); attempt += 1) {
    try {
      await readStream(taskId, lastEventId, signal, (event) => {
        if (event.event === "gone") throw new ApiError(404, `task ${taskId} not found`);
        if (event.event !== "status") return;
        lastEventId = event.id;
        last = JSON.parse(event.data);
        onStatus(last, "stream");
      });
    } catch (error) {
      if (error.name === "AbortError" || error.status === 404) throw error;
      // Otherwise try the stream again, then fall back to polling.
    }
    if (!done()) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  let etag = null;
  while (!done()) {
    const response = await api(`/v1/status/${taskId}`, { raw: true, signal, headers: etag ? { "If-None-Match": etag } : {} });
    if (response.status !== 304) {
      etag = response.headers.get("ETag");
      last = await response.json();
      onStatus(last, "polling");
    }
    if (!done()) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return last;
}
