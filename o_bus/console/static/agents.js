// Agents and their processes: host, role, pid, restarts, health; actions by filter.
import { api, el, short } from "/static/api.js";
import { actionForm } from "/static/actions.js";

function rows(agents) {
  return agents.map((a) => {
    const processes = a.processes.map((p) =>
      `${p.role} pid ${p.pid}${p.host ? ` on ${p.host}` : ""} ${p.fresh ? "" : "(stale)"}`);
    const health = a.up ? el("span", { class: a.lifecycle === "suspended" ? "bad lifecycle" : "ok lifecycle" },
      a.lifecycle === "running" || !a.lifecycle ? "up" : `up, ${a.lifecycle}`) : el("span", { class: "bad" }, a.status === "failed" ? `failed: ${a.reason}` : "down");
    return el("tr", { "data-agent": a.name },
      el("td", {}, el("a", { href: `#/agent/${a.name}/timeline` }, a.name)),
      el("td", {}, a.definition), el("td", {}, health), el("td", {}, a.placed_on),
      el("td", {}, processes.join(", ")), el("td", {}, a.restarts),
      el("td", { class: "mono" }, short(a.code_version, 19)),
      el("td", {}, a.event_log_seq ?? ""), el("td", {}, a.requests), el("td", {}, a.errors));
  });
}

export async function agentsView(session, scope) {
  const { agents } = await api("/api/agents");
  const body = el("tbody", { id: "agents" }, rows(agents));
  // Health changes by itself (restarts, pauses, failures): refreshed every two seconds.
  scope.every(2000, async () => {
    try { body.replaceChildren(...rows((await api("/api/agents")).agents)); } catch (error) { /* next time */ }
  });
  const filter = el("input", { name: "filter", placeholder: "agents, e.g. count*", value: "*" });
  const target = () => ({ filter: filter.value });
  return el("div", {},
    el("h2", {}, "Agents"),
    el("table", {}, el("tr", {}, ["agent", "definition", "health", "host", "processes", "restarts", "code", "seq", "requests", "errors"].map((h) => el("th", {}, h))), body),
    el("h3", {}, "Actions on agents matching"),
    el("div", { class: "panel actions" }, filter,
      actionForm(session, "Pause", "pause", target),
      actionForm(session, "Resume", "resume", target),
      actionForm(session, "Restart", "restart", target),
      actionForm(session, "Reset", "reset", target)));
}
