// Live figures per agent: request rate, p50/p99 latency, errors; updated every second.
import { api, el } from "/static/api.js";
import { lineChart } from "/static/chart.js";

function render(box, series) {
  const charts = [];
  for (const [agent, points] of Object.entries(series).sort()) {
    const xy = (key) => points.map((p) => ({ x: p.at, y: p[key] }));
    const peak = Math.max(0, ...points.map((p) => p.rate));
    const panel = el("div", { class: "panel", "data-agent": agent, "data-peak": peak },
      el("strong", {}, agent), " ",
      el("span", { class: "muted rate" }, points.length ? `${points[points.length - 1].rate} req/s now, ${peak} at most` : ""),
      lineChart("requests/s", [{ name: "rate", points: xy("rate") }, { name: "errors/s", points: xy("errors") }]),
      lineChart("latency ms", [{ name: "p50", points: xy("p50_ms") }, { name: "p99", points: xy("p99_ms") }]));
    charts.push(panel);
  }
  box.replaceChildren(...charts);
}

export async function figuresView(session, scope) {
  const box = el("div", { class: "charts", id: "figures" });
  render(box, (await api("/api/figures")).series);
  scope.follow("/api/figures/stream", "figures", (data) => render(box, data.series));
  return el("div", {}, el("h2", {}, "Live figures"), box);
}
