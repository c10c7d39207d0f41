// A summary drawn from its template's JSON Schema: one section per property, in the schema's
// order, headed by the property's title (or its name) with its description beneath; every
// `segment_ids` becomes links that jump to and play the transcript lines the point rests on.

import { clock, h, humanize } from "./dom.js";

const CITATIONS = new Set(["segment_ids", "segment_id"]);

/** Property names in the schema's order, then any the schema does not list. */
function keysOf(value, schema) {
  const listed = Object.keys(schema?.properties || {});
  return [...listed.filter((k) => k in value), ...Object.keys(value).filter((k) => !listed.includes(k))];
}

function labelOf(key, schema) {
  return schema?.title || humanize(key);
}

function citations(ids, context) {
  const list = Array.isArray(ids) ? ids : [ids];
  return h("span", { class: "citations" }, list.map((id) => {
    const start = context.segmentStart(id);
    if (start === undefined) return h("span", { class: "cite missing", text: `#${id}`, title: "not in this transcript" });
    return h("a", {
      href: `#segment-${id}`, class: "cite", title: `Play the line at ${clock(start)}`, dataset: { segment: String(id) },
      text: `▶ ${clock(start)}`,
      on: { click: (event) => { event.preventDefault(); context.onCite(id); } },
    });
  }));
}

function scalar(value) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted", text: "Not stated" });
  if (typeof value === "boolean") return document.createTextNode(value ? "Yes" : "No");
  return document.createTextNode(String(value));
}

function item(value, schema, context) {
  if (value === null || typeof value !== "object") return h("li", {}, scalar(value));
  const keys = keysOf(value, schema);
  // The item's main text: the first field the schema says is always a string (an action item's
  // `task`, not its optional `owner`), else the first text there is.
  const isText = (k) => typeof value[k] === "string" && !CITATIONS.has(k);
  const lead = keys.find((k) => isText(k) && schema?.properties?.[k]?.type === "string") ?? keys.find(isText);
  const node = h("li", { class: "item" });
  if (lead) node.append(h("span", { class: "lead", text: value[lead] }));
  for (const key of keys) {
    if (key === lead || CITATIONS.has(key)) continue;
    const sub = schema?.properties?.[key];
    const field = value[key];
    if (Array.isArray(field) || (field && typeof field === "object")) {
      node.append(h("div", { class: "field" }, h("span", { class: "label", text: labelOf(key, sub) }), render(field, sub, context)));
    } else {
      node.append(h("span", { class: "field" }, h("span", { class: "label", text: labelOf(key, sub) }), scalar(field)));
    }
  }
  for (const key of keys.filter((k) => CITATIONS.has(k))) node.append(citations(value[key], context));
  return node;
}

/** One value by its shape: text, a list, or an object of fields. */
function render(value, schema, context) {
  if (Array.isArray(value)) {
    if (!value.length) return h("p", { class: "muted", text: "None" });
    return h("ul", { class: "points" }, value.map((v) => item(v, schema?.items, context)));
  }
  if (value && typeof value === "object") {
    return h("dl", { class: "fields" }, keysOf(value, schema).map((key) => [
      h("dt", { text: labelOf(key, schema?.properties?.[key]) }),
      h("dd", {}, CITATIONS.has(key) ? citations(value[key], context) : render(value[key], schema?.properties?.[key], context)),
    ]));
  }
  return h("p", {}, scalar(value));
}

/**
 * Draw `summary` (validated against `schema`) into `container`.
 * `context.segmentStart(id)` gives a segment's start time (undefined if unknown) and
 * `context.onCite(id)` plays it.
 */
export function renderSummary(container, summary, schema, context) {
  container.replaceChildren();
  for (const key of keysOf(summary, schema)) {
    const sub = schema?.properties?.[key];
    if (key === "title" && typeof summary[key] === "string") {
      container.append(h("h2", { class: "summary-title", text: summary[key] }));
      continue;
    }
    container.append(h("section", { class: "summary-part", dataset: { field: key } },
      h("h3", { text: labelOf(key, sub) }),
      sub?.description ? h("p", { class: "hint", text: sub.description }) : null,
      render(summary[key], sub, context)));
  }
}
