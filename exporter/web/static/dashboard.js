// session-metrics-exporter dashboard: one initial fetch of the JSON API, then the event stream.
//
// No framework and no build step: the page is a dozen tables and cards updated in place, which
// plain DOM calls do in fewer bytes than any library would add. The trend lines are hand-drawn
// SVG polylines (sparklines): a few lines here instead of a vendored chart library (tens of KB)
// for what is one line per card with no axes.

const API = "/api/session-metrics";
const HISTORY = 60; // snapshots kept per sparkline (5 minutes at the default 5 s)
const FEED_MAX = 200; // events kept in the feed
const body = document.body;
const adminRequired = body.dataset.adminToken === "required";
const fleetEnabled = body.dataset.fleet === "on";
const history = new Map();
let memoryLimit = null; // from /persistence: entries the memory tier may hold
let lastRealtime = null;
let lastTabFetch = 0;
let newestEventId = null;

// ---- small helpers -----------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function row(cells, states = {}) {
  const tr = el("tr");
  cells.forEach((cell, index) => {
    const td = el("td", cell);
    if (states[index]) td.dataset.state = states[index];
    tr.append(td);
  });
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

const dash = "–";
const num = (v) => (v === null || v === undefined ? dash : String(v));
const rate = (v) => (v === null || v === undefined ? dash : String(Number(v.toFixed(2))));
const ms = (v) => (v === null || v === undefined ? dash : String(Number(v.toFixed(1))));
const pct = (v) => (v === null || v === undefined ? dash : `${(v * 100).toFixed(1)} %`);
const clock = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : dash);

function setMetric(name, text, state) {
  for (const node of $$(`[data-metric="${name}"]`)) {
    node.textContent = text;
    if (state !== undefined) node.dataset.state = state;
  }
}

function setIndicator(name, state, words) {
  for (const node of $$(`[data-indicator="${name}"]`)) {
    node.dataset.state = state;
    const label = $(".state", node) || node;
    label.textContent = words;
  }
}

