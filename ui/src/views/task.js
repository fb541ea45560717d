import { useEffect, useState } from "preact/hooks";
import { html } from "../html.js";
import { useSession } from "../session.js";

const FIELDS = ["status", "agentId", "executorId", "sessionId", "description", "error"];

/** One task: its fields, live output and events from the SSE stream, Cancel and Retry. */
export function TaskView({ id }) {
  const { call, followLive, fail, may } = useSession();
  const [task, setTask] = useState(null);
  const [output, setOutput] = useState("");
  const [events, setEvents] = useState([]);
  const load = () => call(`/v1/tasks/${id}`).then((t) => {
    setTask(t);
    if (t.output !== undefined) setOutput(t.output);
  });
  useEffect(() => {
    const controller = new AbortController();
    setEvents([]);
    // The seq of the last event shown: a stream cut and opened again resumes after it, so nothing shows twice or goes missing.
    let after;
    const onEvent = (event, data) => {
      if (event !== "update") return;
      if (typeof data.seq === "number") after = data.seq;
      setEvents((list) => [...list, `${new Date(data.timestamp).toLocaleTimeString()} ${data.status}${data.message ? `: ${data.message}` : ""}`]);
      if (typeof data.data?.chunk === "string") setOutput((text) => text + data.data.chunk);
      load().catch(fail);
    };
    load()
      .then(() => followLive(() => `/v1/tasks/${id}/events${after === undefined ? "" : `?after=${after}`}`, controller.signal, { onEvent, untilEnd: true }))
      .then(load)
      .catch(fail);
    return () => controller.abort();
  }, [id]);
  const cancel = () => call(`/v1/tasks/${id}/cancel`, { method: "POST" }).then(load).catch(fail);
  const retry = () => call(`/v1/tasks/${id}/retry`, { method: "POST" }).then((t) => (location.hash = `task/${t.id}`)).catch(fail);
  const status = task?.status;
  return html`
    <p><a href="#tasks">All tasks</a></p>
    ${task && html`<h2>Task ${task.id}</h2>
      <dl>${FIELDS.filter((k) => task[k] !== undefined).map((k) => html`<dt>${k}</dt><dd id=${`task-${k}`}>${String(task[k])}</dd>`)}</dl>`}
    <div class="pager">
      ${may.cancel && html`<button type="button" disabled=${!task || ["completed", "failed", "cancelled"].includes(status)} onClick=${cancel}>Cancel task</button>`}
      ${may.submit && html`<button type="button" disabled=${!["failed", "cancelled"].includes(status)} onClick=${retry}>Retry</button>`}
    </div>
    <h3>Output</h3><pre aria-label="Live output" tabindex="0">${output}</pre>
    <h3>Events</h3><ol aria-label="Events">${events.map((e) => html`<li>${e}</li>`)}</ol>`;
}
