// Evolution: stage, gate figures over time, decisions, shadow diffs side by side, and the
// self-evolution search's lineage tree and MAP-Elites archive.
import { api, el, short, table } from "/static/api.js";
import { lineChart } from "/static/chart.js";
import { actionForm } from "/static/actions.js";

const GATES = [["diff_rate", "diff rate"], ["error_rate", "live error rate"],
  ["candidate_p99_ms", "candidate p99 ms"], ["live_p99_ms", "live p99 ms"],
  ["candidate_fitness", "candidate fitness"], ["live_fitness", "live fitness"]];

function figures(decisions) {
  const charts = [];
  for (const [key, label] of GATES) {
    const points = decisions.map((d, i) => ({ x: i, y: d.metrics?.[key] ?? null }));
    if (points.some((p) => p.y !== null)) charts.push(lineChart(label, [{ name: label, points }]));
  }
  return el("div", { class: "charts" }, charts);
}

function diffPanel(diff) {
  const differing = new Set(Object.keys(diff.fields || {}));
  const side = (title, output) => el("div", {}, el("strong", {}, title),
    el("pre", {}, JSON.stringify(output, null, 1)));
  return el("div", { class: "panel diff" },
    el("div", {}, `WAL seq ${diff.wal_seq}, request ${short(diff.request_id, 24)}, ${diff.command || ""}`),
    table(["field", "live", "candidate"], [...differing].map((path) =>
      el("tr", { class: "differ" }, el("td", { class: "mono" }, path),
        el("td", {}, JSON.stringify(diff.fields[path].live)), el("td", {}, JSON.stringify(diff.fields[path].candidate))))),
    el("div", { class: "side" }, side("live", diff.live), side("candidate", diff.candidate)));
}

function lineageTree(lineage) {
  const kids = new Map();
  for (const c of lineage.children) {
    const parent = c.parents[0] || "";
    if (!kids.has(parent)) kids.set(parent, []);
    kids.get(parent).push(c);
  }
  const best = lineage.best ? lineage.best[0] : null;
  const item = (c) => el("li", { "data-child": c.child, class: c.child === best ? "best" : "" },
    el("strong", {}, c.child), ` [${c.operator}] `,
    c.fitness !== null ? el("span", { class: "ok" }, `fitness ${c.fitness.toFixed(4)}`) : el("span", { class: "muted" }, c.outcome),
    c.child === best ? " ★ best" : "", " ", el("span", { class: "muted" }, short(c.detail, 60)),
    kids.has(c.child) ? el("ul", {}, kids.get(c.child).map(item)) : null);
  return el("ul", { id: "lineage-tree" }, (kids.get("") || []).map(item));
}

function archiveGrid(archive) {
  if (!archive || archive.axes.length === 0) return el("p", { class: "muted" }, "no archive");
  const [ax, ay] = archive.axes;
  const cells = new Map(archive.cells.map((c) => [c.cell.join(","), c]));
  const fits = archive.cells.map((c) => c.fitness);
  const lo = Math.min(...fits), hi = Math.max(...fits, lo + 1e-9);
  const rows = [];
  for (let j = 0; j < (ay ? ay.bins : 1); j++) {
    const tds = [el("th", {}, ay ? `${ay.name} ${j}` : "")];
    for (let i = 0; i < ax.bins; i++) {
      const c = cells.get(ay ? `${i},${j}` : `${i}`);
      const shade = c ? Math.round(230 - 130 * ((c.fitness - lo) / (hi - lo))) : 250;
      tds.push(el("td", { class: "cell", style: `background: rgb(${shade},${shade + 15},255)`, title: c ? c.child : "" },
        c ? c.fitness.toFixed(3) : ""));
    }
    rows.push(el("tr", {}, tds));
  }
  return el("table", { class: "grid", id: "archive-grid" },
    el("tr", {}, el("th", {}, ""), [...Array(ax.bins).keys()].map((i) => el("th", {}, `${ax.name} ${i}`))), rows);
}

export async function evolutionView(agent, session) {
  const [{ evolution, diffs, runs }, { lineage, archive }] = await Promise.all([
    api(`/api/agents/${agent}/evolution`), api(`/api/agents/${agent}/lineage`)]);
  const parts = [];
  const target = () => ({ agents: [agent] });
  if (evolution) {
    parts.push(el("div", { class: "panel", id: "evolution-run" },
      el("div", {}, `version ${short(evolution.version, 19)} (${evolution.code_version}): `,
        el("strong", { id: "evolution-stage" }, `${evolution.status}, stage ${evolution.stage}`)),
      el("div", { class: "muted" }, `requested by ${evolution.requested_by} at ${evolution.requested_at}`),
      evolution.abort_requested ? el("div", { class: "bad" }, `abort requested: ${evolution.abort_requested}`) : null,
      actionForm(session, "Abort", "abort", target), actionForm(session, "Roll back", "rollback", target)));
    parts.push(el("h3", {}, "Gate figures over time"), figures(evolution.decisions));
    parts.push(el("h3", {}, "Decisions"), table(["at", "stage", "action", "reason"],
      evolution.decisions.slice().reverse().map((d) => el("tr", {}, el("td", {}, d.at), el("td", {}, d.stage),
        el("td", {}, d.action), el("td", {}, d.reason)))));
    parts.push(el("h3", {}, "Shadow diffs"), diffs.length ? diffs.map(diffPanel) : el("p", { class: "muted" }, "no diff recorded"));
  } else {
    parts.push(el("p", { class: "muted" }, "No evolution recorded."), actionForm(session, "Roll back", "rollback", target));
  }
  if (runs.length) {
    parts.push(el("h3", {}, "Runs"), table(["version", "started", "decisions", "last stage", "last action", "reason"],
      runs.slice().reverse().map((r) => el("tr", { "data-run": r.version }, el("td", { class: "mono" }, short(r.version, 19)),
        el("td", {}, r.started), el("td", {}, r.decisions), el("td", {}, r.stage), el("td", {}, r.action), el("td", {}, r.reason)))));
  }
  if (lineage) {
    parts.push(el("h3", {}, `Self-evolution search ${lineage.search}: ${lineage.children.length} children`),
      lineage.deployed ? el("p", {}, `deployed as ${lineage.deployed}`) : null,
      el("div", { class: "panel" }, lineageTree(lineage)),
      el("h3", {}, "Archive"), archiveGrid(archive));
  } else {
    parts.push(el("p", { class: "muted" }, "No self-evolution search recorded."));
  }
  return el("div", {}, parts);
}