function notice(text, kind = "info") {
  const box = $("#notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

async function api(path, options = {}) {
  // Same-origin requests carry the browser's basic-auth login (credentials: "same-origin").
  // Resolved against location.origin: a page opened as https://user:pass@host/ would otherwise
  // hand fetch() a URL with credentials in it, which fetch() refuses (a TypeError).
  try {
    const url = new URL(path, location.origin);
    const response = await fetch(url, { credentials: "same-origin", ...options });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  } catch (error) {
    return { ok: false, status: 0, data: { error: { code: "network", message: String(error) } } };
  }
}

function errorText(result) {
  const detail = result.data && result.data.error;
  if (detail) return `${result.status} ${detail.code}: ${detail.message}`;
  return result.status ? `HTTP ${result.status}` : "the exporter is unreachable";
}

// ---- cards and sparklines ----------------------------------------------------------------------

function remember(card, value) {
  const points = history.get(card) || [];
  points.push(typeof value === "number" ? value : 0);
  if (points.length > HISTORY) points.shift();
  history.set(card, points);
  const line = $(`[data-card="${card}"] polyline`);
  if (!line) return;
  // The line spans the card's width whatever the number of points (scaled to the highest).
  const top = Math.max(...points, 1e-9);
  const step = 100 / Math.max(points.length - 1, 1);
  line.setAttribute(
    "points",
    points.map((p, i) => `${(i * step).toFixed(1)},${(23 - (p / top) * 22).toFixed(1)}`).join(" "),
  );
}

function card(name, metric, text, value, state) {
  setMetric(metric, text);
  const node = $(`[data-card="${name}"]`);
  if (node) node.dataset.state = state;
  remember(name, value);
}

function hitState(ratio) {
  if (ratio === null || ratio === undefined) return "unknown";
  if (ratio >= 0.75) return "healthy";
  if (ratio >= 0.5) return "degraded";
  return "critical";
}

const countState = (value, warn, bad) => (value > bad ? "critical" : value > warn ? "degraded" : "healthy");

function renderRealtime(rt) {
  lastRealtime = rt;
  const s = rt.managers.session;
  const f = rt.managers.figma;
  card("ops", "session.operations_per_second", rate(s.operations_per_second), s.operations_per_second, "healthy");
  card("errors", "session.errors_per_second", rate(s.errors_per_second), s.errors_per_second, countState(s.errors_per_second, 0, 1));
  card("hit-rate", "session.cache_hit_rate", pct(s.cache_hit_rate), s.cache_hit_rate, hitState(s.cache_hit_rate));
  card("active", "sessions.active", num(rt.sessions.active), rt.sessions.active, "healthy");
  card("slow", "session.slow_per_second", rate(s.slow_per_second), s.slow_per_second, countState(s.slow_per_second, 0, 1));
  card("figma", "figma.operations_per_second", rate(f.operations_per_second), f.operations_per_second, countState(f.errors_per_second, 0, 1));
  const fillRatio = memoryLimit ? rt.store.memory_entries / memoryLimit : 0;
  card("memory", "store.memory_entries", num(rt.store.memory_entries), rt.store.memory_entries, fillRatio > 0.9 ? "degraded" : "healthy");
  card("replay", "store.replay_pending", num(rt.store.replay_pending), rt.store.replay_pending, rt.store.replay_pending > 0 ? "degraded" : "healthy");
  setMetric("clear.memory_entries", num(rt.store.memory_entries));
  setMetric("realtime.interval_seconds", num(rt.interval_seconds));
  setMetric("realtime.sse_clients", num(rt.sse_clients));
  setMetric("realtime.timestamp", clock(rt.timestamp));
  $('[data-metric="realtime.timestamp"]').dataset.value = String(rt.timestamp);
  renderStore(rt.store);
  renderScore(rt.health.score, rt.health.status);
  const rates = [];
  for (const [manager, m] of Object.entries(rt.managers)) {
    for (const [operation, value] of Object.entries(m.per_operation)) rates.push(row([manager, operation, rate(value)]));
  }
  fill($("#rates-table tbody"), rates);
  if (Array.isArray(rt.recent_events)) rt.recent_events.forEach(addEvent);
}

function renderStore(store) {
  const redis = $('[data-indicator="redis"]');
  if (redis.dataset.configured === "false") {
    setIndicator("redis", "disabled", "not configured (memory only)");
  } else if (store.redis_connected && !store.fallback_active) {
    setIndicator("redis", "up", "connected");
  } else if (store.redis_connected) {
    setIndicator("redis", "warn", `connected, replaying ${store.replay_pending} writes`);
  } else {
    const backlog = store.replay_pending ? `, ${store.replay_pending} writes to replay` : "";
    setIndicator("redis", "down", `down: memory fallback active${backlog}`);
  }
  const words = memoryLimit ? `${store.memory_entries} of ${memoryLimit} entries` : `${store.memory_entries} entries`;
  const full = memoryLimit && store.memory_entries / memoryLimit > 0.9;
  setIndicator("memory", full ? "degraded" : store.fallback_active ? "warn" : "up", store.fallback_active ? `${words}, serving during the outage` : words);
}

function renderScore(score, status) {
  const arc = $("#score-arc");
  const length = 2 * Math.PI * 52;
  arc.setAttribute("stroke-dasharray", `${((length * score) / 100).toFixed(2)} ${length.toFixed(2)}`);
  $(".score").dataset.state = status;
  setMetric("health.score", num(Math.round(score * 10) / 10));
  setMetric("health.status", status, status);
}

// ---- health, persistence, performance, cache ---------------------------------------------------

function renderHealth(h) {
  renderScore(h.score, h.status);
  const comp = h.components;
  for (const name of ["session", "figma"]) {
    const c = comp[name];
    const issues = c.issues.length ? `: ${c.issues.map((i) => i.message).join("; ")}` : "";
    setIndicator(name, c.status, `${c.status} (${Math.round(c.score)})${issues}`);
  }
  const redisNode = $('[data-indicator="redis"]');
  redisNode.dataset.configured = String(h.services.redis.enabled);
  if (!h.services.redis.enabled) setIndicator("redis", "disabled", "not configured (memory only)");
  fill(
    $("#components-table tbody"),
    Object.entries(comp).map(([name, c]) => row([name, c.status, num(Math.round(c.score * 10) / 10)], { 1: c.status })),
  );
  fill(
    $("#services-table tbody"),
    Object.entries(h.services).map(([name, s]) =>
      row([name, s.state, ms(s.latency_ms), s.last_error || ""], { 1: s.state === "up" ? "up" : s.state === "down" ? "down" : "disabled" }),
    ),
  );
  const issues = h.issues.map((i) => el("li", `${i.severity}: ${i.message} (${i.component}, −${i.penalty})`));
  $("#issues-list").replaceChildren(...(issues.length ? issues : [el("li", "no issues")]));
  setMetric("health.checked_at", clock(h.checked_at));
}

function renderPersistence(p) {
  memoryLimit = p.memory.max_entries;
  setMetric("cache.memory_max_bytes", num(p.memory.max_bytes));
  if (!p.redis.configured) $('[data-indicator="redis"]').dataset.configured = "false";
  renderStore({
    redis_connected: p.redis.connected,
    fallback_active: p.redis.fallback_active,
    replay_pending: p.replay.pending,
    memory_entries: p.memory.entries,
  });
}

function renderPerformance(p) {
  setMetric("performance.slow_threshold_ms", num(p.slow_threshold_ms));
  const rows = [];
  const slow = [];
  for (const [manager, m] of Object.entries(p.managers)) {
    for (const [operation, o] of Object.entries(m.operations)) {
      rows.push(row([manager, operation, num(o.count), num(o.errors), ms(o.avg_ms), ms(o.p50_ms), ms(o.p95_ms), ms(o.p99_ms), ms(o.max_ms)], o.errors ? { 3: "degraded" } : {}));
    }
    for (const s of m.slow_operations.recent) slow.push(el("li", `${clock(s.timestamp)} ${manager} ${s.operation}: ${ms(s.duration_ms)} ms`));
  }
  fill($("#performance-table tbody"), rows);
  $("#slow-list").replaceChildren(...(slow.length ? slow : [el("li", "none in the window")]));
}

function renderCache(c) {
  const rows = [];
  for (const [manager, report] of Object.entries(c.managers)) {
    for (const [tier, t] of Object.entries(report.tiers)) {
      rows.push(row([manager, tier, num(t.hits), num(t.misses), pct(t.hit_rate), report.efficiency || dash], { 4: hitState(t.hit_rate) }));
    }
  }
  fill($("#cache-table tbody"), rows);
  setMetric("cache.memory_entries", num(c.memory_tier.entries));
  setMetric("cache.memory_bytes", num(c.memory_tier.bytes));
  setMetric("cache.memory_max_bytes", num(c.memory_tier.max_bytes));
  setMetric("cache.evictions", num(c.memory_tier.evictions));
  const advice = c.recommendations.map((a) => el("li", a.message));
  $("#advice-list").replaceChildren(...(advice.length ? advice : [el("li", "nothing to recommend")]));
}

// ---- events and fleet --------------------------------------------------------------------------

function addEvent(event) {
  if (newestEventId !== null && event.id <= newestEventId && $(`#event-feed [data-id="${event.id}"]`)) return;
  newestEventId = newestEventId === null ? event.id : Math.max(newestEventId, event.id);
  const item = el("li", null, { "data-id": String(event.id), "data-type": event.type });
  item.append(el("time", clock(event.timestamp)), el("span", event.type, { class: "type" }), el("span", event.message));
  const feed = $("#event-feed");
  feed.prepend(item);
  while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
}

function renderFleet(fleet) {
  $("#fleet").hidden = false;
  const state = fleet.status === "ok" ? "up" : fleet.status === "disabled" ? "disabled" : "down";
  const listed = fleet.truncated ? `the newest ${fleet.replicas.length}` : `${fleet.replicas.length}`;
  const words = fleet.status === "ok" ? `${listed} replica(s) publishing` : fleet.message;
  setIndicator("fleet", state, words);
  const rows = fleet.replicas.map((r) =>
    row(
      [r.replica + (r.this_replica ? " (this one)" : ""), `${r.health.status} (${Math.round(r.health.score)})`, rate(r.operations_per_second), pct(r.cache_hit_rate), num(r.memory_entries), r.redis_connected ? "connected" : "down", num(r.age_seconds)],
      { 1: r.health.status, 5: r.redis_connected ? "up" : "down" },
    ),
  );
  fill($("#fleet-table tbody"), rows);
  const t = fleet.totals;
  fill($("#fleet-table tfoot"), [row([`fleet: ${t.replicas}`, `worst ${t.worst_status}`, rate(t.operations_per_second), pct(t.cache_hit_rate), num(t.memory_entries), `${t.redis_connected} connected`, ""])]);
}

// ---- tabs --------------------------------------------------------------------------------------

const tabs = $$('[role="tab"]');

function selectTab(tab, focus = false) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(`#${other.getAttribute("aria-controls")}`).hidden = !selected;
  }
  if (focus) tab.focus();
  refreshTab(true);
}

