// The action form: who and why, sent with every operator action; hidden for viewers.
import { el, post } from "/static/api.js";

export function actionForm(session, label, action, target, onDone) {
  const who = el("input", { name: "by", placeholder: "your name", size: 10, value: localStorage.getItem("o-bus-by") || "" });
  const why = el("input", { name: "reason", placeholder: "why", size: 24 });
  const result = el("span", { class: "message" });
  const button = el("button", { type: "submit", "data-action": action }, label);
  const form = el("form", {
    class: "inline",
    onsubmit: async (event) => {
      event.preventDefault();
      localStorage.setItem("o-bus-by", who.value);
      try {
        const reply = await post(`/api/actions/${action}`, { ...target(), by: who.value, reason: why.value });
        result.className = reply.ok ? "message ok" : "message bad";
        result.textContent = reply.ok ? `${label}: done` : `${label}: ${JSON.stringify(reply.results)}`;
        if (onDone) onDone(reply);
      } catch (error) {
        result.className = "message bad";
        result.textContent = `${label} refused: ${error.message}`;
      }
    },
  }, button, who, why, result);
  if (session.role !== "operator") button.title = "needs the operator token";
  return form;
}
