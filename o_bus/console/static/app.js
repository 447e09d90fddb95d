// The console's router: #/agents, #/agent/NAME/(timeline|travel|evolution), #/figures,
// #/dead-letters. Each view renders into <main> and may open live streams.
import { api, el, Scope } from "/static/api.js";
import { agentsView } from "/static/agents.js";
import { timelineView } from "/static/timeline.js";
import { travelView } from "/static/travel.js";
import { evolutionView } from "/static/evolution.js";
import { figuresView } from "/static/figures.js";
import { deadLettersView } from "/static/dead_letters.js";

export const session = { role: "viewer" };

function agentTabs(name, current) {
  const tab = (key, label) =>
    el("a", { href: `#/agent/${name}/${key}`, class: key === current ? "current" : "" },
      key === current ? el("strong", {}, label) : label);
  return el("div", { class: "tabs" }, el("h2", {}, name),
    tab("timeline", "Timeline"), tab("travel", "Time travel"), tab("evolution", "Evolution"));
}

let generation = 0;
let shown = new Scope(); // what the view on screen keeps open

async function route() {
  const mine = ++generation;
  const scope = new Scope();
  const main = document.getElementById("view");
  const parts = (location.hash || "#/agents").slice(2).split("/").map(decodeURIComponent);
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    let view;
    if (parts[0] === "agent" && parts[1]) {
      const sub = parts[2] || "timeline";
      const body = sub === "travel" ? await travelView(parts[1], session, scope)
        : sub === "evolution" ? await evolutionView(parts[1], session, scope)
        : await timelineView(parts[1], session, scope);
      view = el("div", {}, agentTabs(parts[1], sub), body);
    } else if (parts[0] === "figures") view = await figuresView(session, scope);
    else if (parts[0] === "dead-letters") view = await deadLettersView(session, scope);
    else view = await agentsView(session, scope);
    if (mine !== generation) {
      scope.close(); // the address changed while this view loaded: a newer one is coming
      return;
    }
    shown.close();
    shown = scope;
    main.replaceChildren(view);
  } catch (error) {
    scope.close();
    if (mine !== generation) return;
    shown.close();
    main.replaceChildren(el("p", { class: "bad", id: "error" }, `Error: ${error.message}`));
  }
}

async function start() {
  try {
    session.role = (await api("/api/me")).role;
  } catch (error) {
    document.getElementById("view").replaceChildren(
      el("p", { class: "bad" }, "Open the console with ?token=<your token> once (see docs/console.md)."));
    return;
  }
  document.getElementById("role").textContent = `signed in as ${session.role}`;
  window.addEventListener("hashchange", route);
  await route();
}

start();
