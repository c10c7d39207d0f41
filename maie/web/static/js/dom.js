// Building the page from data, always as text: nothing here (or anywhere in the app) parses a
// string as HTML. The page's Content-Security-Policy enforces it with Trusted Types: assigning a
// string to innerHTML would throw.

/**
 * Create an element. `attrs` sets attributes, except: `text` (textContent), `dataset`, `testid`
 * (data-testid), `on` ({event: handler}) and `class`. Children are nodes or strings (as text).
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "class") node.className = value;
    else if (name === "testid") node.dataset.testid = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

/** Append nodes and strings (as text nodes) to `parent`, skipping null and false. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace every child of `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** `m:ss`, or `h:mm:ss` from an hour on. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** A date and time in the reader's own locale and zone. */
export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

/** `action_items` → `Action items`. */
export function humanize(key) {
  const words = String(key).replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "";
}

/** A byte count for people: `1.4 MB`. */
export function bytes(count) {
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'" };

/**
 * Nodes for a search snippet: HTML-escaped text whose matches are wrapped in `<mark>` (or `<b>`).
 * Only those two marks are recognised; everything else stays text, entities decoded by hand.
 */
export function snippetNodes(snippet) {
  const nodes = [];
  let marked = false;
  for (const part of String(snippet).split(/(<\/?(?:mark|b)>)/i)) {
    if (/^<(mark|b)>$/i.test(part)) marked = true;
    else if (/^<\/(mark|b)>$/i.test(part)) marked = false;
    else if (part) {
      const text = part.replace(/&(?:amp|lt|gt|quot|#39|#x27);/g, (entity) => ENTITIES[entity]);
      nodes.push(marked ? h("mark", { text }) : document.createTextNode(text));
    }
  }
  return nodes;
}
