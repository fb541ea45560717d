import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";
import { Table } from "../table.js";

/** The node's status and the agents it offers. */
export function MeshView() {
  const { call } = useSession();
  const [state, setState] = useState(null);
  usePoll(5000, async () => {
    const [status, agents] = await Promise.all([call("/v1/status"), call("/v1/agents")]);
    setState({ status, agents: agents.agents });
  });
  return html`<h2>Mesh</h2>${state && html`
    <dl>${Object.entries(state.status).map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}</dl>
    <h3>Agents offered</h3>
    <${Table} label="Agents" columns=${["id", "name", "capabilities"]}>
      ${state.agents.map((a) => html`<tr><td>${a.id}</td><td>${a.name ?? ""}</td><td>${(a.capabilities ?? []).join(", ")}</td></tr>`)}
    <//>
    <p>Members, trust levels, paths and RTT are not served over HTTP yet; run coderclaw peers on the node.</p>`}`;
}
