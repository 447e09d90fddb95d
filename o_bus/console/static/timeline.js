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
  const [{ events }, { outcomes }] = await Promise.all([
    api(`/api/agents/${agent}/events?limit=100`), api(`/api/agents/${agent}/outcomes?limit=50`)]);
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
  const noEvent = outcomes.slice().reverse().map((o) => el("tr", { "data-wal": o.wal_seq },
    el("td", {}, o.wal_seq), el("td", { class: "mono" }, short(o.request_id, 24)),
    el("td", { class: o.outcome === "rejected" ? "bad" : "" }, o.outcome), el("td", {}, o.code || ""), el("td", {}, o.reason || "")));
  return el("div", {}, count,
    el("table", {}, el("tr", {}, ["seq", "time", "event", "request", "code", "trace", "data"].map((h) => el("th", {}, h))), body),
    el("h3", {}, "Requests that produced no event"),
    noEvent.length ? el("table", { id: "outcomes" }, el("tr", {}, ["WAL seq", "request", "outcome", "code", "reason"].map((h) => el("th", {}, h))), noEvent)
      : el("p", { class: "muted" }, "none"));
}
