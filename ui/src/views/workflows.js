import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";

function Step({ def, step }) {
  const taskId = step.attempts.at(-1)?.taskId;
  return html`<li class=${`status-${step.status}`} data-step=${def.id}>
    ${`${def.id}: ${step.status}`}${def.dependsOn?.length ? ` (after ${def.dependsOn.join(", ")})` : ""}${taskId && html`<a href=${`#task/${taskId}`}> task</a>`}
  </li>`;
}

/** Each workflow with its steps in order and their states. */
export function WorkflowsView() {
  const { call } = useSession();
  const [workflows, setWorkflows] = useState(null);
  usePoll(3000, async () => setWorkflows((await call("/v1/workflows")).workflows));
  return html`<h2>Workflows</h2>
    ${workflows?.length === 0 && html`<p>No workflows.</p>`}
    ${(workflows ?? []).map((w) => html`<article aria-label=${`Workflow ${w.id}`}>
      <h3>${w.definition.name} <span class=${`status-${w.status}`}>${w.status}</span></h3>
      <ol class="steps" aria-label="Steps">${w.definition.steps.map((def) => html`<${Step} def=${def} step=${w.steps[def.id] ?? { status: "pending", attempts: [] }} />`)}</ol>
    </article>`)}`;
}
