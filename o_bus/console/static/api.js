// Fetching the console's JSON API and building DOM nodes.
export async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

export function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function table(headers, rows) {
  return el("table", {}, el("tr", {}, headers.map((h) => el("th", {}, h))), rows);
}

export function json(value) {
  return el("pre", {}, JSON.stringify(value, null, 1));
}

export function short(text, size = 12) {
  return text ? String(text).slice(0, size) : "";
}

// What a view keeps open (live streams, refresh timers), closed together when the view goes.
export class Scope {
  constructor() {
    this.streams = [];
    this.timers = [];
  }

  follow(path, kind, onData) {
    const source = new EventSource(path);
    source.addEventListener(kind, (event) => onData(JSON.parse(event.data)));
    this.streams.push(source);
    return source;
  }

  every(ms, fn) {
    this.timers.push(setInterval(fn, ms));
  }

  close() {
    for (const source of this.streams) source.close();
    for (const timer of this.timers) clearInterval(timer);
    this.streams = [];
    this.timers = [];
  }
}
