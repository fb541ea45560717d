import { useEffect, useState } from "preact/hooks";
import { StreamRefused } from "../api.js";
import { html } from "../html.js";
import { useSession } from "../session.js";

const until = (at) => new Date(at).toLocaleString();

/**
 * The requests of one approvals event stream, kept whole across reconnections: the `open` ones
 * replace the list at `synced`, then `asked` and `decided` change it. Null until the first
 * `synced`; empty for a node without that stream (404).
 */
function useRequests(path, keyOf) {
  const { followLive, fail } = useSession();
  const [requests, setRequests] = useState(null);
  useEffect(() => {
    const controller = new AbortController();
    let fresh = new Map();
    const change = (edit) => setRequests((held) => {
      const next = new Map(held);
      edit(next);
      return next;
    });
    followLive(path, controller.signal, {
      onOpen: () => (fresh = new Map()),
      onEvent: (event, e) => {
        if (event !== "update") return;
        if (e.type === "open") fresh.set(keyOf(e.approval), e.approval);
        else if (e.type === "synced") setRequests(fresh);
        else if (e.type === "asked") change((m) => m.set(keyOf(e.approval), e.approval));
        else if (e.type === "decided") change((m) => m.delete(keyOf(e.approval)));
      },
    }).catch((err) => (err instanceof StreamRefused && err.status === 404 ? setRequests(new Map()) : fail(err)));
    return () => controller.abort();
  }, [path]);
  return requests === null ? null : [...requests.values()];
}

/** Approve or deny with a reason; the decision names the caller, which the node records. */
function Decide({ id, path }) {
  const { call, fail } = useSession();
  const [reason, setReason] = useState("");
  // The stream takes the request off the list once the node has decided it.
  const decide = (verb) => call(`${path}/${verb}`, { method: "POST", body: reason ? { reason } : {} }).catch(fail);
  return html`<form class="filters" onSubmit=${(e) => { e.preventDefault(); decide("approve"); }}>
    <label for=${`reason-${id}`}>Reason<input id=${`reason-${id}`} value=${reason} maxlength="1000" onInput=${(e) => setReason(e.currentTarget.value)} /></label>
    <button type="submit">Approve</button> <button type="button" onClick=${() => decide("deny")}>Deny</button>
  </form>`;
}

/** What waits for a person: workflow steps held for approval and tasks a policy holds, each with why, live from the node's streams. */
export function ApprovalsView() {
  const { may } = useSession();
  const steps = useRequests("/v1/approvals/events", (a) => a.request.id);
  const tasks = useRequests("/v1/task-approvals/events", (t) => t.taskId);
  const synced = steps !== null && tasks !== null;
  return html`<h2>Approvals</h2>
    ${!synced && html`<p>Connecting…</p>`}
    ${synced && steps.length === 0 && tasks.length === 0 && html`<p>Nothing waits for a decision.</p>`}
    ${(steps ?? []).map((a) => html`<article class="approval" data-approval=${a.request.id} aria-label=${`Step ${a.stepId} of ${a.workflowName}`}>
      <h3>${`${a.workflowName}: step ${a.stepId}`}</h3>
      <p>${`Workflow ${a.workflowId.slice(0, 8)}${a.agent ? `, agent ${a.agent}` : ""}; asked ${until(a.request.askedAt)}; denied unless decided by ${until(a.request.deadline)}.`}</p>
      ${may.approve && html`<${Decide} id=${a.request.id} path=${`/v1/approvals/${a.request.id}`} />`}
    </article>`)}
    ${(tasks ?? []).map((t) => html`<article class="approval" data-approval=${t.taskId} aria-label=${`Task ${t.taskId}`}>
      <h3>${`Task ${t.taskId.slice(0, 8)} (${t.agentId})`}</h3>
      <p>${`${t.description} — held by rule ${t.rule}; from ${t.submittedBy.slice(-8)}; denied unless decided by ${until(t.deadline)}.`}</p>
      ${may.approve && html`<${Decide} id=${t.taskId} path=${`/v1/task-approvals/${t.taskId}`} />`}
    </article>`)}`;
}
