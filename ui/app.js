// The CoderClaw dashboard: plain DOM, no framework, built with textContent only so
// nothing a task or peer sends can become markup.
const TOKEN_KEY = "coderclaw.token";
const PAGE_SIZE = 50;
const STATUSES = ["pending", "planning", "running", "waiting", "completed", "failed", "cancelled"];
const main = document.getElementById("main");
const logoutButton = document.getElementById("logout");
let stopView = () => {};

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) if (child !== undefined && child !== null) el.append(child instanceof Node ? child : String(child));
  return el;
}

class Unauthenticated extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Calls the API with the session token in a header (never a cookie, so other sites cannot make writes on our behalf). */
async function api(path, { method = "GET", body } = {}) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token()}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (response.status === 401) throw new Unauthenticated("session expired");
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error?.message ?? `${method} ${path}: ${response.status}`);
  return data;
}

/** Follows a server-sent event stream over fetch, since EventSource cannot send the token header. */
async function follow(path, signal, onEvent) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${token()}`, accept: "text/event-stream" }, signal });
  if (response.status === 401) throw new Unauthenticated("session expired");
  if (!response.ok || response.body === null) throw new Error(`stream ${path}: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length > 0) onEvent(event, JSON.parse(data.join("\n")));
      if (event === "end") return;
    }
  }
}

function failed(err) {
  if (err instanceof Unauthenticated) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Your session expired or was refused; log in again.");
    return;
  }
  if (err?.name === "AbortError") return;
  const box = document.getElementById("error");
  if (box) box.textContent = err.message;
}

function show(...nodes) {
  stopView();
  stopView = () => {};
  main.replaceChildren(...nodes);
}

function showLogin(message) {
  logoutButton.hidden = true;
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, "Log in"),
    message ? h("p", { role: "alert", class: "error" }, message) : null,
    h("label", { for: "token" }, "Session token (coderclaw session create, or open the link from coderclaw ui)", input),
    h("button", { type: "submit" }, "Log in"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    start();
  });
  show(form);
  input.focus();
}

const VIEWS = { mesh: meshView, tasks: tasksView, queue: queueView, audit: auditView, workflows: workflowsView, devices: devicesView };

function start() {
  logoutButton.hidden = false;
  const route = location.hash.slice(1) || "tasks";
  const [name, arg] = route.split("/");
  const tabs = h(
    "nav",
    { role: "tablist", "aria-label": "Views" },
    Object.keys(VIEWS).map((view) =>
      h("button", { type: "button", role: "tab", "aria-selected": String(view === name), onclick: () => (location.hash = view) }, view[0].toUpperCase() + view.slice(1)),
    ),
  );
  const panel = h("section", { role: "tabpanel", "aria-label": name });
  show(tabs, h("p", { id: "error", role: "alert", class: "error" }), panel);
  const controller = new AbortController();
  stopView = () => controller.abort();
  const view = name === "task" ? taskView : VIEWS[name] ?? tasksView;
  Promise.resolve(view(panel, controller.signal, arg)).catch(failed);
}

/** Re-runs `load` every `ms` until the view closes (an expiry closes it: failed() shows the login form). */
function every(ms, signal, load) {
  const run = () => load().catch(failed);
  const timer = setInterval(run, ms);
  signal.addEventListener("abort", () => clearInterval(timer));
  return run();
}

function statusCell(status) {
  return h("td", { class: `status-${status}` }, status);
}

async function meshView(panel, signal) {
  const body = h("div");
  panel.append(h("h2", {}, "Mesh"), body);
  await every(5000, signal, async () => {
    const [status, agents] = await Promise.all([api("/v1/status"), api("/v1/agents")]);
    body.replaceChildren(
      h("dl", {}, ...Object.entries(status).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))])),
      h("h3", {}, "Agents offered"),
      h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "id"), h("th", { scope: "col" }, "name"), h("th", { scope: "col" }, "capabilities"))),
        h("tbody", {}, agents.agents.map((a) => h("tr", {}, h("td", {}, a.id), h("td", {}, a.name ?? ""), h("td", {}, (a.capabilities ?? []).join(", "))))))),
      h("p", {}, "Members, trust levels, paths and RTT are not served over HTTP yet; run coderclaw peers on the node."),
    );
  });
}

const TASK_COLUMNS = ["id", "status", "agent", "executor", "session", "created", "description"];
const QUEUE_COLUMNS = ["id", "agent", "waits on", "priority", "created", "reason", "description"];

