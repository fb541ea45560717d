import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";
import { Table } from "../table.js";

const PAGE_SIZE = 50;
const STATUSES = ["pending", "planning", "running", "waiting", "completed", "failed", "cancelled"];
const TASK_COLUMNS = ["id", "status", "agent", "executor", "session", "created", "description"];
const QUEUE_COLUMNS = ["id", "agent", "waits on", "priority", "created", "reason", "description"];
const WIDE = ["executor", "session", "waits on", "priority"];

const time = (at) => new Date(at).toLocaleTimeString();
const idLink = (t) => html`<td><a href=${`#task/${t.id}`}>${t.id.slice(0, 8)}</a></td>`;

function TaskRow({ t }) {
  return html`<tr data-task=${t.id}>
    ${idLink(t)}<td class=${`status-${t.status}`}>${t.status}</td><td>${t.agentId ?? ""}</td>
    <td class="wide">${(t.executorId ?? "").slice(-8)}</td><td class="wide">${t.sessionId ?? ""}</td>
    <td>${time(t.createdAt)}</td><td class="desc">${t.description}</td>
  </tr>`;
}

function QueueRow({ t }) {
  return html`<tr data-task=${t.id}>
    ${idLink(t)}<td>${t.agentId ?? ""}</td>
    <td class="wide">${(t.placement?.runsOn ?? t.executorId ?? "").slice(-8)}</td>
    <td class="wide">${String(t.placement?.priority ?? 0)}</td>
    <td>${time(t.createdAt)}</td><td class="desc">${t.placement?.reason ?? ""}</td><td class="desc">${t.description}</td>
  </tr>`;
}

function Field({ id, label, children }) {
  return html`<label for=${id}>${label}${children}</label>`;
}

/** A task list that only ever puts one page of rows in the DOM, however many tasks there are. */
function PagedTasks({ queue }) {
  const { call } = useSession();
  const [filters, setFilters] = useState({ status: queue ? "pending" : "", agent: "", executor: "", session: "" });
  const [tasks, setTasks] = useState([]);
  const [page, setPage] = useState(0);
  usePoll(2000, async () => {
    const params = new URLSearchParams({ limit: "1000" });
    if (filters.status) params.set("status", filters.status);
    if (filters.session) params.set("sessionId", filters.session);
    setTasks((await call(`/v1/tasks?${params}`)).tasks);
  }, [filters.status, filters.session]);
  const set = (key) => (e) => { setFilters({ ...filters, [key]: e.currentTarget.value }); setPage(0); };
  const shown = tasks.filter((t) => (!filters.agent || t.agentId === filters.agent) && (!filters.executor || (t.executorId ?? "").includes(filters.executor)));
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  const at = Math.min(page, pages - 1);
  const rows = shown.slice(at * PAGE_SIZE, (at + 1) * PAGE_SIZE);
  const text = (key, label) => html`<${Field} id=${`filter-${key}`} label=${label}><input id=${`filter-${key}`} type="text" value=${filters[key]} onChange=${set(key)} /><//>`;
  return html`
    ${queue ? null : html`<form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <${Field} id="filter-status" label="Status"><select id="filter-status" value=${filters.status} onChange=${set("status")}>
        <option value="">any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select><//>
      ${text("agent", "Agent")}${text("executor", "Executor")}${text("session", "Session")}
    </form>`}
    <${Table} label="Tasks" columns=${queue ? QUEUE_COLUMNS : TASK_COLUMNS} wide=${WIDE}>
      ${rows.map((t) => (queue ? html`<${QueueRow} key=${t.id} t=${t} />` : html`<${TaskRow} key=${t.id} t=${t} />`))}
    <//>
    <div class="pager">
      <button type="button" disabled=${at === 0} onClick=${() => setPage(at - 1)}>Previous</button>
      <span aria-live="polite">${`${shown.length} tasks, page ${at + 1} of ${pages}`}</span>
      <button type="button" disabled=${at >= pages - 1} onClick=${() => setPage(at + 1)}>Next</button>
    </div>`;
}

export function TasksView() {
  return html`<h2>Tasks</h2><${PagedTasks} />`;
}

export function QueueView() {
  return html`<h2>Queue</h2><p>Tasks waiting for a member to run them: where each waits, its priority and why.</p><${PagedTasks} queue />`;
}
