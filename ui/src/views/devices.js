import { useState } from "preact/hooks";
import { html } from "../html.js";
import { usePoll, useSession } from "../session.js";
import { Table } from "../table.js";

const seen = (d) => (d.self ? "this node" : d.connected ? "connected" : d.lastSeen ? new Date(d.lastSeen).toLocaleString() : "never");

/** Revoking cuts a device off for good: the row asks for a reason and a second click. */
function Revoke({ device, onDone }) {
  const { call, fail } = useSession();
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState("");
  if (!asking) return html`<button type="button" onClick=${() => setAsking(true)}>Revoke</button>`;
  const id = `reason-${device.deviceId}`;
  const confirm = (e) => {
    e.preventDefault();
    call(`/v1/devices/${device.deviceId}/revoke`, { method: "POST", body: { reason } }).then(onDone).catch(fail);
  };
  return html`<form class="confirm" onSubmit=${confirm}>
    <label for=${id}>Why revoke ${device.deviceId.slice(-8)}? It is cut off from the mesh for good.
      <input id=${id} required value=${reason} onInput=${(e) => setReason(e.currentTarget.value)} /></label>
    <button type="submit">Confirm revoke</button> <button type="button" onClick=${() => setAsking(false)}>Keep</button>
  </form>`;
}

function Invite() {
  const { call, fail } = useSession();
  const [level, setLevel] = useState("verified");
  const [invite, setInvite] = useState(null);
  const create = (e) => {
    e.preventDefault();
    // The QR encoder is a chunk of its own, fetched only by whoever pairs a device.
    Promise.all([call("/v1/invites", { method: "POST", body: { level } }), import("../qr.js")])
      .then(([made, { QrCode }]) => setInvite({ ...made, QrCode }))
      .catch(fail);
  };
  return html`<h3>Pair a new device</h3>
    <form class="filters" onSubmit=${create}>
      <label for="invite-level">Trust level<select id="invite-level" value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>
        <option value="verified">verified</option><option value="trusted">trusted</option>
      </select></label>
      <button type="submit">Create invite</button>
    </form>
    ${invite && html`<div class="invite">
      <${invite.QrCode} text=${invite.invite} label="Invite as a QR code" />
      <p>On the new device: <code>coderclaw mesh join</code> with this invite (${invite.level}, works once, until ${new Date(invite.expiresAt).toLocaleString()}).
        Once it joins, its row here shows the comparison code its <code>mesh join</code> printed: they must match.</p>
      <textarea id="invite-text" aria-label="Invite" readonly rows="4">${invite.invite}</textarea>
    </div>`}`;
}

/** The mesh's devices: name, trust, when last seen; revoke and pair for admins. */
export function DevicesView() {
  const { call, may } = useSession();
  const [devices, setDevices] = useState([]);
  const load = async () => setDevices((await call("/v1/devices")).devices);
  usePoll(5000, load);
  const columns = ["device", "name", "trust", "seen", "comparison code", ...(may.admin ? [""] : [])];
  return html`<h2>Devices</h2>
    <${Table} label="Devices" columns=${columns}>
      ${devices.map((d) => html`<tr data-device=${d.deviceId}>
        <td class="desc">${d.deviceId}</td><td class="name">${d.name ?? ""}</td><td>${d.revoked ? "revoked" : d.level}</td><td>${seen(d)}</td><td class="code">${d.comparisonCode ?? ""}</td>
        ${may.admin && html`<td>${!d.self && !d.revoked && html`<${Revoke} device=${d} onDone=${load} />`}</td>`}
      </tr>`)}
    <//>
    ${may.admin && html`<${Invite} />`}`;
}
