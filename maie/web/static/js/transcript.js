// The transcript as one line per segment (time, speaker, text), kept in step with the audio
// player: a click on a line plays from there, the line being played is highlighted. And the
// speakers, each renamed in place.

import { clock, fill, h } from "./dom.js";

/** Speakers of a result: its `speakers` list when the API gives one, else counted from the segments. */
export function speakersOf(results) {
  if (Array.isArray(results.speakers)) return results.speakers;
  const found = new Map();
  for (const segment of results.segments || []) {
    if (!segment.speaker) continue;
    const entry = found.get(segment.speaker) || { id: segment.speaker, name: null, speaking_time_s: 0, segment_count: 0 };
    entry.speaking_time_s += Math.max(0, segment.end - segment.start);
    entry.segment_count += 1;
    found.set(segment.speaker, entry);
  }
  return [...found.values()];
}

export class Transcript {
  constructor({ list, audio, speakersList }) {
    this.list = list;
    this.audio = audio;
    this.speakersList = speakersList;
    this.segments = [];
    this.lines = [];
    this.current = -1;
    audio.addEventListener("timeupdate", () => this.follow(audio.currentTime));
  }

  /** Draw `results`' segments and speakers. */
  show(results, { onRename = null } = {}) {
    this.segments = (results.segments || []).filter((s) => s.text && s.text.trim());
    const speakers = speakersOf(results);
    const names = new Map(speakers.map((s) => [s.id, s.name || s.id]));
    this.lines = this.segments.map((segment) => this.line(segment, names));
    fill(this.list, this.lines.length ? this.lines : h("li", { class: "muted", text: "Nothing was said that the model could hear." }));
    this.current = -1;
    this.showSpeakers(speakers, onRename);
    return speakers;
  }

  line(segment, names) {
    const play = () => this.play(segment.id);
    return h("li", {
      class: "segment", id: `segment-${segment.id}`, tabindex: 0, role: "button", testid: "segment",
      dataset: { start: String(segment.start), end: String(segment.end), id: String(segment.id) },
      title: "Play from here",
      on: {
        click: play,
        keydown: (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            play();
          }
        },
      },
    },
    h("span", { class: "time", text: clock(segment.start) }),
    segment.speaker ? h("span", { class: "speaker-chip", testid: "speaker", dataset: { speaker: segment.speaker }, text: names.get(segment.speaker) || segment.speaker }) : null,
    h("span", { class: "text", text: segment.text.trim() }));
  }

  /** Start time of segment `id`, or undefined when this transcript has no such line. */
  segmentStart(id) {
    return this.segments.find((s) => s.id === Number(id))?.start;
  }

  /** Scroll to line `id` and highlight it; `play` also seeks the audio there and plays. */
  jumpTo(id, { play = false } = {}) {
    const index = this.segments.findIndex((s) => s.id === Number(id));
    if (index === -1) return;
    this.highlight(index);
    this.lines[index].scrollIntoView({ block: "center", behavior: "smooth" });
    if (play && this.audio.dataset.ready === "true") {
      this.audio.currentTime = this.segments[index].start;
      this.audio.play().catch(() => {
        // Playing may be refused (no audio device, autoplay rules); the position is set anyway.
      });
    }
  }

  play(id) {
    this.jumpTo(id, { play: true });
  }

  highlight(index) {
    if (index === this.current) return;
    this.lines[this.current]?.classList.remove("playing");
    this.lines[this.current]?.removeAttribute("aria-current");
    this.lines[index]?.classList.add("playing");
    this.lines[index]?.setAttribute("aria-current", "true");
    this.current = index;
  }

  /** Highlight the line being played at `time`: the last one that started by then. */
  follow(time) {
    let low = 0;
    let high = this.segments.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (this.segments[mid].start <= time + 0.05) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    if (found !== -1 && found !== this.current) {
      this.highlight(found);
      if (!this.audio.paused) this.lines[found].scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  showSpeakers(speakers, onRename) {
    const card = this.speakersList.closest(".card");
    card.hidden = speakers.length === 0;
    fill(this.speakersList, speakers.map((speaker) => {
      const name = h("span", { class: "speaker-name", testid: "speaker-name", text: speaker.name || speaker.id });
      const facts = [speaker.name ? speaker.id : null,
        speaker.speaking_time_s !== undefined ? `${clock(speaker.speaking_time_s)} spoken` : null,
        // The API leaves out fields at their defaults: no segment_count means none.
        `${speaker.segment_count ?? 0} line${speaker.segment_count === 1 ? "" : "s"}`].filter(Boolean).join(" · ");
      const row = h("li", { dataset: { speaker: speaker.id } }, h("div", { class: "who" }, name, h("span", { class: "muted facts", text: facts })));
      if (onRename) {
        row.append(h("button", { type: "button", class: "ghost", text: "Rename", testid: "rename-speaker",
          on: { click: () => this.editName(row, name, speaker, onRename) } }));
      }
      return row;
    }));
  }

  /** Turn the name into a text field; Enter saves, Escape leaves it as it was. */
  editName(row, name, speaker, onRename) {
    const field = h("input", { type: "text", class: "rename", value: speaker.name || "", placeholder: speaker.id,
      maxlength: 200, "aria-label": `New name for ${speaker.id}` });
    name.replaceWith(field);
    field.focus();
    const restore = () => field.replaceWith(name);
    field.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") restore();
      if (event.key !== "Enter") return;
      event.preventDefault();
      const wanted = field.value.trim();
      if (!wanted || wanted === (speaker.name || speaker.id)) {
        restore();
        return;
      }
      field.disabled = true;
      if (!(await onRename(speaker.id, wanted))) {
        field.disabled = false;
        field.focus();
      }
    });
    field.addEventListener("blur", () => {
      if (!field.disabled) restore();
    });
  }
}