function currentTab() {
  return tabs.find((t) => t.getAttribute("aria-selected") === "true").id.replace("tab-", "");
}

async function refreshTab(now = false) {
  // Reports the stream does not carry: fetched for the visible tab, at most once per snapshot.
  const interval = lastRealtime ? lastRealtime.interval_seconds * 1000 : 5000;
  if (!now && (document.hidden || Date.now() - lastTabFetch < interval * 0.9)) return;
  const tab = currentTab();
  const path = { performance: "/performance", cache: "/cache-stats", health: "/health-check" }[tab];
  if (!path) return;
  lastTabFetch = Date.now();
  const result = await api(API + path);
  if (!result.ok) return notice(`Could not load ${tab}: ${errorText(result)}`, "error");
  ({ performance: renderPerformance, cache: renderCache, health: renderHealth })[tab](result.data);
}

for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(tab);
    const target = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
    if (target === undefined) return;
    event.preventDefault();
    selectTab(tabs[(target + tabs.length) % tabs.length], true);
  });
}

// ---- controls ----------------------------------------------------------------------------------

async function loadAll() {
  const [realtime, health, persistence] = await Promise.all([
    api(`${API}/realtime`),
    api(`${API}/health-check`),
    api(`${API}/persistence`),
  ]);
  const failed = [realtime, health, persistence].find((r) => !r.ok);
  if (failed) notice(`Could not load the metrics: ${errorText(failed)}`, "error");
  if (persistence.ok) renderPersistence(persistence.data);
  if (health.ok) renderHealth(health.data);
  if (realtime.ok) renderRealtime(realtime.data);
  if (fleetEnabled) {
    const fleet = await api(`${API}/realtime?scope=fleet`);
    if (fleet.ok && fleet.data.scope === "fleet") renderFleet(fleet.data);
  }
  await refreshTab(true);
  return !failed;
}

