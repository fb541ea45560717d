import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";
import { Table } from "../table.js";

const REACH = { public: "public", private: "behind NAT", loopback: "this machine only (listens on loopback)", unknown: "unknown: no member asked yet" };

const COLUMNS = ["member", "trust", "roles", "path", "RTT", "load", "free slots", "agents", "last seen"];

function Self({ mesh }) {
  const { self, reachability } = mesh;
  return html`<dl>
    <dt>device</dt><dd>${self.deviceId}</dd><dt>fingerprint</dt><dd>${self.fingerprint}</dd>
    <dt>mesh</dt><dd>${self.meshId ?? "none"} (${self.level})</dd>
    <dt>reachability</dt><dd id="reachability">${REACH[reachability?.reachability ?? "unknown"]}${reachability?.by ? ` (asked ${reachability.by.slice(-8)})` : ""}</dd>
    <dt>addresses</dt><dd><ul>${self.addrs.map((a) => html`<li>${String(a)}</li>`)}</ul></dd>
  </dl>
  ${mesh.hints?.length > 0 && html`<ul aria-label="Hints">${mesh.hints.map((h) => html`<li>${h}</li>`)}</ul>`}`;
}

/** This node (addresses, reachability), its members (trust, roles, path, RTT, load, free slots, agents, last seen) and the agents it offers. */
export function MeshView() {
  const { call } = useSession();
  const [state, setState] = useState(null);
  usePoll(5000, async () => {
    const [mesh, devices, agents] = await Promise.all([call("/v1/mesh"), call("/v1/devices"), call("/v1/agents")]);
    setState({ mesh, devices: new Map(devices.devices.map((d) => [d.deviceId, d])), agents: agents.agents });
  });
  if (state === null) return html`<h2>Mesh</h2>`;
  const { mesh, devices, agents } = state;
  const lastSeen = (id) => devices.get(id)?.lastSeen;
  return html`<h2>Mesh</h2><${Self} mesh=${mesh} />
    <h3>Members</h3>
    <${Table} label="Members" columns=${COLUMNS}>
      ${mesh.members.map((m) => html`<tr data-member=${m.peerId}>
        <td class="desc">${m.peerId}</td><td>${m.level}</td><td>${(devices.get(m.peerId)?.roles ?? []).join(", ")}</td><td>${m.path}${m.via ? ` via ${m.via.slice(-8)}` : ""}</td>
        <td>${m.latencyMs === undefined ? "" : `${m.latencyMs} ms`}</td><td>${m.load ?? ""}</td><td>${m.freeSlots ?? ""}</td>
        <td>${(m.agents ?? []).join(", ")}</td><td>${lastSeen(m.peerId) ? new Date(lastSeen(m.peerId)).toLocaleTimeString() : ""}</td>
      </tr>`)}
    <//>
    <h3>Agents offered here</h3>
    <${Table} label="Agents" columns=${["id", "name", "capabilities"]}>
      ${agents.map((a) => html`<tr><td>${a.id}</td><td>${a.name ?? ""}</td><td>${(a.capabilities ?? []).join(", ")}</td></tr>`)}
    <//>`;
}