function queueRow(t) {
  return h("tr", { "data-task": t.id },
    h("td", {}, h("a", { href: `#task/${t.id}` }, t.id.slice(0, 8))),
    h("td", {}, t.agentId ?? ""),
    h("td", { class: "wide" }, (t.placement?.runsOn ?? t.executorId ?? "").slice(-8)),
    h("td", { class: "wide" }, String(t.placement?.priority ?? 0)),
    h("td", {}, new Date(t.createdAt).toLocaleTimeString()),
    h("td", { class: "desc" }, t.placement?.reason ?? ""),
    h("td", { class: "desc" }, t.description),
  );
}

function taskTable(tasks, queue) {
  const columns = queue ? QUEUE_COLUMNS : TASK_COLUMNS;
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { "aria-label": "Tasks" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: ["executor", "session", "waits on", "priority"].includes(c) ? "wide" : undefined }, c)))),
      h(
        "tbody",
        {},
        tasks.map((t) => queue ? queueRow(t) :
          h("tr", { "data-task": t.id },
            h("td", {}, h("a", { href: `#task/${t.id}` }, t.id.slice(0, 8))),
            statusCell(t.status),
            h("td", {}, t.agentId ?? ""),
            h("td", { class: "wide" }, (t.executorId ?? "").slice(-8)),
            h("td", { class: "wide" }, t.sessionId ?? ""),
            h("td", {}, new Date(t.createdAt).toLocaleTimeString()),
            h("td", { class: "desc" }, t.description),
          ),
        ),
      ),
    ),
  );
}

/** A task list that only ever puts one page of rows in the DOM, however many tasks there are. */
function pagedTasks(panel, signal, query) {
  const filters = { status: "", agent: "", executor: "", session: "", ...query };
  let page = 0;
  let tasks = [];
  const list = h("div");
  const info = h("span", { "aria-live": "polite" });
  const prev = h("button", { type: "button", onclick: () => { page -= 1; render(); } }, "Previous");
  const next = h("button", { type: "button", onclick: () => { page += 1; render(); } }, "Next");
  const field = (key, label, control) => {
    control.id = `filter-${key}`;
    control.value = filters[key];
    control.addEventListener("change", () => { filters[key] = control.value; page = 0; refresh().catch(failed); });
    return h("label", { for: control.id }, label, control);
  };
  if (query.status === undefined) {
    panel.append(
      h("form", { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
        field("status", "Status", h("select", {}, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s }, s)))),
        field("agent", "Agent", h("input", { type: "text" })),
        field("executor", "Executor", h("input", { type: "text" })),
        field("session", "Session", h("input", { type: "text" })),
      ),
    );
  }
  panel.append(list, h("div", { class: "pager" }, prev, info, next));
  function render() {
    const shown = tasks.filter((t) => (!filters.agent || t.agentId === filters.agent) && (!filters.executor || (t.executorId ?? "").includes(filters.executor)));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(Math.max(page, 0), pages - 1);
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    info.textContent = `${shown.length} tasks, page ${page + 1} of ${pages}`;
    list.replaceChildren(taskTable(shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), query.status === "pending"));
  }
  async function refresh() {
    const params = new URLSearchParams({ limit: "1000" });
    if (filters.status) params.set("status", filters.status);
    if (filters.session) params.set("sessionId", filters.session);
    tasks = (await api(`/v1/tasks?${params}`)).tasks;
    render();
  }
  return every(2000, signal, refresh);
}

function tasksView(panel, signal) {
  panel.append(h("h2", {}, "Tasks"));
  return pagedTasks(panel, signal, {});
}

function queueView(panel, signal) {
  panel.append(h("h2", {}, "Queue"), h("p", {}, "Tasks waiting for a member to run them: where each waits, its priority and why."));
  return pagedTasks(panel, signal, { status: "pending" });
}

