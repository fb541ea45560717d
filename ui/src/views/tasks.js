import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { html } from "../html.js";
import { useTaskPages } from "../task-pages.js";
import { Table } from "../table.js";

/** Every row is this tall (app.css says the same), so the rows in view follow from the scroll position alone. */
const ROW_PX = 34;
/** Rows kept in the DOM above and below the visible ones, so a short scroll shows no gap. */
const OVERSCAN = 10;
const STATUSES = ["pending", "planning", "running", "waiting", "completed", "failed", "cancelled"];
const TASK_COLUMNS = ["id", "status", "agent", "executor", "session", "created", "description"];
const QUEUE_COLUMNS = ["id", "agent", "waits on", "priority", "created", "reason", "description"];
const WIDE = ["executor", "session", "waits on", "priority"];

const time = (at) => new Date(at).toLocaleTimeString();
/** Where a task runs or ran: the member its placement names, else the node that keeps it (what the executor filter matches). */
const runsOn = (t) => t.placement?.runsOn ?? t.executorId ?? "";
const idLink = (t) => html`<td><a href=${`#task/${t.id}`}>${t.id.slice(0, 8)}</a></td>`;

function TaskRow({ t }) {
  return html`<tr data-task=${t.id}>
    ${idLink(t)}<td class=${`status-${t.status}`}>${t.status}</td><td>${t.agentId ?? ""}</td>
    <td class="wide">${runsOn(t).slice(-8)}</td><td class="wide">${t.sessionId ?? ""}</td>
    <td>${time(t.createdAt)}</td><td class="desc">${t.description}</td>
  </tr>`;
}

function QueueRow({ t }) {
  return html`<tr data-task=${t.id}>
    ${idLink(t)}<td>${t.agentId ?? ""}</td>
    <td class="wide">${runsOn(t).slice(-8)}</td>
    <td class="wide">${String(t.placement?.priority ?? 0)}</td>
    <td>${time(t.createdAt)}</td><td class="desc">${t.placement?.reason ?? ""}</td><td class="desc">${t.description}</td>
  </tr>`;
}

function Field({ id, label, children }) {
  return html`<label for=${id}>${label}${children}</label>`;
}

/** Room kept for the rows not in the DOM, so the scroll bar spans every loaded task. */
function Spacer({ rows, columns }) {
  return rows > 0 ? html`<tr class="spacer" aria-hidden="true"><td colspan=${columns} style=${{ height: `${rows * ROW_PX}px` }}></td></tr>` : null;
}

/**
 * A task list that reaches every task however many there are: pages come from the node as the
 * list is scrolled towards its end, and only the rows in view (and a few around them) are in the DOM.
 */
function VirtualTasks({ queue }) {
  const [filters, setFilters] = useState({ status: queue ? "pending" : "", agent: "", executor: "", session: "" });
  const [drafts, setDrafts] = useState({ agent: "", executor: "", session: "" });
  const { tasks, cursor, more, watch } = useTaskPages(filters);
  const box = useRef(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const measure = () => box.current && setView({ top: box.current.scrollTop, height: box.current.clientHeight });
  useLayoutEffect(() => {
    measure();
    window.addEventListener("resize", measure);
    return () => window.removeEventListener("resize", measure);
  }, []);
  const first = Math.max(0, Math.floor(view.top / ROW_PX) - OVERSCAN);
  const last = Math.min(tasks.length, Math.ceil((view.top + view.height) / ROW_PX) + OVERSCAN);
  watch(first, last - first);
  // Ask for older tasks while the rows in view come near the end of what is loaded.
  useEffect(() => {
    if (typeof cursor === "string" && last + OVERSCAN >= tasks.length) more();
  }, [cursor, last, tasks.length]);
  const set = (key) => (e) => {
    setFilters({ ...filters, [key]: e.currentTarget.value });
    if (box.current) box.current.scrollTop = 0;
  };
  const columns = queue ? QUEUE_COLUMNS : TASK_COLUMNS;
  const Row = queue ? QueueRow : TaskRow;
  // What is typed is kept apart from the filter it becomes on change: the list re-renders at every poll, and an input
  // whose value were the applied filter would be reset to it, losing what a person was typing.
  const typed = (key) => (e) => setDrafts({ ...drafts, [key]: e.currentTarget.value });
  const text = (key, label) => html`<${Field} id=${`filter-${key}`} label=${label}><input id=${`filter-${key}`} type="text" value=${drafts[key]} onInput=${typed(key)} onChange=${set(key)} /><//>`;
  return html`
    ${queue ? null : html`<form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <${Field} id="filter-status" label="Status"><select id="filter-status" value=${filters.status} onChange=${set("status")}>
        <option value="">any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select><//>
      ${text("agent", "Agent")}${text("executor", "Executor")}${text("session", "Session")}
    </form>`}
    <div class="rows" ref=${box} onScroll=${measure}>
      <${Table} label="Tasks" columns=${columns} wide=${WIDE}>
        <${Spacer} rows=${first} columns=${columns.length} />
        ${tasks.slice(first, last).map((t) => html`<${Row} key=${t.id} t=${t} />`)}
        <${Spacer} rows=${tasks.length - last} columns=${columns.length} />
      <//>
    </div>
    <div class="pager">
      <span aria-live="polite">${cursor === undefined ? "Loading tasks" : `${tasks.length} tasks${cursor === null ? "" : " loaded; older ones load as the list scrolls"}`}</span>
      ${typeof cursor === "string" ? html`<button type="button" onClick=${more}>Load older tasks</button>` : null}
    </div>`;
}

export function TasksView() {
  return html`<h2>Tasks</h2><${VirtualTasks} />`;
}

export function QueueView() {
  return html`<h2>Queue</h2><p>Tasks waiting for a member to run them: where each waits, its priority and why.</p><${VirtualTasks} queue />`;
}
