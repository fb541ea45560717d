import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";

const until = (at) => new Date(at).toLocaleString();

/** Approve or deny with a reason; the decision names the caller, which the node records. */
function Decide({ id, path, onDone }) {
  const { call, fail } = useSession();
  const [reason, setReason] = useState("");
  const decide = (verb) => call(`${path}/${verb}`, { method: "POST", body: reason ? { reason } : {} }).then(onDone).catch(fail);
  return html`<form class="filters" onSubmit=${(e) => { e.preventDefault(); decide("approve"); }}>
    <label for=${`reason-${id}`}>Reason<input id=${`reason-${id}`} value=${reason} maxlength="1000" onInput=${(e) => setReason(e.currentTarget.value)} /></label>
    <button type="submit">Approve</button> <button type="button" onClick=${() => decide("deny")}>Deny</button>
  </form>`;
}

/** What waits for a person: workflow steps held for approval and tasks a policy holds, each with why. */
export function ApprovalsView() {
  const { call, may } = useSession();
  const [state, setState] = useState({ steps: [], tasks: [] });
  const load = async () => {
    // A node without workflows or task approvals answers 404 for that list: it has nothing waiting there.
    const list = (path) => call(path).then((r) => r.approvals).catch((err) => (/no route/.test(err.message) ? [] : Promise.reject(err)));
    const [steps, tasks] = await Promise.all([list("/v1/approvals"), list("/v1/task-approvals")]);
    setState({ steps, tasks });
  };
  usePoll(3000, load);
  const none = state.steps.length === 0 && state.tasks.length === 0;
  return html`<h2>Approvals</h2>
    ${none && html`<p>Nothing waits for a decision.</p>`}
    ${state.steps.map((a) => html`<article class="approval" data-approval=${a.request.id} aria-label=${`Step ${a.stepId} of ${a.workflowName}`}>
      <h3>${`${a.workflowName}: step ${a.stepId}`}</h3>
      <p>${`Workflow ${a.workflowId.slice(0, 8)}${a.agent ? `, agent ${a.agent}` : ""}; asked ${until(a.request.askedAt)}; denied unless decided by ${until(a.request.deadline)}.`}</p>
      ${may.approve && html`<${Decide} id=${a.request.id} path=${`/v1/approvals/${a.request.id}`} onDone=${load} />`}
    </article>`)}
    ${state.tasks.map((t) => html`<article class="approval" data-approval=${t.taskId} aria-label=${`Task ${t.taskId}`}>
      <h3>${`Task ${t.taskId.slice(0, 8)} (${t.agentId})`}</h3>
      <p>${`${t.description} — held by rule ${t.rule}; from ${t.submittedBy.slice(-8)}; denied unless decided by ${until(t.deadline)}.`}</p>
      ${may.approve && html`<${Decide} id=${t.taskId} path=${`/v1/task-approvals/${t.taskId}`} onDone=${load} />`}
    </article>`)}`;
}