$("#refresh").addEventListener("click", async () => {
  if (await loadAll()) notice(`Refreshed at ${new Date().toLocaleTimeString()}.`, "ok");
});

$("#health-check").addEventListener("click", async () => {
  notice("Running the health check…");
  const result = await api(`${API}/health-check?refresh=true`);
  if (!result.ok) return notice(`Health check failed: ${errorText(result)}`, "error");
  renderHealth(result.data);
  const issues = result.data.issues.length;
  notice(`Health check: ${result.data.status}, score ${num(Math.round(result.data.score * 10) / 10)}, ${issues} issue(s).`, "ok");
});

const dialog = $("#clear-dialog");
$("#clear-token-row").hidden = !adminRequired;
$("#cache-clear").addEventListener("click", () => {
  $("#clear-token").value = "";
  dialog.showModal();
});

dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "confirm") return;
  const scope = $('#clear-form input[name="scope"]:checked').value;
  const token = $("#clear-token").value.trim();
  $("#clear-token").value = "";
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const result = await api(`${API}/cache/clear?scope=${scope}`, { method: "POST", headers });
  if (!result.ok) return notice(`Cache clear refused: ${errorText(result)}`, "error");
  const c = result.data;
  const figma = c.cleared.figma_responses === undefined ? "" : ` and ${c.cleared.figma_responses} Figma responses`;
  notice(`Cleared ${c.cleared.memory_entries} memory entries${figma}; kept ${c.kept.sessions} sessions whose only copy is here.`, "ok");
  await loadAll();
});

$("#lookup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("#lookup-id").value.trim();
  const out = $("#lookup-result");
  const scope = fleetEnabled ? "?scope=fleet" : "";
  const result = await api(`/api/sessions/${encodeURIComponent(id)}/metrics${scope}`);
  if (!result.ok) {
    out.replaceChildren(el("p", `No metrics for this session: ${errorText(result)}`, { class: "error", "data-state": "critical" }));
    return;
  }
  const a = result.data.access || {};
  const cache = a.cache || {};
  const facts = [
    ["reads", num(a.reads)],
    ["writes", num(a.writes)],
    ["memory hits", num(cache.memory_hits)],
    ["memory misses", num(cache.memory_misses)],
    ["hit ratio", pct(cache.hit_ratio)],
    ["average ms", ms(a.avg_ms)],
    ["max ms", ms(a.max_ms)],
    ["last access", clock(a.last_access)],
  ];
  facts.push(["counted on", result.data.scope === "fleet" ? "every replica" : "this replica"]);
  const list = el("dl");
  for (const [name, value] of facts) list.append(el("dt", name), el("dd", value, { "data-metric": `lookup.${name.replace(/ /g, "_")}` }));
  out.replaceChildren(list);
});

// ---- the stream --------------------------------------------------------------------------------

function connect() {
  // The stream resumes after the newest event the page holds: by `?last_event_id=` now, by the
  // `Last-Event-ID` header that EventSource sends itself on every reconnection (the server
  // sends `id:` with each event).
  const resume = newestEventId === null ? "" : `?last_event_id=${newestEventId}`;
  const source = new EventSource(`${API}/stream${resume}`);
  source.addEventListener("open", () => setIndicator("stream", "live", "live"));
  source.addEventListener("error", () => setIndicator("stream", "reconnecting", "reconnecting…"));
  source.addEventListener("metrics", (message) => {
    renderRealtime(JSON.parse(message.data));
    refreshTab();
  });
  source.addEventListener("health", (message) => renderHealth(JSON.parse(message.data)));
  source.addEventListener("event", (message) => addEvent(JSON.parse(message.data)));
  source.addEventListener("fleet", (message) => renderFleet(JSON.parse(message.data)));
}

loadAll().finally(connect);
