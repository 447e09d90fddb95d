// An agent's timeline: events with request, type, code version and trace, following live.
import { api, el, short } from "/static/api.js";

function row(e) {
  return el("tr", { "data-seq": e.seq },
    el("td", {}, e.seq), el("td", {}, e.time), el("td", {}, `${e.type} v${e.version}`),
    el("td", { class: "mono" }, short(e.request_id, 24)),
    el("td", { class: "mono" }, short(e.code_version, 19)),
    el("td", { class: "mono" }, e.trace_id ? el("span", { title: e.trace_id, class: "trace" }, short(e.trace_id, 16)) : ""),
    el("td", {}, el("pre", {}, JSON.stringify(e.data))));
}

export async function timelineView(agent, session, scope) {
  const { events } = await api(`/api/agents/${agent}/events?limit=100`);
  const body = el("tbody", { id: "timeline" }, events.slice().reverse().map(row));
  const count = el("span", { id: "live-count", class: "muted" }, "following live: 0 new");
  let fresh = 0;
  const after = events.length ? events[events.length - 1].stream_seq : "";
  scope.follow(`/api/agents/${agent}/events/stream?after=${after}`, "events", (batch) => {
    for (const e of batch) body.prepend(row(e));
    // A page keeps the latest rows only: a busy agent must not grow it without bound.
    while (body.rows.length > 500) body.lastElementChild.remove();
    fresh += batch.length;
    count.textContent = `following live: ${fresh} new`;
  });
  return el("div", {}, count,
    el("table", {}, el("tr", {}, ["seq", "time", "event", "request", "code", "trace", "data"].map((h) => el("th", {}, h))), body));
}