async function taskView(panel, signal, id) {
  const head = h("div");
  const output = h("pre", { "aria-label": "Live output", tabindex: "0" });
  const events = h("ol", { "aria-label": "Events" });
  const cancel = h("button", { type: "button", onclick: () => api(`/v1/tasks/${id}/cancel`, { method: "POST" }).then(load).catch(failed) }, "Cancel task");
  const retry = h("button", { type: "button", onclick: () => api(`/v1/tasks/${id}/retry`, { method: "POST" }).then((t) => (location.hash = `task/${t.id}`)).catch(failed) }, "Retry");
  panel.append(h("p", {}, h("a", { href: "#tasks" }, "All tasks")), head, h("div", { class: "pager" }, cancel, retry), h("h3", {}, "Output"), output, h("h3", {}, "Events"), events);
  async function load() {
    const t = await api(`/v1/tasks/${id}`);
    head.replaceChildren(
      h("h2", {}, `Task ${t.id}`),
      h("dl", {},
        ["status", "agentId", "executorId", "sessionId", "description", "error"].flatMap((k) => (t[k] === undefined ? [] : [h("dt", {}, k), h("dd", { id: `task-${k}` }, String(t[k]))])),
      ),
    );
    cancel.disabled = ["completed", "failed", "cancelled"].includes(t.status);
    retry.disabled = !["failed", "cancelled"].includes(t.status);
    if (t.output !== undefined) output.textContent = t.output;
  }
  await load();
  await follow(`/v1/tasks/${id}/events`, signal, (event, data) => {
    if (event !== "update") return;
    events.append(h("li", {}, `${new Date(data.timestamp).toLocaleTimeString()} ${data.status}${data.message ? `: ${data.message}` : ""}`));
    if (typeof data.data?.chunk === "string") output.textContent += data.data.chunk;
    load().catch(failed);
  });
  await load();
}

async function auditView(panel, signal) {
  const result = h("div");
  const input = (name, label, type = "text") => h("label", { for: `audit-${name}` }, label, h("input", { id: `audit-${name}`, name, type }));
  const form = h("form", { class: "filters", role: "search" },
    input("userId", "User"), input("action", "Action"),
    h("label", { for: "audit-result" }, "Result", h("select", { id: "audit-result", name: "result" }, ["", "allowed", "denied", "error"].map((r) => h("option", { value: r }, r || "any")))),
    input("startDate", "From", "datetime-local"), input("endDate", "To", "datetime-local"),
    h("button", { type: "submit" }, "Query"),
  );
  const query = async () => {
    const params = new URLSearchParams({ limit: "200" });
    for (const [k, v] of new FormData(form)) if (v) params.set(k, k.endsWith("Date") ? new Date(String(v)).toISOString() : String(v));
    const { entries } = await api(`/v1/audit?${params}`);
    result.replaceChildren(h("div", { class: "scroll" }, h("table", { "aria-label": "Audit entries" },
      h("thead", {}, h("tr", {}, ["time", "user", "action", "result", "reason"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, entries.map((e) => h("tr", {}, h("td", {}, e.timestamp ?? ""), h("td", {}, e.userId ?? ""), h("td", {}, e.action ?? ""), h("td", {}, e.result ?? ""), h("td", {}, e.reason ?? "")))))));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); query().catch(failed); });
  panel.append(h("h2", {}, "Audit"), form, result, h("p", {}, "Chain verification is not served over HTTP yet: coderclaw audit verify on the node."));
  if (!signal.aborted) await query();
}

async function workflowsView(panel, signal) {
  const body = h("div");
  panel.append(h("h2", {}, "Workflows"), body);
  await every(3000, signal, async () => {
    const { workflows } = await api("/v1/workflows");
    body.replaceChildren(
      workflows.length === 0 ? h("p", {}, "No workflows.") : "",
      ...workflows.map((w) => h("article", { "aria-label": `Workflow ${w.id}` },
        h("h3", {}, `${w.definition.name} `, h("span", { class: `status-${w.status}` }, w.status)),
        h("ol", { class: "steps", "aria-label": "Steps" }, w.definition.steps.map((def) => {
          const step = w.steps[def.id] ?? { status: "pending", attempts: [] };
          const taskId = step.attempts.at(-1)?.taskId;
          return h("li", { class: `status-${step.status}`, "data-step": def.id },
            `${def.id}: ${step.status}`,
            def.dependsOn?.length ? ` (after ${def.dependsOn.join(", ")})` : "",
            taskId ? h("a", { href: `#task/${taskId}` }, " task") : "");
        })),
      )),
    );
  });
}

function devicesView(panel) {
  panel.append(h("h2", {}, "Devices"), h("p", {}, "Devices, their trust, revocation and pairing are not served over HTTP yet: coderclaw devices list, devices revoke and mesh invite on the node."));
}

async function loginFromLink() {
  const match = /^#login=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!match) return true;
  history.replaceState(null, "", location.pathname);
  const response = await fetch("/ui/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code: match[1] }) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    showLogin(data.error?.message ?? "This login link does not work.");
    return false;
  }
  sessionStorage.setItem(TOKEN_KEY, data.token);
  return true;
}

logoutButton.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});
function boot() {
  loginFromLink()
    .then((ok) => ok && (token() ? start() : showLogin()))
    .catch((err) => showLogin(err.message));
}
// A login link opened in a tab that already shows the dashboard changes only the fragment.
window.addEventListener("hashchange", () => (location.hash.startsWith("#login=") ? boot() : token() && start()));
boot();
