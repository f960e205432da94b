// The dashboard tests' probe: see tests/support/dashboard_probe.py.
"use strict";
const send = (kind, data) =>
  fetch("/test/report", { method: "POST", body: JSON.stringify({ kind, ...data }) }).catch(() => {});
const problem = (message) => send("problem", { message });
window.addEventListener("error", (e) => problem(`error: ${e.message} at ${e.filename}:${e.lineno}`));
window.addEventListener("unhandledrejection", (e) => problem(`unhandled rejection: ${e.reason}`));
document.addEventListener("securitypolicyviolation", (e) =>
  problem(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
const originalError = console.error.bind(console);
console.error = (...args) => { problem(`console.error: ${args.map(String).join(" ")}`); originalError(...args); };

function state() {
  const metrics = {};
  for (const n of document.querySelectorAll("[data-metric]")) metrics[n.dataset.metric] = n.textContent;
  const indicators = {};
  for (const n of document.querySelectorAll("[data-indicator]")) indicators[n.dataset.indicator] = n.dataset.state;
  const stamp = document.querySelector('[data-metric="realtime.timestamp"]');
  const notice = document.getElementById("notice");
  return {
    metrics,
    indicators,
    snapshot: stamp && stamp.dataset.value ? Number(stamp.dataset.value) : null,
    events: [...document.querySelectorAll("#event-feed li")].map((li) => ({ id: Number(li.dataset.id), type: li.dataset.type, text: li.textContent })),
    notice: notice && !notice.hidden ? notice.textContent : null,
    fleet: [...document.querySelectorAll("#fleet-table tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent)),
    fleetTotals: [...document.querySelectorAll("#fleet-table tfoot td")].map((c) => c.textContent),
    fleetVisible: !document.getElementById("fleet").hidden,
    dialogOpen: document.getElementById("clear-dialog").open,
    tokenAsked: !document.getElementById("clear-token-row").hidden,
    focused: document.activeElement ? document.activeElement.id : null,
    visiblePanels: [...document.querySelectorAll('[role="tabpanel"]')].filter((p) => !p.hidden).map((p) => p.id),
    lookup: document.getElementById("lookup-result").textContent,
  };
}
setInterval(() => send("state", { state: state() }), 100);

async function commands() {
  for (;;) {
    let command = null;
    try {
      const answer = await fetch("/test/command");
      if (answer.status === 200) command = await answer.json();
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (!command) continue;
    let result = "ok";
    try {
      const target = document.querySelector(command.selector);
      if (command.op === "click") target.click();
      else if (command.op === "fill") target.value = command.value;
      else if (command.op === "check") target.checked = true;
      else if (command.op === "submit") target.requestSubmit();
      else if (command.op === "focus") target.focus();
      else if (command.op === "key") target.dispatchEvent(new KeyboardEvent("keydown", { key: command.value, bubbles: true }));
    } catch (e) {
      result = `failed: ${e}`;
    }
    send("done", { id: command.id, result });
  }
}
commands();
