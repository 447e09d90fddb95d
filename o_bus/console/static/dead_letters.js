// Dead letters with the reason; operators re-drive the ones they pick.
import { api, el, short, table } from "/static/api.js";
import { actionForm } from "/static/actions.js";

export async function deadLettersView(session) {
  const { dead_letters: letters } = await api("/api/dead-letters");
  const boxes = [];
  const rows = letters.map((d) => {
    const box = el("input", { type: "checkbox", value: d.seq });
    boxes.push(box);
    return el("tr", { "data-seq": d.seq }, el("td", {}, box), el("td", {}, d.seq), el("td", {}, d.agent),
      el("td", { class: "mono" }, short(d.request_id, 24)), el("td", {}, d.command || ""),
      el("td", {}, d.code), el("td", { class: "reason" }, d.reason), el("td", {}, el("pre", {}, d.body)));
  });
  const target = () => ({ dead_letters: boxes.filter((b) => b.checked).map((b) => Number(b.value)) });
  return el("div", {}, el("h2", {}, `Dead letters (${letters.length})`),
    table(["", "seq", "agent", "request", "command", "code", "reason", "body"], rows),
    el("div", { class: "panel" }, actionForm(session, "Re-drive selected", "redrive", target)));
}
