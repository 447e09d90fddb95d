// Time travel: the state after any event, and what differs between two points.
import { api, el, json } from "/static/api.js";

export async function travelView(agent) {
  const out = el("div", { id: "travel-result" });
  const at = el("input", { name: "at", type: "number", min: 0, value: 1, size: 6 });
  const a = el("input", { name: "a", type: "number", min: 0, value: 1, size: 6 });
  const b = el("input", { name: "b", type: "number", min: 0, value: 2, size: 6 });
  const show = async (promise, render) => {
    try { out.replaceChildren(render(await promise)); }
    catch (error) { out.replaceChildren(el("p", { class: "bad" }, error.message)); }
  };
  const stateForm = el("form", { class: "inline", id: "state-form", onsubmit: (event) => {
    event.preventDefault();
    show(api(`/api/agents/${agent}/state?at=${at.value}`), (r) =>
      el("div", { class: "panel" }, el("h3", {}, `State after event ${r.seq} (code ${r.code_version})`),
        el("div", { id: "state-json" }, json(r.state))));
  } }, "state at seq", at, el("button", { type: "submit" }, "Show"));
  const diffForm = el("form", { class: "inline", id: "diff-form", onsubmit: (event) => {
    event.preventDefault();
    show(api(`/api/agents/${agent}/diff?a=${a.value}&b=${b.value}`), (r) => {
      const rows = Object.entries(r.fields).map(([path, sides]) =>
        el("tr", { class: "differ" }, el("td", { class: "mono" }, path),
          el("td", {}, JSON.stringify(sides.a)), el("td", {}, JSON.stringify(sides.b))));
      return el("div", { class: "panel" },
        el("h3", {}, `${rows.length} field(s) differ between seq ${r.a.seq} and ${r.b.seq}`),
        el("table", { id: "diff-table" }, el("tr", {}, el("th", {}, "field"), el("th", {}, `at ${r.a.seq}`), el("th", {}, `at ${r.b.seq}`)), rows),
        el("div", { class: "side" }, json(r.a.state), json(r.b.state)));
    });
  } }, "diff between", a, "and", b, el("button", { type: "submit" }, "Diff"));
  return el("div", {}, el("div", { class: "panel" }, stateForm), el("div", { class: "panel" }, diffForm), out);
}
